// SOP generator (issue 20): draft a standard operating procedure from how calls about one need were handled,
// edit it, approve it into the knowledge base. Every step cites the calls it was seen in.
import { api } from "../api.js";
import { field, fmtDateTime, h, pill, replace } from "../dom.js";
import { passageLink } from "./call_analysis.js";

const KIND_WORDS = { answer: "answer", tool: "tool", escalation: "escalation", manual: "added by hand" };

function callLinks(calls) {
  return calls.map((id, i) => [i ? ", " : "", h("a", { href: `#/calls/${encodeURIComponent(id)}`, text: `call ${i + 1}`, title: id })]);
}

function stepItem(step, index) {
  const text = h("textarea", { rows: "3", maxlength: "2000" });
  text.value = step.text;
  const item = h("li", { class: "sop-step" }, field(`Step ${index + 1}`, text),
    h("p", { class: "muted" }, pill(step.kind, "neutral", KIND_WORDS[step.kind] || step.kind), ` seen in ${step.calls.length} call${step.calls.length === 1 ? "" : "s"}: `, callLinks(step.calls)));
  item.read = () => ({ ...step, text: text.value });
  return item;
}

async function renderDetail(main, ctx, id) {
  const sop = await api.get(`/api/sops/${encodeURIComponent(id)}`);
  if (!ctx.isCurrent()) return;
  const title = h("input", { type: "text", value: sop.title, maxlength: "200" });
  const steps = sop.steps.map((step, index) => stepItem(step, index));
  const save = h("button", { type: "button", class: "button secondary", text: "Save changes" });
  const approve = h("button", { type: "button", class: "button primary", text: sop.status === "approved" ? "Publish again" : "Approve and publish" });
  save.addEventListener("click", async () => {
    try { await api.put(`/api/sops/${encodeURIComponent(id)}`, { title: title.value, steps: steps.map((s) => s.read()) }); ctx.notify("Saved as a new version.", "success"); renderDetail(main, ctx, id); } catch (error) { ctx.showError(error); }
  });
  approve.addEventListener("click", async () => {
    approve.disabled = true;
    try { await api.post(`/api/sops/${encodeURIComponent(id)}/approve`, {}); ctx.notify("Published to the knowledge base.", "success"); renderDetail(main, ctx, id); } catch (error) { ctx.showError(error); approve.disabled = false; }
  });
  replace(main,
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/sops", text: "SOP generator" }), " / ", h("span", { text: sop.title })),
    h("div", { class: "page-head" }, h("h1", { text: sop.title }), pill(sop.status, sop.status === "approved" ? "ended" : "neutral", sop.status)),
    h("p", { class: "muted", text: `Offline draft: assembled from ${sop.call_ids.length} call${sop.call_ids.length === 1 ? "" : "s"} about “${sop.topic}” (the steps seen most often, in their usual order); no model wrote it. Version ${sop.version}${sop.approved_at ? `, approved ${fmtDateTime(sop.approved_at)}` : ""}.` }),
    h("section", { class: "panel", "aria-labelledby": "steps-title" },
      h("h2", { id: "steps-title", text: "Steps" }),
      field("Title", title),
      steps.length ? h("ul", { class: "sop-steps" }, steps) : h("p", { text: "No common step was found in these calls." }),
      h("div", { class: "actions" }, save, approve)),
    h("section", { class: "panel", "aria-labelledby": "passages-title" },
      h("h2", { id: "passages-title", text: "Passages used" }),
      sop.passages.length ? h("ul", {}, sop.passages.map((p) => h("li", {}, passageLink(p.heading || p.title, p.document_id, p.chunk_id), p.excerpt ? `: “${p.excerpt}” ` : " ", h("span", { class: "muted" }, "(", callLinks(p.calls), ")")))) : h("p", { class: "muted", text: "None." })),
    h("section", { class: "panel", "aria-labelledby": "tools-title" },
      h("h2", { id: "tools-title", text: "Tools called and escalation points" }),
      sop.tools.length || sop.escalations.length ? h("ul", {},
        sop.tools.map((t) => h("li", {}, `Tool ${t.tool} `, h("span", { class: "muted" }, "(", callLinks(t.calls), ")"))),
        sop.escalations.map((e) => h("li", {}, `${e.text} `, h("span", { class: "muted" }, "(", callLinks(e.calls), ")")))) : h("p", { class: "muted", text: "No tool was called and nobody was escalated to in these calls." })),
    h("section", { class: "panel", "aria-labelledby": "calls-title" },
      h("h2", { id: "calls-title", text: "Source calls" }), h("p", {}, callLinks(sop.call_ids))));
}

/** The SOP generator page: a topic to draft from, the drafts, and one draft when its id is in the address. */
export async function renderSops(main, ctx) {
  if (ctx.params[0]) { await renderDetail(main, ctx, ctx.params[0]); return undefined; }
  const topic = h("input", { type: "text", minlength: "3", maxlength: "300", required: true, placeholder: "e.g. reset a password" });
  const generate = h("button", { type: "submit", class: "button primary", text: "Draft an SOP" });
  const form = h("form", { class: "inline-form" }, field("Topic", topic, "Calls whose questions mean the same are gathered; or start from a gap on the Autonomous learning page."), generate);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    generate.disabled = true;
    try { const made = await api.post("/api/sops", { topic: topic.value }); ctx.navigate(`#/sops/${made.id}`); } catch (error) { ctx.showError(error); generate.disabled = false; }
  });
  const data = await api.get("/api/sops");
  if (!ctx.isCurrent()) return undefined;
  replace(main,
    h("div", { class: "page-head" }, h("h1", { text: "SOP generator" })),
    h("section", { class: "panel" }, form),
    h("section", { class: "panel", "aria-labelledby": "sops-title" },
      h("h2", { id: "sops-title", text: "Procedures" }),
      data.items.length ? h("ul", { class: "sop-list" }, data.items.map((s) => h("li", {},
        h("a", { href: `#/sops/${encodeURIComponent(s.id)}`, text: s.title }), " ", pill(s.status, s.status === "approved" ? "ended" : "neutral", s.status),
        h("span", { class: "muted", text: ` ${s.steps.length} steps from ${s.call_ids.length} calls, ${fmtDateTime(s.updated_at)}` }))))
        : h("p", { class: "muted", text: "No procedure yet: draft one from a topic above." })));
  return undefined;
}
