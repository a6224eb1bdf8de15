// The callback queue: callers to call back because nobody took their handoff (timeout, everyone declined,
// nobody available). Claim one, call the caller, complete it with an outcome and a note. Agents see the open
// requests nobody claimed and their own; supervisors see all, complete any and hand one to someone else.
import { api } from "../api.js";
import { append, cardTable, codePill, field, fmtDateTime, fmtDuration, h, label, labelOptions, replace, select } from "../dom.js";

export const CALLBACKS_PATH = "/api/handoffs/callbacks";
const OUTCOMES = labelOptions("callback_outcome", ["reached", "no_answer", "voicemail", "wrong_number", "not_needed"]);
const FILTERS = labelOptions("callback_status", ["open", "claimed", "done"]);
const NOTE_MAX = 2000;
// The open queue ages while the page is open: its list is read again this often.
const REFRESH_MS = 30_000;

function path(item, action) {
  return `${CALLBACKS_PATH}/${encodeURIComponent(item.id)}/${action}`;
}

/** Where a callback stands, in words: waiting, claimed (by whom) or done. */
function stateOf(item) {
  if (item.status === "done") return codePill("callback_status", "done");
  if (item.claimed_by) return codePill("callback_status", "claimed");
  return codePill("callback_status", "open");
}

export async function renderCallbacks(main, ctx) {
  const manager = ctx.can("handoffs:manage");
  const me = ctx.user.id;
  const filter = select({ name: "status" }, FILTERS, ctx.query.get("status") || "open");
  const error = h("p", { class: "form-error", role: "alert", id: "callbacks-error", hidden: true });
  const status = h("p", { class: "muted small", role: "status" });
  const wrap = h("div", { class: "table-wrap" });
  // A row links to its call page when the reader may open it: every call for those who read all calls; for an agent,
  // the call of a callback they hold (claimed and open) or completed (the rule of services/calls.py `_scoped`).
  const linkCalls = ctx.can("calls:read_all") || ctx.can("calls:read_own");
  const readAll = ctx.can("calls:read_all");
  let people = [];

  function showError(problem) {
    if (problem && problem.name === "AbortError") return;
    error.textContent = problem instanceof Error ? problem.message : String(problem);
    error.hidden = false;
  }

  function clearError() {
    error.hidden = true;
    error.textContent = "";
  }

  async function act(button, item, action, body) {
    button.disabled = true;
    clearError();
    try {
      await api.post(path(item, action), body || {});
      await load();
    } catch (problem) {
      showError(problem);
      await load(true);
    } finally {
      button.disabled = false;
    }
  }

  function completeForm(item, cell) {
    const outcome = select({ name: "outcome" }, OUTCOMES, "reached");
    const note = h("textarea", { name: "note", rows: 2, maxlength: NOTE_MAX });
    const save = h("button", { type: "submit", class: "button primary small", text: "Save" });
    const cancel = h("button", { type: "button", class: "button secondary small", text: "Cancel" });
    const form = h("form", { class: "stack callback-complete", "aria-label": `Complete the callback to ${item.phone || "the caller"}` },
      field("Outcome", outcome), field("Note", note, `Optional, up to ${NOTE_MAX} characters.`),
      h("div", { class: "row-actions" }, save, cancel));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      act(save, item, "complete", { outcome: outcome.value, note: note.value.trim() || null });
    });
    cancel.addEventListener("click", () => replace(cell, actions(item, cell)));
    replace(cell, form);
    outcome.focus();
  }

  function reassignControl(item) {
    const choices = [["", "Back to the queue"], ...people.filter((p) => p.user_id !== item.claimed_by)
      .map((p) => [p.user_id, `${p.full_name || p.email || p.user_id} — ${p.presence || "offline"}`])];
    const to = select({ name: "assignee", "aria-label": "Hand this callback to" }, choices, "");
    const go = h("button", { type: "button", class: "button secondary small", text: "Reassign" });
    go.addEventListener("click", () => act(go, item, "reassign", { user_id: to.value || null }));
    return h("div", { class: "row-actions" }, to, go);
  }

  function actions(item, cell) {
    if (item.status === "done") return "—";
    const buttons = [];
    const mine = item.claimed_by === me;
    if (!item.claimed_by) {
      const claim = h("button", { type: "button", class: "button primary small", text: "Claim" });
      claim.addEventListener("click", () => act(claim, item, "claim"));
      buttons.push(claim);
    }
    if (mine || manager) {
      const complete = h("button", { type: "button", class: "button secondary small", text: "Complete" });
      complete.addEventListener("click", () => completeForm(item, cell));
      buttons.push(complete);
    }
    if (item.claimed_by && (mine || manager)) {
      const release = h("button", { type: "button", class: "button secondary small", text: "Release" });
      release.addEventListener("click", () => act(release, item, "release"));
      buttons.push(release);
    }
    return h("div", { class: "stack" }, h("div", { class: "row-actions" }, buttons),
      manager && people.length ? reassignControl(item) : null);
  }

  function mayOpen(item) {
    if (!item.call_id) return false;
    if (readAll) return true;
    return item.status === "done" ? item.completed_by === me : item.claimed_by === me;
  }

  function callLink(item) {
    if (!linkCalls) return null;
    if (!mayOpen(item)) return h("td", { text: "—" });
    return h("td", {}, h("a", { href: `#/calls/${encodeURIComponent(item.call_id)}`, text: "Open the call",
      "aria-label": `Open the call from ${item.phone || "an unknown number"}` }));
  }

  function why(item) {
    return h("div", {}, h("div", { text: label("callback_reason", item.reason) }),
      item.handoff_reason ? h("div", { class: "muted small", text: `Handed over because: ${item.handoff_reason}` }) : null,
      item.summary ? h("div", { class: "small callback-summary", text: item.summary }) : null);
  }

  function row(item, done) {
    const cell = h("td", { class: "callback-actions" });
    const claimed = item.claimed_by ? (item.claimed_by === me ? "You" : item.claimed_by_name || "Someone") : "—";
    const cells = done
      ? [
        h("td", { text: fmtDateTime(item.completed_at) }),
        h("td", { text: item.phone || "No number" }),
        h("td", {}, why(item)),
        h("td", { text: label("callback_outcome", item.outcome) }),
        h("td", { class: "callback-note", text: item.note || "—" }),
        h("td", { text: item.completed_by === me ? "You" : item.completed_by_name || "—" }),
        callLink(item),
      ]
      : [
        h("td", { class: "num", text: fmtDuration(item.age_s * 1000) }),
        h("td", { text: item.phone || "No number" }),
        h("td", {}, why(item)),
        h("td", {}, stateOf(item)),
        h("td", { text: claimed }),
        callLink(item),
        cell,
      ];
    if (!done) append(cell, [actions(item, cell)]);
    return h("tr", { dataset: { callbackId: item.id, status: item.claimed_by && !done ? "claimed" : item.status } }, cells);
  }

  let controller = null;
  async function load(keepError = false) {
    controller?.abort();
    controller = new AbortController();
    if (!keepError) clearError();
    const done = filter.value === "done";
    const titles = (done
      ? ["Completed", "Phone", "Why", "Outcome", "Note", "By", "Call"]
      : ["Waiting", "Phone", "Why", "State", "Claimed by", "Call", "Actions"]).filter((t) => t !== "Call" || linkCalls);
    try {
      const page = await api.get(CALLBACKS_PATH, { query: { status: filter.value, limit: 200 }, signal: controller.signal });
      const items = (page && page.items) || [];
      const tbody = h("tbody", {}, items.map((item) => row(item, done)));
      if (!items.length) {
        tbody.append(h("tr", {}, h("td", { colspan: titles.length, class: "empty",
          text: done ? "No callbacks completed yet." : "No callers waiting for a call back." })));
      }
      replace(wrap, cardTable(h("table", { class: "table", id: "callbacks-table" },
        h("caption", { class: "visually-hidden", text: done ? "Completed callbacks" : "Callers to call back" }),
        h("thead", {}, h("tr", {}, titles.map((title) => h("th", { scope: "col", class: title === "Waiting" ? "num" : null, text: title })))),
        tbody)));
      const total = page ? page.count : items.length;
      status.textContent = `${total} callback${total === 1 ? "" : "s"}${done ? " done" : " waiting"}${done ? ", most recent first" : ", longest wait first"}.`;
    } catch (problem) {
      if (problem.name === "AbortError") return;
      showError(problem);
    }
  }

  filter.addEventListener("change", () => {
    history.replaceState(null, "", `#/callbacks?status=${encodeURIComponent(filter.value)}`);
    load();
  });

  replace(main,
    h("div", { class: "page-head" }, h("h1", { text: "Callbacks" })),
    h("p", { class: "muted", text: "Callers whose handoff nobody took. Claim one, call the caller back, then complete it with how it went." }),
    h("section", { class: "panel" }, h("form", { class: "filters", role: "search", "aria-label": "Filter callbacks" },
      field("Show", filter))),
    error,
    h("section", { class: "panel flush" }, wrap, h("div", { class: "table-foot" }, status)));

  if (manager) {
    try {
      // Everyone who may hold a callback (whether or not they ever set a presence), with their presence.
      const assignees = await api.get(`${CALLBACKS_PATH}/assignees`);
      people = (assignees && assignees.items) || [];
    } catch (problem) {
      showError(problem);
    }
  }
  await load();
  // Ages grow and other people claim: read the open queue again now and then (not while a form is being filled).
  const timer = setInterval(() => {
    if (filter.value !== "done" && !main.querySelector(".callback-complete")) load();
  }, REFRESH_MS);
  return () => {
    clearInterval(timer);
    controller?.abort();
  };
}
