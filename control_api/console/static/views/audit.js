// Audit log (admin): filters and cursor pagination over GET /api/audit. Read-only by design.
import { api, queryString } from "../api.js";
import { field, fmtDateTime, h, pill, replace, select } from "../dom.js";

const PAGE_SIZE = 50;
const OUTCOMES = [["", "Any"], ["success", "Success"], ["failure", "Failure"], ["denied", "Denied"], ["rate_limited", "Rate limited"]];

function detailText(detail) {
  if (!detail || typeof detail !== "object" || !Object.keys(detail).length) return "";
  return Object.entries(detail).filter(([, v]) => v !== "" && v !== null && v !== undefined).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(" · ");
}

function row(entry, people) {
  return h("tr", {},
    h("td", { class: "nowrap", text: fmtDateTime(entry.at) }),
    h("td", {}, h("div", { class: "small", text: people.get(entry.actor_user_id) || (entry.actor_user_id ? entry.actor_user_id.slice(0, 8) : "—") }),
      h("div", { class: "muted small", text: entry.actor_role || "" })),
    h("td", { class: "mono", text: entry.action }),
    h("td", {}, entry.target_type ? h("span", { text: `${entry.target_type} ` }) : "—",
      entry.target_id ? h("span", { class: "mono muted small", text: String(entry.target_id).slice(0, 12) }) : null),
    h("td", {}, pill(entry.outcome, entry.outcome === "success" ? "good" : "bad")),
    h("td", { class: "mono small", text: entry.ip || "—" }),
    h("td", { class: "small wrap", text: detailText(entry.detail) }));
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
    h("section", { class: "panel flush" }, h("div", { class: "table-wrap" }, h("table", { class: "table" },
      h("thead", {}, h("tr", {}, ["When", "Actor", "Action", "Target", "Outcome", "IP", "Detail"].map((t) => h("th", { scope: "col", text: t })))),
      tbody)), h("div", { class: "table-foot" }, status, more)));

  // Actor names: the audit log keeps ids; an administrator may list the accounts.
  const people = new Map();
  try {
    const accounts = await api.get("/api/users", { query: { limit: 500 } });
    for (const person of (accounts && accounts.items) || []) {
      people.set(person.id, person.email);
      controls.actor.append(h("option", { value: person.id, text: person.email, selected: person.id === q.get("actor") }));
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
      if (!shown) tbody.append(h("tr", {}, h("td", { colspan: 7, class: "empty", text: "No entries match." })));
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
