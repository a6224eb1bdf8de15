// Small DOM helpers. Text always goes in through textContent / attributes, never innerHTML,
// so transcripts, file names and e-mail addresses can never become markup.

/**
 * Create an element.
 * @param {string} tag - tag name
 * @param {Object<string, any>} [attrs] - attributes; `on*` functions become listeners, `class` / `text` / `dataset` are special
 * @param {...(Node|string|number|null|undefined|false|Array)} children
 * @returns {HTMLElement}
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === "class") {
      el.className = value;
    } else if (key === "text") {
      el.textContent = String(value);
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (value === true) {
      el.setAttribute(key, "");
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

/** Append children (nested arrays, strings and nodes; nullish and false are skipped). */
export function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

/** Remove every child of `el`, then append `children`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

const SVG_NS = "http://www.w3.org/2000/svg";

/** Create an SVG element with attributes. */
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null) continue;
    if (key === "text") el.textContent = String(value);
    else el.setAttribute(key, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child) el.append(child);
  }
  return el;
}

let uid = 0;
/** A unique id for label/field pairs. */
export function nextId(prefix = "f") {
  uid += 1;
  return `${prefix}-${uid}`;
}

/**
 * A labelled form field.
 * @param {string} label
 * @param {HTMLElement} control - input/select/textarea (gets an id when it has none)
 * @param {string} [hint]
 */
export function field(label, control, hint) {
  if (!control.id) control.id = nextId();
  const parts = [h("label", { for: control.id, text: label }), control];
  if (hint) {
    const hintId = nextId("hint");
    control.setAttribute("aria-describedby", hintId);
    parts.push(h("small", { id: hintId, class: "hint", text: hint }));
  }
  return h("div", { class: "field" }, parts);
}

/** A <select> with options given as [value, label] pairs (or plain strings). */
export function select(attrs, options, selected) {
  const el = h("select", attrs);
  for (const option of options) {
    const [value, label] = Array.isArray(option) ? option : [option, option];
    el.append(h("option", { value, text: label, selected: String(value) === String(selected ?? "") }));
  }
  return el;
}

// ---- formatting -----------------------------------------------------------------------------

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const timeOnly = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" });

/** Parse an API timestamp (naive ones are UTC). */
export function parseTime(value) {
  if (!value) return null;
  const text = String(value);
  const hasZone = /([zZ]|[+-]\d\d:?\d\d)$/.test(text);
  const date = new Date(hasZone ? text : `${text}Z`);
  return Number.isNaN(date.getTime()) ? null : date;
}

export function fmtDateTime(value) {
  const date = parseTime(value);
  return date ? dateTime.format(date) : "—";
}

export function fmtTime(value) {
  const date = parseTime(value);
  return date ? timeOnly.format(date) : "—";
}

