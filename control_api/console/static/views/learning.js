// Autonomous learning (issue 20): questions the desk could not answer, clustered by meaning. For each gap: its
// questions with the calls they came from, a DRAFT answer assembled from the closest passages (with sources),
// and approve (→ a knowledge document; coverage before → after) or dismiss. Nothing is published unapproved.
import { api } from "../api.js";
import { field, fmtDateTime, h, pill, replace, select } from "../dom.js";
import { passageLink } from "./call_analysis.js";

const STATUSES = [["open", "Open gaps"], ["approved", "Approved"], ["dismissed", "Dismissed"], ["all", "All"]];
const REASONS = { unanswered: "not answered", low_confidence: "answered weakly", handed_off: "handed to a person" };

function callLink(callId, text) {
  return callId ? h("a", { href: `#/calls/${encodeURIComponent(callId)}`, text }) : h("span", { text });
}

function coverageLine(coverage) {
  if (!coverage || !coverage.before) return null;
  const { before, after } = coverage;
  return h("p", { class: "coverage" }, h("strong", { text: "Coverage: " }),
    `${before.answered} of ${before.total} questions answered before → ${after.answered} of ${after.total} after approval`);
}

// A gap's state in words (the pill's tone still comes from the code).
const GAP_STATES = { open: "Needs an answer", approved: "Published", dismissed: "Dismissed" };

function gapCard(gap, ctx, reload) {
  const question = h("input", { type: "text", value: gap.final_question || gap.question, maxlength: "300", required: true });
  const answer = h("textarea", { rows: "5", maxlength: "5000", required: true });
  answer.value = gap.final_answer || gap.draft_answer || "";
  const approve = h("button", { type: "submit", class: "button primary", text: gap.status === "approved" ? "Publish a new version" : "Approve and publish" });
  const dismiss = h("button", { type: "button", class: "button secondary", text: "Dismiss" });
  const sop = h("button", { type: "button", class: "button secondary", text: "Draft an SOP from these calls" });
  const form = h("form", { class: "gap-form" },
    field("Question", question),
    field("Answer", answer, gap.draft_answer
      ? "Starts as the draft shown above; rewrite it before approving. Approved, it becomes a knowledge-base document."
      : "Write what the agent should say. Approved, it becomes a knowledge-base document."),
    h("div", { class: "actions" }, approve, gap.status === "open" ? dismiss : null, sop));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    approve.disabled = true;
    approve.textContent = "Publishing…";
    try {
      const done = await api.post(`/api/learning/gaps/${encodeURIComponent(gap.id)}/approve`, { question: question.value, answer: answer.value });
      const c = done.coverage;
      ctx.notify(`Published. The knowledge base now answers ${c.after.answered} of ${c.after.total} of these questions (before: ${c.before.answered}).`, "success");
      reload();
    } catch (error) { ctx.showError(error); approve.disabled = false; approve.textContent = "Approve and publish"; }
  });
  dismiss.addEventListener("click", async () => {
    try { await api.post(`/api/learning/gaps/${encodeURIComponent(gap.id)}/dismiss`, {}); ctx.notify("Dismissed.", "success"); reload(); } catch (error) { ctx.showError(error); }
  });
  sop.addEventListener("click", async () => {
    try { const made = await api.post("/api/sops", { gap_id: gap.id }); ctx.navigate(`#/sops/${made.id}`); } catch (error) { ctx.showError(error); }
  });
  const reasons = Object.entries(gap.reasons || {}).map(([k, n]) => `${n} ${REASONS[k] || k}`).join(", ");
  return h("section", { class: "panel gap", "aria-label": `Gap: ${gap.question}` },
    h("div", { class: "page-head" }, h("h2", { text: `“${gap.question}”` }), pill(gap.status, gap.status === "open" ? "ringing" : gap.status === "approved" ? "ended" : "neutral", GAP_STATES[gap.status] || gap.status)),
    h("p", { class: "muted", text: `Asked ${gap.count} time${gap.count === 1 ? "" : "s"} in ${gap.calls} call${gap.calls === 1 ? "" : "s"}, last ${fmtDateTime(gap.last_asked_at)} (${reasons}).` }),
    coverageLine(gap.coverage),
    h("details", { open: gap.status === "open" },
      h("summary", { text: `The ${gap.questions.length} most recent phrasings` }),
      h("ul", {}, gap.questions.map((q) => h("li", {}, `“${q.question}” `, h("span", { class: "muted" }, `(${REASONS[q.reason] || q.reason}, `, callLink(q.call_id, "open the call"), ")"))))),
    gap.draft_answer ? h("div", { class: "draft" },
      h("p", {}, pill("draft", "neutral", "Draft"), h("span", { class: "muted", text: " assembled from the closest passages of the knowledge base: they did not answer the question, so check and rewrite it." })),
      h("p", { class: "sources" }, "Sources: ", gap.draft_sources.map((s, i) => [i ? ", " : "", passageLink(s.heading || s.citation, s.document_id, s.chunk_id)])))
      : h("p", { class: "muted", text: "No passage came close: write the answer." }),
    form);
}

/** The Autonomous learning page. */
export async function renderLearning(main, ctx) {
  const status = ctx.query?.get?.("status") || "open";
  const chooser = select({}, STATUSES, status);
  const list = h("div", {});
  let latest = 0;
  const load = async () => {
    // Loads overlap (the first page and a quick change of "Show"): only the newest one's answer is shown.
    const mine = ++latest;
    const shown = chooser.value;
    replace(list, h("p", { class: "loading", text: "Loading…" }));
    try {
      const data = await api.get(`/api/learning/gaps?status=${encodeURIComponent(shown)}`);
      if (!ctx.isCurrent() || mine !== latest) return;
      replace(list, data.items.length ? data.items.map((gap) => gapCard(gap, ctx, load))
        : h("section", { class: "panel" }, h("p", { text: shown === "open" ? "No open gaps: every question callers asked was answered from the knowledge base." : "Nothing here." })));
    } catch (error) { if (mine === latest) ctx.showError(error); }
  };
  chooser.addEventListener("change", load);
  replace(main,
    h("div", { class: "page-head" }, h("h1", { text: "Autonomous learning" })),
    h("p", { class: "muted", text: "Questions the agent could not answer, answered weakly or handed to a person, grouped by meaning across calls. Approving one publishes it to the knowledge base; nothing is published without you." }),
    h("div", { class: "filters filters-narrow" }, field("Show", chooser)),
    list);
  await load();
  return undefined;
}
