// Audit log (admin): filters and cursor pagination over GET /api/audit. Read-only by design.
import { api, queryString } from "../api.js";
import { cardTable, field, fmtDateTime, h, label, labelOptions, pill, replace, select } from "../dom.js";

const PAGE_SIZE = 50;
const OUTCOMES = labelOptions("audit_outcome", ["success", "failure", "denied", "rate_limited"], "Any");

// What each audited action did, as the verb phrase of a sentence ("Asha Admin <phrase> <target>").
const ACTIONS = {
  "auth.login": "signed in", "auth.logout": "signed out", "auth.password_reset": "reset a password",
  "auth.reset_requested": "asked for a password-reset link", "auth.refresh_reuse": "reused an old sign-in token (blocked)",
  "users.create": "created an account", "users.invite": "invited someone", "users.update": "changed an account",
  "users.deactivate": "deactivated an account", "users.password_changed": "changed a password", "users.signup": "signed up",
  "calls.create": "created a call", "calls.update": "updated a call's notes", "calls.export": "exported calls as CSV",
  "transcripts.read": "read a call's transcript", "recordings.read": "played a call's recording",
  "knowledge.upload": "uploaded documents", "knowledge.delete": "deleted a document", "knowledge.import_url": "imported a web page",
  "knowledge.ingest": "finished reading a document", "knowledge.process": "re-queued documents",
  "personas.create": "created a persona", "personas.update": "changed the persona",
  "privacy.request_created": "logged a privacy request", "privacy.request_rejected": "rejected a privacy request",
  "privacy.export_read": "downloaded a privacy export", "consents.create": "recorded a caller's consent",
  "retention.purge": "ran the retention purge", "incidents.create": "opened an incident", "incidents.update": "updated an incident",
  "integrations.create": "added an integration", "integrations.update": "changed an integration",
  "integrations.delete": "removed an integration", "integrations.test": "tested an integration",
  "integrations.delivery_retry": "retried a delivery", "integrations.ticket_queue": "queued a helpdesk ticket",
  "handoffs.accept": "accepted a handoff", "handoffs.decline": "declined a handoff", "handoffs.complete": "completed a handoff",
  "handoffs.policy": "changed the handoff policy", "voice_profiles.update": "changed voice preferences",
  "handoffs.callback_claim": "claimed a callback", "handoffs.callback_complete": "completed a callback",
  "handoffs.callback_release": "put a callback back in the queue", "handoffs.callback_reassign": "reassigned a callback",
};
const TARGETS = { call: "call", user: "account", account: "account", document: "document", persona: "persona", incident: "incident", integration: "integration", callback: "callback" };
const FIELD_WORDS = { full_name: "name", is_active: "active", password: "password", role: "role", tags: "tags", notes: "notes", disposition: "disposition" };

function words(key) {
  return FIELD_WORDS[key] || key.replace(/_/g, " ");
}

function valueWords(key, value) {
  if (Array.isArray(value)) return value.length > 4 ? `${value.length} items` : value.map((v) => (key === "fields" ? words(String(v)) : String(v))).join(", ");
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (value && typeof value === "object") return Object.entries(value).filter(([, v]) => v !== null && v !== "").map(([k, v]) => `${words(k)} ${v}`).join(", ");
  if (key === "role") return label("role", value);
  return String(value);
}

/** The entry's details as a readable phrase: "fields changed: role; role: Supervisor". */
function detailText(detail) {
  if (!detail || typeof detail !== "object") return "";
  const parts = [];
  for (const [key, value] of Object.entries(detail)) {
    if (value === "" || value === null || value === undefined || (Array.isArray(value) && !value.length)) continue;
    if (/(^|_)ids?$/.test(key) && key !== "call_id") continue; // raw identifiers say nothing to a person
    if (key === "fields") parts.push(`changed: ${valueWords(key, value)}`);
    else if (key === "call_id") continue;
    else parts.push(`${words(key)}: ${valueWords(key, value)}`);
  }
  return parts.join("; ");
}

/** One entry as a sentence: who did what to which, and how it went. */
export function describe(entry, people) {
  const who = people.get(entry.actor_user_id) || (entry.actor_user_id ? `An ${label("role", entry.actor_role).toLowerCase() || "account"}` : "The system");
  const did = ACTIONS[entry.action] || `did ${entry.action.replace(/[._]/g, " ")}`;
  let target = "";
  if (entry.target_type === "user" || entry.target_type === "account") {
    const name = people.get(entry.target_id);
    if (name && entry.target_id !== entry.actor_user_id) target = ` (${name})`;
  }
  const detail = detailText(entry.detail);
  const outcome = entry.outcome === "success" ? "" : ` — ${label("audit_outcome", entry.outcome).toLowerCase()}`;
  return `${who} ${did}${target}${outcome}.${detail ? ` ${detail.charAt(0).toUpperCase()}${detail.slice(1)}.` : ""}`;
}

