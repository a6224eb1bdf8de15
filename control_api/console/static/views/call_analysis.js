// Post-call analysis of one call (issue 20), shown on the call detail page: summary, topics mapped to
// the knowledge base, sentiment over the call, unanswered questions and the persona's fields. Read-only, plus
// "Analyse again" for roles that may edit calls.
import { api } from "../api.js";
import { fmtDateTime, h, pill, replace } from "../dom.js";

// The call's outcome is not repeated here: the page shows it once, in the Summary, by the analytics' containment
// rule (the analysis reports the same rule in its own vocabulary, whose words differed: "Left without an answer"
// for what the Summary calls "Question not answered").
const VIA_WORDS = { citation: "answered from", retrieval: "nearest section" };

function fieldValue(value) {
  if (value === null || value === undefined || value === "") return "—";
  if (typeof value === "boolean") return value ? "yes" : "no";
  return String(value);
}

/** A link to a knowledge passage (its document in the knowledge page, the chunk named in the tooltip). */
export function passageLink(heading, documentId, chunkId) {
  if (!documentId) return h("span", { text: heading || "—" });
  return h("a", { href: `#/knowledge?document=${encodeURIComponent(documentId)}`, title: `Passage ${chunkId || ""}`.trim(), text: heading || "Knowledge passage" });
}

function topicsList(topics) {
  if (!topics.length) return h("p", { class: "muted", text: "The caller asked no question." });
  return h("ul", { class: "analysis-topics" }, topics.map((t) => h("li", {},
    h("span", { text: `“${t.question}” ` }),
    t.answered ? pill("answered", "ended", "answered") : pill("unanswered", "negative", "not answered"),
    t.heading ? h("span", { class: "muted" }, ` — ${VIA_WORDS[t.via] || "section"} `, passageLink(t.heading, t.document_id, t.chunk_id)) : null)));
}

function sentimentLine(sentiment) {
  if (!sentiment || sentiment.mean === null || sentiment.mean === undefined) return "No caller sentiment was scored.";
  return `${sentiment.label} on average (${sentiment.mean.toFixed(2)}), ${sentiment.trend} from ${sentiment.first.toFixed(2)} to ${sentiment.last.toFixed(2)} over ${sentiment.turns.length} caller turn${sentiment.turns.length === 1 ? "" : "s"}`;
}

function body(analysis, call, ctx, container) {
  if (analysis.status !== "done" && !analysis.analysed_at) {
    return [h("p", { class: "muted", text: analysis.status === "failed" ? `The analysis failed: ${analysis.error || "unknown error"}.` : "The analysis is queued; it runs a few seconds after the call ends." })];
  }
  const rerun = ctx.can("calls:write") ? h("button", { type: "button", class: "button secondary small", text: "Analyse again" }) : null;
  rerun?.addEventListener("click", async () => {
    rerun.disabled = true;
    try {
      await api.post(`/api/calls/${encodeURIComponent(call.id)}/analysis`, {});
      ctx.notify("The call will be analysed again in a few seconds.", "success");
      setTimeout(() => { if (ctx.isCurrent()) renderCallAnalysis(container, call, ctx); }, 3000);
    } catch (error) { ctx.showError(error); rerun.disabled = false; }
  });
  const fields = Object.entries(analysis.fields || {});
  return [
    h("p", { class: "muted small", text: `Offline extractive analysis, ${fmtDateTime(analysis.analysed_at)}` }),
    h("p", { text: analysis.summary || "" }),
    h("h3", { text: "Topics" }), topicsList(analysis.topics || []),
    analysis.unanswered.length ? [h("h3", { text: "Unanswered questions" }), h("ul", {}, analysis.unanswered.map((q) => h("li", { text: q })))] : null,
    h("h3", { text: "Sentiment" }), h("p", { text: sentimentLine(analysis.sentiment) }),
    fields.length ? [h("h3", { text: "Fields" }), h("dl", { class: "analysis-fields" }, fields.flatMap(([k, v]) => [h("dt", { text: k.replace(/_/g, " ") }), h("dd", { text: fieldValue(v) })]))] : null,
    rerun,
  ];
}

/**
 * Fill `container` with the call's analysis (fetched here) and return it, so the call page can place it inline.
 * @param {HTMLElement} container
 * @param {{id: string, status: string}} call
 * @param {object} ctx - the console's view context (can, notify, showError, isCurrent)
 */
export function renderCallAnalysis(container, call, ctx) {
  container.classList.add("panel");
  container.setAttribute("aria-labelledby", "analysis-title");
  const title = h("h2", { id: "analysis-title", text: "Analysis" });
  replace(container, title, h("p", { class: "loading", text: "Loading…" }));
  api.get(`/api/calls/${encodeURIComponent(call.id)}/analysis`).then(
    (analysis) => replace(container, title, body(analysis, call, ctx, container)),
    (error) => replace(container, title, h("p", { class: "muted", text: error.status === 404 ? "This call has not been analysed yet (calls are analysed when they end)." : "The analysis could not be loaded." })));
  return container;
}
