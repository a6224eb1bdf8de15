// Knowledge base: documents with their ingestion status, multi-file upload, delete, the "not found" threshold the
// base derived for itself, a "test a question" box over the retrieval API, and the questions the desk could not answer.
import { api, ApiError } from "../api.js";
import { cardTable, codePill, field, fmtBytes, fmtDateTime, fmtMs, fmtNumber, fmtPercent, h, replace } from "../dom.js";

export const DOCUMENTS_PATH = "/api/knowledge/documents";
export const UPLOAD_PATH = "/api/knowledge/upload";
export const IMPORT_PATH = "/api/knowledge/import-url";
export const PROCESS_PATH = "/api/knowledge/process";
export const QUERY_PATH = "/api/rag/query";
export const UNANSWERED_PATH = "/api/rag/unanswered";
export const CALIBRATION_PATH = "/api/knowledge/calibration";
const ACCEPT = ".md,.markdown,.txt,.html,.htm,.pdf,.docx,.xlsx,.csv";
const POLL_MS = 2000;

function listOf(answer) {
  if (Array.isArray(answer)) return answer;
  return (answer && (answer.items || answer.data || answer.documents)) || [];
}

function documentRow(doc, ctx, reload) {
  const name = doc.title && doc.title !== doc.filename ? [h("div", { text: doc.title }), h("div", { class: "muted small", text: doc.filename })] : h("div", { text: doc.filename });
  const statusCell = h("td", {}, codePill("document_status", doc.status), doc.error ? h("div", { class: "error-text small", text: doc.error }) : null);
  let actions = null;
  if (ctx.can("knowledge:write")) {
    const remove = h("button", { type: "button", class: "button danger small", text: "Delete", "aria-label": `Delete ${doc.filename}` });
    remove.addEventListener("click", async () => {
      if (!window.confirm(`Delete “${doc.filename}” from the knowledge base?`)) return;
      remove.disabled = true;
      try {
        await api.del(`${DOCUMENTS_PATH}/${encodeURIComponent(doc.id)}`);
        ctx.notify(`${doc.filename} deleted.`, "success");
        reload(true);
      } catch (error) {
        ctx.showError(error);
        remove.disabled = false;
      }
    });
    const retry = doc.status === "failed" ? h("button", { type: "button", class: "button secondary small", text: "Retry", "aria-label": `Process ${doc.filename} again` }) : null;
    retry?.addEventListener("click", async () => {
      retry.disabled = true;
      try {
        await api.post(PROCESS_PATH, { document_ids: [doc.id] });
        ctx.notify(`${doc.filename} queued again.`, "success");
        reload(true);
      } catch (error) {
        ctx.showError(error);
        retry.disabled = false;
      }
    });
    actions = h("div", { class: "row-actions" }, retry, remove);
  }
  return h("tr", { dataset: { documentId: doc.id, status: doc.status } },
    h("td", {}, name), statusCell,
    h("td", { class: "num", text: doc.chunk_count ?? "—" }),
    h("td", { class: "num", text: fmtBytes(doc.size_bytes) }),
    h("td", { text: fmtDateTime(doc.updated_at || doc.created_at) }),
    ctx.can("knowledge:write") ? h("td", {}, actions) : null);
}

