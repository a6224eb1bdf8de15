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
  if (value < 1000) return `${Math.round(value)} ms`;
  const seconds = Math.round(value / 1000);
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  const rest = String(seconds % 60).padStart(2, "0");
  if (minutes < 60) return `${minutes} m ${rest} s`;
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, "0")} m`;
}

export function fmtMs(ms) {
  if (ms === null || ms === undefined || Number.isNaN(Number(ms))) return "—";
  return `${Math.round(Number(ms)).toLocaleString()} ms`;
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

/** A small coloured status pill. */
export function pill(text, kind) {
  const label = text === null || text === undefined || text === "" ? "—" : String(text);
  const tone = kind || String(text || "").toLowerCase().replace(/[^a-z_]/g, "");
  return h("span", { class: `pill pill-${tone}`, text: label.replace(/_/g, " ") });
}
