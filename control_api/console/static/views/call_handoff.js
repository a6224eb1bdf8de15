// A call's handoffs on its detail page: queued → offered → accepted / timed out / abandoned (or a cold transfer), each with its time,
// who took it, the wait, and the wrap-up (notes, disposition).
import { api } from "../api.js";
import { fmtTime, h, pill, replace } from "../dom.js";

const STEPS = {
  queued: "Queued",
  offered: "Offered",
  waiting: "Still waiting",
  accepted: "Accepted",
  declined_by: "Declined by an agent",
  audio_connected: "Two-way audio",
  timed_out: "Timed out",
  declined: "Declined by everyone",
  no_agents: "Nobody available",
  abandoned: "Caller hung up",
  ai_returned: "AI back on the call",
  callback_requested: "Callback requested",
  caller_left: "Caller left",
  completed: "Completed",
  cold_transfer: "Transfer sent",
  transferred: "Transferred",
  failed: "Transfer failed",
  transfer_failed: "Transfer failed, queued for a person instead",
  cold_transfer_unavailable: "This line cannot be transferred, queued for a person instead",
};

/** A step's words, with the number or address a transfer went to. */
function stepText(step) {
  const words = STEPS[step.status] || step.status.replaceAll("_", " ");
  return step.to && typeof step.to === "string" ? `${words} (to ${step.to})` : words;
}

/** A panel (filled once loaded) with the call's handoff timelines; nothing when the call had none. */
export function renderCallHandoff(callId) {
  const panel = h("section", { class: "panel call-handoff", "aria-labelledby": "handoff-title", hidden: true });
  api.get("/api/handoffs", { query: { call_id: callId } }).then(async (list) => {
    if (!list.items.length) return;
    const details = await Promise.all(list.items.map((i) => api.get(`/api/handoffs/${encodeURIComponent(i.id)}`)));
    replace(panel, h("h2", { id: "handoff-title", text: "Handoff to a person" }), details.map((d) =>
      h("div", { class: "stack", dataset: { handoff: d.id } },
        h("p", {}, pill(d.status), ` ${d.reason || ""} · waited ${Math.round(d.wait_s)} s`),
        h("ol", { class: "timeline" }, (d.timeline || []).map((step) =>
          h("li", { dataset: { status: step.status } }, h("span", { class: "muted", text: `${fmtTime(step.at)} ` }), stepText(step)))),
        d.disposition ? h("p", {}, h("strong", { text: "Disposition: " }), d.disposition) : null,
        d.notes ? h("p", {}, h("strong", { text: "Notes: " }), d.notes) : null)));
    panel.hidden = false;
  }).catch(() => { /* an agent who did not take it may not see it: no panel */ });
  return panel;
}