function uploadForm(ctx, onUploaded) {
  const input = h("input", { type: "file", name: "files", multiple: true, accept: ACCEPT, required: true });
  const submit = h("button", { type: "submit", class: "button primary", text: "Upload" });
  const form = h("form", { class: "inline-form", "aria-label": "Upload documents" },
    field("Documents", input, "Markdown, text, HTML, PDF, DOCX or XLSX; several at once."), h("div", { class: "filter-actions" }, submit));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!input.files.length) return;
    const data = new FormData();
    for (const file of input.files) data.append("files", file, file.name);
    submit.disabled = true;
    submit.textContent = "Uploading…";
    try {
      const result = (await api.upload(UPLOAD_PATH, data)) || {};
      const documents = result.documents || [];
      const fresh = documents.filter((doc) => !doc.duplicate).length;
      const duplicates = documents.length - fresh;
      ctx.notify([
        `${fresh} file${fresh === 1 ? "" : "s"} queued for ingestion.`,
        duplicates ? `${duplicates} already in the knowledge base.` : "",
      ].join(" ").trim(), "success");
      for (const refused of result.rejected || []) ctx.notify(new Error(`${refused.filename}: ${refused.reason}`));
      form.reset();
      onUploaded(true);
    } catch (error) {
      ctx.showError(error);
    } finally {
      submit.disabled = false;
      submit.textContent = "Upload";
    }
  });
  return form;
}

function importForm(ctx, onImported) {
  const url = h("input", { type: "url", name: "url", required: true, placeholder: "The address of a help page or sitemap.xml" });
  const submit = h("button", { type: "submit", class: "button secondary", text: "Import" });
  const form = h("form", { class: "inline-form", "aria-label": "Import a web page" },
    field("Web page or sitemap URL", url), h("div", { class: "filter-actions" }, submit));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    try {
      const result = (await api.post(IMPORT_PATH, { url: url.value.trim() })) || {};
      const count = (result.documents || []).length;
      ctx.notify(`${count} page${count === 1 ? "" : "s"} imported; ingestion started.`, "success");
      for (const refused of result.rejected || []) ctx.notify(new Error(`${refused.filename}: ${refused.reason}`));
      form.reset();
      onImported(true);
    } catch (error) {
      ctx.showError(error);
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

function passageView(passage, index) {
  return h("li", { class: "passage", dataset: { chunkId: passage.chunk_id } },
    h("div", { class: "passage-head" },
      h("strong", { text: `[${index + 1}] ${passage.title || passage.citation || "document"}` }),
      h("span", { class: "muted mono", text: `score ${Number(passage.score).toFixed(3)}` })),
    h("p", { class: "passage-text", text: passage.text }),
    passage.citation ? h("p", { class: "citation", text: `Citation: ${passage.citation}` }) : null);
}

function askForm(ctx) {
  const question = h("input", { type: "text", name: "question", required: true, maxlength: 500, placeholder: "e.g. How do I reset my router?" });
  const submit = h("button", { type: "submit", class: "button primary", text: "Ask" });
  const result = h("div", { class: "answer", "aria-live": "polite" });
  const form = h("form", { class: "inline-form ask", "aria-label": "Test a question" }, field("Question", question), h("div", { class: "filter-actions" }, submit));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    replace(result, h("p", { class: "muted", text: "Searching…" }));
    try {
      const answer = (await api.post(QUERY_PATH, { question: question.value.trim() })) || {};
      const passages = answer.passages || [];
      const verdict = answer.found
        ? h("p", { class: "verdict verdict-found", role: "status", text: `Found · ${passages.length} passage${passages.length === 1 ? "" : "s"} · ${fmtMs(answer.latency_ms)}` })
        : h("p", { class: "verdict verdict-missing", role: "status", text: `Not found: nothing scores above the threshold, so the desk would say it does not know and offer a person. · ${fmtMs(answer.latency_ms)}` });
      // Found: what the agent would say (its own sentence choice) beside the passage it comes from.
      const said = answer.found && answer.answer
        ? h("div", { class: "grid-2 answer-pair" },
          h("div", { class: "answer-text", "aria-label": "What the agent would say" }, h("h3", { text: "The agent would say" }), h("p", { class: "spoken", text: `“${answer.answer}”` })),
          h("div", {}, h("h3", { text: "From this passage" }), h("ol", { class: "passages" }, passageView(passages[0], 0))))
        : null;
      const rest = answer.found ? passages.slice(1) : passages;
      replace(result,
        verdict,
        said,
        rest.length
          ? [h("h3", { text: answer.found ? "Other passages, best first" : "Closest passages (below the threshold)" }),
            h("ol", { class: `passages${answer.found ? "" : " weak"}`, start: answer.found ? 2 : 1 }, rest.map((p, i) => passageView(p, answer.found ? i + 1 : i)))]
          : null);
    } catch (error) {
      replace(result);
      ctx.showError(error);
    } finally {
      submit.disabled = false;
    }
  });
  return h("div", {}, form, result);
}