/** Milliseconds as "1 m 05 s" / "850 ms". */
export function fmtDuration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(Number(ms))) return "—";
  const value = Number(ms);
  if (value < 1000) return fmtMs(value);
  const seconds = Math.round(value / 1000);
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  const rest = String(seconds % 60).padStart(2, "0");
  if (minutes < 60) return `${minutes} m ${rest} s`;
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, "0")} m`;
}

/** Milliseconds for a latency: one decimal under 10 ms (a 0.6 ms retrieval is not "0 ms"). */
export function fmtMs(ms) {
  if (ms === null || ms === undefined || Number.isNaN(Number(ms))) return "—";
  const value = Number(ms);
  if (value > 0 && value < 10) return `${value.toFixed(1)} ms`;
  return `${Math.round(value).toLocaleString()} ms`;
}

/** A rate in [0, 1] (or already a percentage when > 1) as "42.0 %". */
export function fmtPercent(rate) {
  if (rate === null || rate === undefined || Number.isNaN(Number(rate))) return "—";
  const value = Number(rate);
  const pct = value <= 1 ? value * 100 : value;
  return `${pct.toFixed(1)} %`;
}

export function fmtNumber(value) {
  if (value === null || value === undefined || Number.isNaN(Number(value))) return "—";
  return Number(value).toLocaleString();
}

export function fmtBytes(bytes) {
  if (bytes === null || bytes === undefined) return "—";
  const units = ["B", "KB", "MB", "GB"];
  let value = Number(bytes);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

/**
 * A small coloured status pill.
 * @param {string} text - the code (its tone) or words
 * @param {string} [kind] - the tone class; defaults to the code
 * @param {string} [words] - what to show; defaults to the code made readable
 */
export function pill(text, kind, words) {
  const shown = words || (text === null || text === undefined || text === "" ? "—" : String(text).replace(/_/g, " "));
  const tone = kind || String(text || "").toLowerCase().replace(/[^a-z_]/g, "");
  return h("span", { class: `pill pill-${tone}`, text: shown });
}

/** A pill for an enum: its tone from the code, its words from label(kind, code). */
export function codePill(kind, code, tone) {
  return pill(code, tone, label(kind, code));
}

// ---- a call's outcome: one set of words (LABELS.outcome) and one colour each, on every page ----------------
// The colours are the CSS variables --outcome-<code> of app.css (classes tone-outcome-<code>); charts drawn
// by plotly read the same variables through outcomeColour().

/** What the voice latency figures measure (the server's per-turn meter), said once for every page that shows them. */
export const LATENCY_MEANS = "On the server, from the caller's last word in to the agent's first sound out; " +
  "the network and the caller's device add to what they hear.";

/** Every outcome a call can have by the analysis's rule, in the order pages list them ("live": not ended). */
export const OUTCOME_ORDER = ["resolved", "unanswered", "handed_off", "callback", "abandoned", "not_connected", "failed", "live"];

/** The tone class of an outcome (bars, swatches): tone-outcome-<code>. */
export function outcomeTone(code) {
  return `outcome-${OUTCOME_ORDER.includes(code) ? code : "live"}`;
}

/** An outcome's colour as CSS knows it (for plotly, which takes colours, not classes). */
export function outcomeColour(code) {
  const name = `--outcome-${OUTCOME_ORDER.includes(code) ? code : "live"}`;
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#64748b";
}

/** An outcome as a pill: its colour swatch and its words. */
export function outcomePill(code) {
  return h("span", { class: "pill pill-outcome", dataset: { outcome: code } },
    h("span", { class: `swatch tone-${outcomeTone(code)}`, "aria-hidden": "true" }), ` ${label("outcome", code)}`);
}

/**
 * Make a table readable on a phone: below 640 px each row becomes a card whose cells carry their column's name
 * (`data-label`, from the header). Rows added later (paging) are labelled as they arrive.
 * @param {HTMLTableElement} table
 * @returns {HTMLTableElement}
 */
export function cardTable(table) {
  table.classList.add("cards");
  const names = [...table.querySelectorAll("thead th")].map((th) => th.textContent.trim());
  const labelRow = (row) => {
    [...row.children].forEach((cell, index) => {
      if (cell.tagName !== "TD" || !names[index] || cell.hasAttribute("colspan")) return;
      cell.dataset.label = names[index];
      const text = cell.textContent.trim();
      if (!text || text === "—") cell.classList.add("card-empty"); // nothing to say: no line on the card
    });
  };
  const body = table.tBodies[0];
  if (body) {
    [...body.rows].forEach(labelRow);
    new MutationObserver((changes) => {
      for (const change of changes) change.addedNodes.forEach((node) => node.tagName === "TR" && labelRow(node));
    }).observe(body, { childList: true });
  }
  return table;
}

// ---- words, not codes ---------------------------------------------------------------------------
// Every stored enum the console shows goes through label(kind, value); an unknown value is made readable
// ("some_code" -> "Some code") rather than shown raw.

const LABELS = {
  channel: {
    webrtc: "Browser (WebRTC)", sip: "Phone (SIP)", telephony: "Phone line", websocket: "Audio stream (WebSocket)",
    livekit: "LiveKit room", twilio: "Phone (Twilio)", unknown: "Unknown",
  },
  direction: { inbound: "Incoming", outbound: "Outgoing", unknown: "Unknown" },
  status: {
    ringing: "Ringing", active: "In progress", on_hold: "On hold", transferred: "Transferred", handed_off: "Handed off",
    ended: "Ended", failed: "Failed",
  },
  outcome: {
    resolved: "Answered by the agent", contained: "Answered by the agent", unanswered: "Question not answered",
    handed_off: "Passed to a person", callback: "Callback requested", abandoned: "Caller left early",
    not_connected: "Never connected", failed: "Failed (technical)", none: "Still open", live: "In progress",
  },
  end_reason: {
    caller_hangup: "Caller hung up", caller_disconnected: "Caller's connection dropped", agent_ended: "Agent ended the call",
    handed_off: "Passed to a person", silence_timeout: "Caller went silent", max_duration: "Reached the time limit",
    media_timeout: "Caller's audio never connected", pipeline_error: "Technical fault", signalling_failed: "Connection set-up failed",
    pipeline_finished: "Conversation finished", shutdown: "Server shutting down",
  },
  role: { admin: "Administrator", supervisor: "Supervisor", agent: "Agent", viewer: "Viewer" },
  sentiment: { positive: "Positive", neutral: "Neutral", negative: "Negative" },
  speaker: { caller: "Caller", agent: "Voice agent", human: "Human agent", system: "System" },
  audit_outcome: { success: "Done", failure: "Failed", denied: "Refused (no permission)", rate_limited: "Refused (too many requests)" },
  document_status: { pending: "Waiting", processing: "Being read", ready: "Ready", failed: "Failed" },
  handoff_status: {
    requested: "Requested", ringing: "Ringing", accepted: "Accepted", connected: "Connected", completed: "Completed",
    declined: "Declined", timed_out: "Nobody answered", cancelled: "Cancelled",
  },
  callback_reason: { timed_out: "Nobody answered in time", declined: "Every agent declined", no_agents: "Nobody was available" },
  callback_outcome: {
    reached: "Reached the caller", no_answer: "No answer", voicemail: "Left a voicemail", wrong_number: "Wrong number",
    not_needed: "No longer needed",
  },
  callback_status: { open: "Waiting", claimed: "Claimed", done: "Done" },
  privacy_kind: { export: "Export of their data", correction: "Correction", erasure: "Erasure" },
  privacy_status: { received: "Received", in_progress: "In progress", completed: "Completed", rejected: "Rejected" },
  severity: { low: "Low", medium: "Medium", high: "High", critical: "Critical" },
  incident_status: { open: "Open", mitigated: "Mitigated", resolved: "Resolved" },
  incident_kind: { operational: "Operational", security: "Security" },
  check: { database: "Database", cache: "Cache", knowledge: "Knowledge base", asr: "Speech recognition", tts: "Voice", vad: "Turn detection", brain: "Answering" },
};

/** The words for a stored code: label("channel", "webrtc") -> "Browser (WebRTC)". */
export function label(kind, value) {
  if (value === null || value === undefined || value === "") return "—";
  const known = LABELS[kind] && LABELS[kind][value];
  if (known) return known;
  const text = String(value).replace(/[_.]+/g, " ").trim();
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** [value, label] pairs of a kind, for a <select> (with an "Any" first when `any` is given). */
export function labelOptions(kind, values, any) {
  const pairs = values.map((value) => [value, label(kind, value)]);
  return any ? [["", any], ...pairs] : pairs;
}