function targetCell(entry, people) {
  if (!entry.target_type) return h("td", { text: "—" });
  const kind = TARGETS[entry.target_type] || entry.target_type.replace(/_/g, " ");
  const callId = entry.target_type === "call" ? entry.target_id : entry.detail && entry.detail.call_id;
  if (callId) return h("td", {}, h("a", { href: `#/calls/${encodeURIComponent(callId)}`, text: "Open the call" }));
  const name = people.get(entry.target_id);
  return h("td", { text: name ? `${kind}: ${name}` : kind.charAt(0).toUpperCase() + kind.slice(1) });
}

function row(entry, people) {
  return h("tr", { dataset: { action: entry.action } },
    h("td", { class: "nowrap", text: fmtDateTime(entry.at) }),
    h("td", { class: "wrap", text: describe(entry, people) }),
    targetCell(entry, people),
    h("td", {}, pill(entry.outcome, entry.outcome === "success" ? "good" : "bad", label("audit_outcome", entry.outcome))),
    h("td", { class: "small", text: entry.ip || "—" }),
    h("td", { class: "mono small muted", text: entry.action }));
}

export async function renderAudit(main, ctx) {
  const q = ctx.query;
  const controls = {
    action: h("input", { type: "text", name: "action", value: q.get("action") || "", placeholder: "e.g. auth. or calls.update" }),
    actor: select({ name: "actor" }, [["", "Anyone"]], q.get("actor")),
    target: h("input", { type: "text", name: "target", value: q.get("target") || "", placeholder: "e.g. call, user" }),
    outcome: select({ name: "outcome" }, OUTCOMES, q.get("outcome")),
    from: h("input", { type: "date", name: "from", value: q.get("from") || "" }),
    to: h("input", { type: "date", name: "to", value: q.get("to") || "" }),
  };
  const form = h("form", { class: "filters", role: "search", "aria-label": "Filter the audit log" },
    field("Action starts with", controls.action), field("Actor", controls.actor), field("Target type", controls.target),
    field("Outcome", controls.outcome),
    field("From", controls.from), field("To", controls.to),
    h("div", { class: "filter-actions" }, h("button", { type: "submit", class: "button primary", text: "Apply" })));
  const tbody = h("tbody");
  const status = h("p", { class: "muted small", role: "status" });
  const more = h("button", { type: "button", class: "button secondary", text: "Load more", hidden: true });
  replace(main,
    h("div", { class: "page-head" }, h("h1", { text: "Audit log" }),
      h("p", { class: "muted", text: "Every change and every sensitive read. Entries cannot be edited or deleted." })),
    h("section", { class: "panel" }, form),
    h("section", { class: "panel flush" }, h("div", { class: "table-wrap" }, cardTable(h("table", { class: "table" },
      h("thead", {}, h("tr", {}, ["When", "What happened", "Concerning", "Result", "From address", "Code"].map((t) => h("th", { scope: "col", text: t })))),
      tbody))), h("div", { class: "table-foot" }, status, more)));

  // Actor names: the audit log keeps ids; an administrator may list the accounts.
  const people = new Map();
  try {
    const accounts = await api.get("/api/users", { query: { limit: 500 } });
    for (const person of (accounts && accounts.items) || []) {
      people.set(person.id, person.full_name || person.email);
      controls.actor.append(h("option", { value: person.id, text: person.full_name ? `${person.full_name} (${person.email})` : person.email, selected: person.id === q.get("actor") }));
    }
  } catch (error) {
    ctx.showError(error);
  }
  let cursor = null;
  let shown = 0;
  async function load(reset) {
    if (reset) {
      cursor = null;
      shown = 0;
      replace(tbody);
    }
    more.disabled = true;
    try {
      const query = {
        action_prefix: controls.action.value.trim(),
        actor_user_id: controls.actor.value,
        target_type: controls.target.value.trim(),
        outcome: controls.outcome.value,
        since: controls.from.value ? new Date(`${controls.from.value}T00:00:00`).toISOString() : "",
        until: controls.to.value ? new Date(`${controls.to.value}T23:59:59.999`).toISOString() : "",
        limit: PAGE_SIZE,
        cursor,
      };
      const page = await api.get("/api/audit", { query });
      const items = (page && (page.items || page.data)) || [];
      tbody.append(...items.map((entry) => row(entry, people)));
      shown += items.length;
      cursor = page ? page.next_cursor || null : null;
      more.hidden = !cursor;
      if (!shown) tbody.append(h("tr", {}, h("td", { colspan: 6, class: "empty", text: "No entries match." })));
      status.textContent = `${shown} entr${shown === 1 ? "y" : "ies"} shown${cursor ? " — more available" : ""}.`;
    } catch (error) {
      ctx.showError(error);
    } finally {
      more.disabled = false;
    }
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const shownQuery = { action: controls.action.value.trim(), actor: controls.actor.value, target: controls.target.value.trim(), outcome: controls.outcome.value, from: controls.from.value, to: controls.to.value };
    history.replaceState(null, "", `#/audit${queryString(shownQuery)}`);
    load(true);
  });
  more.addEventListener("click", () => load(false));
  await load(true);
  return undefined;
}