const score = (value) => (value === null || value === undefined ? "—" : Number(value).toFixed(3));

function calibrationFacts(cal) {
  const off = cal.chunks === null || cal.chunks === undefined;
  const how = cal.source === "calibrated"
    ? "derived from this knowledge base"
    : off
      ? "configured (knowledge.score_threshold); calibration is off (knowledge.calibrate)"
      : cal.chunks === 0
        ? "configured (knowledge.score_threshold): the base has no passages yet"
        : `configured (knowledge.score_threshold): ${fmtNumber(cal.chunks)} passage${cal.chunks === 1 ? " is" : "s are"} too few to derive the base's own`;
  const facts = [
    ["Not-found threshold", `${score(cal.threshold)}, ${how}`],
    ["Confirms first", `a best passage from ${score(cal.confirm_from)} to just under ${score(cal.threshold)}: the desk asks “Do you mean …?”, and a caller who says no is offered a person`],
  ];
  if (cal.source === "calibrated") {
    facts.push(
      ["The base's own questions", `${fmtNumber(cal.positives)} made from its passages: median score ${score(cal.positive_median)}; ${fmtPercent(cal.positive_rate)} at or above the threshold`],
      ["Off-topic questions", `${fmtNumber(cal.negatives)} everyday ones: 95th percentile ${score(cal.negative_p95)}; ${fmtPercent(cal.negative_rate)} below the threshold`]);
  }
  if (!off && cal.chunks) facts.push(["Derived", `${fmtDateTime(cal.calibrated_at)} from ${fmtNumber(cal.chunks)} passage${cal.chunks === 1 ? "" : "s"} (${cal.model_id})`]);
  return h("dl", { class: "facts" }, facts.map(([term, value]) => [h("dt", { text: term }), h("dd", { text: value })]));
}

// The threshold calls and typed tests share; while a changed base is being calibrated again it polls until done.
function calibrationPanel(ctx, stopped) {
  const body = h("div", {}, h("p", { class: "muted", text: "Loading…" }));
  const status = h("p", { class: "muted small", role: "status" });
  let timer = null;
  async function refresh() {
    clearTimeout(timer);
    let cal;
    try {
      cal = await api.get(CALIBRATION_PATH);
    } catch (error) {
      ctx.showError(error);
      return;
    }
    if (stopped()) return;
    const settling = !cal.current || cal.calibrating;
    replace(body, calibrationFacts(cal));
    status.textContent = settling
      ? "The documents changed: the threshold is being derived again (the one above applies until then)…"
      : "Derived again whenever documents are added or removed.";
    if (settling) timer = setTimeout(refresh, POLL_MS);
  }
  const panel = h("section", { class: "panel", "aria-labelledby": "threshold-title" },
    h("h2", { id: "threshold-title", text: "When the desk says it does not know" }),
    h("p", { class: "muted", text: "A question is answered only when its best passage scores at least the threshold, on calls and in the test below; under it the desk says it could not find that and offers a person." }),
    body, status);
  return { panel, refresh, stop: () => clearTimeout(timer) };
}

