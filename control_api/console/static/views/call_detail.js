// One call: summary, transcript (both sides) with latency per turn, recording, notes/disposition/tags.
import { api } from "../api.js";
import { bars, legend } from "../charts.js";
import { codePill, field, fmtDateTime, fmtDuration, fmtMs, fmtTime, h, label, pill, replace } from "../dom.js";
import { renderCallHandoff } from "./call_handoff.js";
import { renderCallAnalysis } from "./call_analysis.js";

const STAGES = [["vad_ms", "Turn end (VAD)", "vad"], ["asr_ms", "ASR", "asr"], ["retrieval_ms", "Retrieval", "retrieval"], ["llm_ms", "LLM", "llm"], ["tts_ms", "TTS", "tts"]];

function pickList(answer, ...names) {
  if (Array.isArray(answer)) return answer;
  for (const name of names) if (answer && Array.isArray(answer[name])) return answer[name];
  return [];
}

/** Latency records keyed by turn number, from the transcript answer or the call's events. */
function latencyByTurn(transcript, call) {
  const records = [
    ...pickList(transcript, "latency", "latencies"),
    ...pickList(call, "latency", "latencies"),
    ...pickList(transcript, "events").filter((e) => e.kind === "latency"),
    ...pickList(call, "events").filter((e) => e.kind === "latency"),
  ];
  const map = new Map();
  for (const record of records) {
    const seq = record.turn_seq ?? record.seq;
    if (seq !== undefined && seq !== null && !map.has(seq)) map.set(seq, record);
  }
  return map;
}

function turnLatency(turn, latency) {
  const record = latency.get(turn.seq) || turn.latency || null;
  const total = turn.latency_ms ?? turn.total_ms ?? (record ? record.total_ms : null);
  if (total === null || total === undefined) return null;
  const split = record ? STAGES.filter(([key]) => record[key] !== null && record[key] !== undefined)
    .map(([key, name]) => `${name} ${fmtMs(record[key])}`).join(" · ") : "";
  return h("span", { class: "latency-chip", title: split || null }, h("span", { class: "visually-hidden", text: "Response latency " }),
    fmtMs(total), split ? h("span", { class: "muted", text: ` (${split})` }) : null);
}

function transcriptView(turns, latency) {
  if (!turns.length) return h("p", { class: "empty", text: "No transcript was stored for this call." });
  return h("ol", { class: "transcript", "aria-label": "Transcript" }, turns.map((turn) => {
    const side = turn.role === "caller" ? "caller" : turn.role === "system" ? "system" : "agent";
    return h("li", { class: `turn turn-${side}`, dataset: { role: turn.role, seq: turn.seq } },
      h("div", { class: "turn-meta" },
        h("strong", { text: label("speaker", turn.role) }),
        h("span", { class: "muted", text: fmtTime(turn.started_at || turn.ended_at) }),
        turn.interrupted ? pill("interrupted", "warn", "Cut short by the caller") : null,
        turn.sentiment !== null && turn.sentiment !== undefined && turn.role === "caller" && Math.abs(turn.sentiment) >= 0.05
          ? h("span", { class: "muted", text: turn.sentiment > 0 ? "sounded positive" : "sounded negative" }) : null,
        turnLatency(turn, latency)),
      h("p", { class: "turn-text", text: turn.text }),
      (turn.citations || []).length
        ? h("p", { class: "muted small", text: `Answered from: ${turn.citations.join("; ")}` })
        : turn.role === "agent" && turn.seq > 0 ? h("p", { class: "muted small", text: "Not from the knowledge base." }) : null);
  }));
}

function latencyChart(latency) {
  const records = [...latency.entries()].sort((a, b) => a[0] - b[0]);
  if (!records.length) return null;
  const data = records.map(([seq, record]) => {
    const segments = STAGES.map(([key, name, tone]) => ({ name, tone, value: Number(record[key]) || 0 }));
    const split = segments.reduce((sum, s) => sum + s.value, 0);
    const rest = Math.max(0, (Number(record.total_ms) || 0) - split);
    segments.push({ name: "Other", tone: "other", value: rest });
    return { label: `#${seq}`, segments };
  });
  return h("section", { class: "panel", "aria-labelledby": "latency-chart-title" },
    h("h2", { id: "latency-chart-title", text: "Latency per turn" }),
    bars(data, { title: "Latency per agent turn, split by stage", unit: " ms" }),
    legend([...STAGES.map(([, name, tone]) => [name, tone]), ["Other", "other"]]));
}

function recordingView(call) {
  const recordings = pickList(call, "recordings");
  const present = call.has_recording || call.recording || recordings.length;
  if (!present) return h("p", { class: "muted", text: "No recording (none made, or the caller declined)." });
  const audio = h("audio", { controls: true, preload: "none", src: `/api/calls/${encodeURIComponent(call.id)}/recording`, "aria-label": "Call recording" });
  return h("div", {}, audio, h("p", { class: "muted small", text: "Playing the recording is recorded in the audit log." }));
}

