// Calls list: filters, cursor pagination ("Load more") and a CSV export of the same filter.
import { api, queryString } from "../api.js";
import { OUTCOME_ORDER, cardTable, codePill, field, fmtDateTime, fmtDuration, fmtMs, h, label, labelOptions, outcomePill, replace, select } from "../dom.js";

export const CALLS_PATH = "/api/calls";
export const CSV_PATH = "/api/calls/export.csv";
const PAGE_SIZE = 25;

const STATUSES = labelOptions("status", ["ringing", "active", "on_hold", "handed_off", "ended", "failed"], "Any");
const CHANNELS = labelOptions("channel", ["webrtc", "sip", "telephony", "websocket", "livekit"], "Any");
// Every outcome of the analysis's rule (what the list shows and GET /api/calls?outcome= filters on), live aside.
const OUTCOMES = labelOptions("outcome", OUTCOME_ORDER.filter((o) => o !== "live"), "Any");
const SENTIMENTS = labelOptions("sentiment", ["positive", "neutral", "negative"], "Any");

function dayStart(value) {
  return value ? new Date(`${value}T00:00:00`).toISOString() : "";
}

function dayEnd(value) {
  return value ? new Date(`${value}T23:59:59.999`).toISOString() : "";
}

function callerOf(call) {
  return call.caller_name || call.caller_number || call.caller_email || "Unknown caller";
}

function row(call) {
  const link = h("a", { href: `#/calls/${encodeURIComponent(call.id)}`, text: callerOf(call) });
  return h("tr", { dataset: { callId: call.id } },
    h("td", {}, link, call.caller_name && call.caller_number ? h("div", { class: "muted small", text: call.caller_number }) : null),
    h("td", { text: fmtDateTime(call.started_at) }),
    h("td", { text: label("channel", call.channel) }),
    h("td", {}, codePill("status", call.status)),
    h("td", {}, call.outcome ? outcomePill(call.outcome) : "—"),
    h("td", { class: "num", text: fmtDuration(call.duration_ms) }),
    h("td", {}, call.sentiment_label ? codePill("sentiment", call.sentiment_label) : "—"),
    h("td", { class: "num", text: fmtMs(call.latency_p95_ms) }),
    h("td", {}, (call.tags || []).map((tag) => h("span", { class: "tag", text: tag }))));
}