async function unansweredPanel() {
  let answer;
  try {
    answer = await api.get(UNANSWERED_PATH, { query: { limit: 20 } });
  } catch (error) {
    if (error instanceof ApiError && (error.status === 404 || error.status === 403)) return null;
    throw error;
  }
  const items = listOf(answer);
  return h("section", { class: "panel", "aria-labelledby": "unanswered-title" },
    h("h2", { id: "unanswered-title", text: "Questions the desk could not answer" }),
    items.length
      ? h("ul", { class: "unanswered" }, items.map((item) => h("li", {},
        h("span", { text: item.question }),
        item.typed ? h("span", { class: "pill pill-neutral", text: item.typed === item.count ? "typed test" : `${item.typed} typed test${item.typed === 1 ? "" : "s"}` }) : null,
        h("span", { class: "muted small", text: [`asked ${item.count}×`, `last ${fmtDateTime(item.last_asked_at)}`,
          item.best_score !== null && item.best_score !== undefined ? `best score ${Number(item.best_score).toFixed(3)}` : null].filter(Boolean).join(" · ") }))))
      : h("p", { class: "empty", text: "None so far." }));
}

export async function renderKnowledge(main, ctx) {
  const tbody = h("tbody");
  const status = h("p", { class: "muted small", role: "status" });
  const unansweredSlot = h("div");
  let timer = null;
  let stopped = false;
  let wasBusy = false;
  const threshold = calibrationPanel(ctx, () => stopped);

  // changed: documents were added or removed here, so the threshold is looked at again once ingestion ends.
  async function load(changed = false) {
    clearTimeout(timer);
    try {
      const docs = listOf(await api.get(DOCUMENTS_PATH, { query: { limit: 500 } }));
      if (stopped) return;
      replace(tbody, docs.length ? docs.map((doc) => documentRow(doc, ctx, load))
        : h("tr", {}, h("td", { colspan: 6, class: "empty", text: ctx.can("knowledge:write") ? "No documents yet. Upload some to teach the desk." : "No documents yet." })));
      const busy = docs.filter((doc) => doc.status === "pending" || doc.status === "processing").length;
      status.textContent = `${docs.length} document${docs.length === 1 ? "" : "s"}${busy ? ` · ${busy} being ingested` : ""}.`;
      if (busy) timer = setTimeout(load, POLL_MS);
      else if (wasBusy || changed) threshold.refresh();
      wasBusy = busy > 0;
    } catch (error) {
      ctx.showError(error);
    }
  }

  const columns = ["Document", "Status", "Chunks", "Size", "Updated"];
  if (ctx.can("knowledge:write")) columns.push("");
  replace(main,
    h("div", { class: "page-head" }, h("h1", { text: "Knowledge" })),
    ctx.can("knowledge:write")
      ? h("section", { class: "panel", "aria-labelledby": "upload-title" }, h("h2", { id: "upload-title", text: "Add documents" }),
        h("div", { class: "grid-2" }, uploadForm(ctx, load), importForm(ctx, load)))
      : null,
    h("section", { class: "panel flush", "aria-labelledby": "docs-title" },
      h("h2", { id: "docs-title", class: "panel-title", text: "Documents" }),
      h("div", { class: "table-wrap" }, cardTable(h("table", { class: "table" },
        h("thead", {}, h("tr", {}, columns.map((t) => h("th", { scope: "col", class: ["Chunks", "Size"].includes(t) ? "num" : null, text: t })))), tbody))),
      h("div", { class: "table-foot" }, status)),
    threshold.panel,
    h("section", { class: "panel", "aria-labelledby": "ask-title" },
      h("h2", { id: "ask-title", text: "Test a question" }),
      h("p", { class: "muted", text: "See what the voice agent would say, and the passage it would say it from. A question that scores below the threshold gets \"I couldn't find that\" and the offer of a person, on calls exactly as here." }),
      askForm(ctx)),
    unansweredSlot);
  await load();
  threshold.refresh();
  unansweredPanel().then((panel) => {
    if (panel && !stopped) replace(unansweredSlot, panel);
  }).catch((error) => ctx.showError(error));
  return () => {
    stopped = true;
    clearTimeout(timer);
    threshold.stop();
  };
}