function annotationForm(call, ctx, onSaved) {
  const mayEdit = ctx.can("calls:write") || (ctx.can("calls:annotate_own") && call.agent_user_id === ctx.user.id);
  const disposition = h("input", { type: "text", name: "disposition", value: call.disposition || "", maxlength: 100, disabled: !mayEdit });
  const tags = h("input", { type: "text", name: "tags", value: (call.tags || []).join(", "), disabled: !mayEdit });
  const notes = h("textarea", { name: "notes", rows: 5, disabled: !mayEdit });
  notes.value = call.notes || "";
  const save = h("button", { type: "submit", class: "button primary", text: "Save" });
  const form = h("form", { class: "stack", "aria-label": "Notes, disposition and tags" },
    field("Disposition", disposition), field("Tags", tags, "Separate tags with commas."), field("Notes", notes),
    mayEdit ? h("div", {}, save) : h("p", { class: "muted small", text: "Your role can read these but not change them." }));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    save.disabled = true;
    try {
      const body = {
        disposition: disposition.value.trim() || null,
        notes: notes.value,
        tags: tags.value.split(",").map((t) => t.trim()).filter(Boolean),
      };
      const updated = await api.put(`/api/calls/${encodeURIComponent(call.id)}`, body);
      ctx.notify("Call updated.", "success");
      onSaved(updated || { ...call, ...body });
    } catch (error) {
      ctx.showError(error);
    } finally {
      save.disabled = false;
    }
  });
  return form;
}

/**
 * Recording consent as what happened (agent/calls/consent.py): the greeting's first agent turn is the notice;
 * recording is agreed only when it was heard whole, and only when this desk records at all.
 */
export function consentWords(call, turns) {
  if (call.consent_recording === true) return "Recorded: the caller heard the whole recording notice";
  const greeting = turns.find((turn) => turn.role === "agent");
  if (call.consent_recording === false) {
    if (greeting && greeting.interrupted) return "Not recorded: notice not heard in full (the caller spoke over the greeting)";
    return "Not recorded: recording is switched off for this desk";
  }
  return greeting ? "Not decided (no recording notice was given)" : "Not decided (the call ended before the greeting)";
}

function summary(call, turns, outcome) {
  const asked = outcome && outcome.questions
    ? `${outcome.questions - outcome.unanswered} of ${outcome.questions} answered from the knowledge base`
    : outcome ? "No question asked" : null;
  const facts = [
    ["Caller", call.caller_name || call.caller_number || call.caller_email || "Unknown"],
    call.caller_name && call.caller_number ? ["Number", call.caller_number] : null,
    ["Channel", label("channel", call.channel)],
    ["Direction", label("direction", call.direction)],
    ["Outcome", outcome && outcome.outcome ? label("outcome", outcome.outcome) : label("outcome", call.outcome || (["ended", "failed"].includes(call.status) ? "none" : "live"))],
    asked ? ["Questions", asked] : null,
    ["Started", fmtDateTime(call.started_at)],
    ["Ended", call.ended_at ? fmtTime(call.ended_at) : "—"],
    ["Duration", fmtDuration(call.duration_ms)],
    ["How it ended", label("end_reason", call.end_reason)],
    ["Latency p50 / p95", `${fmtMs(call.latency_p50_ms)} / ${fmtMs(call.latency_p95_ms)}`],
    ["Recording", consentWords(call, turns)],
  ].filter(Boolean);
  return h("dl", { class: "facts" }, facts.map(([term, value]) => [h("dt", { text: term }), h("dd", { text: value ?? "—" })]));
}

export async function renderCallDetail(main, ctx) {
  const callId = ctx.params[0];
  const path = `/api/calls/${encodeURIComponent(callId)}`;
  const [call, transcript, outcome] = await Promise.all([
    api.get(path),
    api.get(`${path}/transcript`),
    // The outcome by the containment rule (every question answered, no handoff); the page works without it.
    api.get(`/api/analytics/calls/${encodeURIComponent(callId)}/outcome`).catch(() => null),
  ]);
  if (!ctx.isCurrent()) return undefined;
  const turns = pickList(transcript, "turns", "items", "data").slice().sort((a, b) => a.seq - b.seq);
  const latency = latencyByTurn(transcript, call);

  // A live call's transcript grows: refreshed on request, not polled (every transcript read is audited).
  const live = !["ended", "failed"].includes(call.status);
  const refresh = live ? h("button", { type: "button", class: "button secondary small", text: "Refresh transcript" }) : null;
  refresh?.addEventListener("click", () => ctx.navigate(location.hash));
  // The outcome is shown once, in words, in the Summary (by the containment rule), not again as a badge here.
  const badges = h("div", { class: "badges" }, codePill("status", call.status),
    call.sentiment_label ? codePill("sentiment", call.sentiment_label) : null, refresh);
  const annotations = h("div");
  const fill = (current) => replace(annotations, annotationForm(current, ctx, fill));
  fill(call);

  replace(main,
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/calls", text: "Calls" }), " / ",
      h("span", { text: fmtDateTime(call.started_at) })),
    h("div", { class: "page-head" }, h("h1", { text: `Call with ${call.caller_name || call.caller_number || call.caller_email || "unknown caller"}` }), badges),
    h("div", { class: "detail-grid" },
      h("div", { class: "detail-main" },
        h("section", { class: "panel", "aria-labelledby": "transcript-title" },
          h("h2", { id: "transcript-title", text: `Transcript (${turns.length} turn${turns.length === 1 ? "" : "s"})` }),
          transcriptView(turns, latency)),
        renderCallHandoff(callId),
        renderCallAnalysis(h("section"), call, ctx),
        latencyChart(latency)),
      h("aside", { class: "detail-side" },
        h("section", { class: "panel", "aria-labelledby": "summary-title" }, h("h2", { id: "summary-title", text: "Summary" }), summary(call, turns, outcome)),
        h("section", { class: "panel", "aria-labelledby": "recording-title" }, h("h2", { id: "recording-title", text: "Recording" }), recordingView(call)),
        h("section", { class: "panel", "aria-labelledby": "notes-title" }, h("h2", { id: "notes-title", text: "Notes and disposition" }), annotations))));
  return undefined;
}