export async function renderCalls(main, ctx) {
  const q = ctx.query;
  // An exact UTC range from an Analytics drill-down (a chart point); the date fields replace it when set.
  let drill = q.get("since") || q.get("until") ? { since: q.get("since") || "", until: q.get("until") || "" } : null;
  const controls = {
    q: h("input", { type: "search", name: "q", value: q.get("q") || "", placeholder: "Words said" }),
    status: select({ name: "status" }, STATUSES, q.get("status")),
    channel: select({ name: "channel" }, CHANNELS, q.get("channel")),
    outcome: select({ name: "outcome" }, OUTCOMES, q.get("outcome")),
    sentiment: select({ name: "sentiment" }, SENTIMENTS, q.get("sentiment")),
    from: h("input", { type: "date", name: "from", value: q.get("from") || "" }),
    to: h("input", { type: "date", name: "to", value: q.get("to") || "" }),
  };
  // Administrators may list accounts, so they can filter by the human agent who took the call.
  if (ctx.can("users:manage")) {
    controls.agent = select({ name: "agent" }, [["", "Any"]], q.get("agent"));
    api.get("/api/users", { query: { limit: 500 } }).then((page) => {
      for (const person of (page && page.items) || []) {
        if (person.role !== "agent" && person.role !== "supervisor") continue;
        controls.agent.append(h("option", { value: person.id, text: person.full_name || person.email, selected: person.id === q.get("agent") }));
      }
    }).catch((error) => ctx.showError(error));
  }
  const filterForm = h("form", { class: "filters", role: "search", "aria-label": "Filter calls" },
    field("Search", controls.q), field("Status", controls.status), field("Channel", controls.channel),
    field("Outcome", controls.outcome), field("Sentiment", controls.sentiment),
    controls.agent ? field("Agent", controls.agent) : null,
    field("From", controls.from), field("To", controls.to),
    h("div", { class: "filter-actions" },
      h("button", { type: "submit", class: "button primary", text: "Apply" }),
      h("button", { type: "reset", class: "button secondary", text: "Clear" })));

  const tbody = h("tbody");
  const status = h("p", { class: "muted small", role: "status" });
  const more = h("button", { type: "button", class: "button secondary", text: "Load more", hidden: true });
  const exportLink = h("a", { class: "button secondary", download: "calls.csv", text: "Export CSV" });
  const table = cardTable(h("table", { class: "table" },
    h("caption", { class: "visually-hidden", text: "Calls, newest first" }),
    h("thead", {}, h("tr", {}, ["Caller", "Started", "Channel", "Status", "Outcome", "Duration", "Sentiment", "p95 latency", "Tags"]
      .map((title) => h("th", { scope: "col", class: ["Duration", "p95 latency"].includes(title) ? "num" : null, text: title })))),
    tbody));

  const drillNote = h("p", { class: "form-ok", hidden: !drill },
    drill ? `Calls from ${fmtDateTime(drill.since)} to ${fmtDateTime(drill.until)} (from Analytics). ` : "",
    h("a", { href: "#/calls", text: "Show all calls" }));
  replace(main,
    h("div", { class: "page-head" }, h("h1", { text: "Calls" }), ctx.can("calls:read_all") ? exportLink : null),
    drillNote,
    h("section", { class: "panel" }, filterForm),
    h("section", { class: "panel flush" }, h("div", { class: "table-wrap" }, table),
      h("div", { class: "table-foot" }, status, more)));

  function apiQuery() {
    return {
      q: controls.q.value.trim(),
      status: controls.status.value,
      channel: controls.channel.value,
      outcome: controls.outcome.value,
      sentiment: controls.sentiment.value,
      agent_user_id: controls.agent ? controls.agent.value : "",
      since: dayStart(controls.from.value) || (drill ? drill.since : ""),
      until: dayEnd(controls.to.value) || (drill ? drill.until : ""),
    };
  }

  let cursor = null;
  let shown = 0;
  let controller = null;
  async function load(reset) {
    controller?.abort();
    controller = new AbortController();
    if (reset) {
      cursor = null;
      shown = 0;
      replace(tbody);
    }
    more.disabled = true;
    status.textContent = "Loading calls…";
    try {
      const page = await api.get(CALLS_PATH, { query: { ...apiQuery(), limit: PAGE_SIZE, cursor }, signal: controller.signal });
      const items = (page && (page.items || page.data)) || [];
      for (const call of items) tbody.append(row(call));
      shown += items.length;
      cursor = page ? page.next_cursor || null : null;
      more.hidden = !cursor;
      if (!shown) {
        tbody.append(h("tr", {}, h("td", { colspan: 9, class: "empty", text: "No calls match these filters." })));
      }
      status.textContent = `${shown} call${shown === 1 ? "" : "s"} shown${cursor ? " — more available" : ""}.`;
    } catch (error) {
      if (error.name === "AbortError") return;
      status.textContent = "";
      ctx.showError(error);
    } finally {
      more.disabled = false;
    }
  }

  function syncUrlAndExport() {
    if (controls.from.value || controls.to.value) drill = null;
    drillNote.hidden = !drill;
    const shownQuery = { q: controls.q.value.trim(), status: controls.status.value, channel: controls.channel.value, outcome: controls.outcome.value, sentiment: controls.sentiment.value, agent: controls.agent ? controls.agent.value : "", from: controls.from.value, to: controls.to.value, since: drill ? drill.since : "", until: drill ? drill.until : "" };
    history.replaceState(null, "", `#/calls${queryString(shownQuery)}`);
    exportLink.href = `${CSV_PATH}${queryString(apiQuery())}`;
  }

  filterForm.addEventListener("submit", (event) => {
    event.preventDefault();
    syncUrlAndExport();
    load(true);
  });
  filterForm.addEventListener("reset", () => {
    setTimeout(() => {
      drill = null;
      for (const control of Object.values(controls)) control.value = "";
      syncUrlAndExport();
      load(true);
    });
  });
  more.addEventListener("click", () => load(false));
  exportLink.href = `${CSV_PATH}${queryString(apiQuery())}`;
  await load(true);
  return () => controller?.abort();
}
