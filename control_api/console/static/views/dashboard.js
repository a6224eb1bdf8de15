// Dashboard: the desk's numbers from GET /api/dashboard/stats, refreshed every 15 s.
import { api } from "../api.js";
import { bars, donut, legend, meter } from "../charts.js";
import { LATENCY_MEANS, OUTCOME_ORDER, fmtDuration, fmtMs, fmtNumber, fmtPercent, fmtTime, h, label, outcomeTone, replace } from "../dom.js";

const REFRESH_MS = 15000;

/** The first present (non-undefined) field of `object` among `names` (dotted paths allowed). */
function pick(object, ...names) {
  for (const name of names) {
    let value = object;
    for (const key of name.split(".")) value = value === null || value === undefined ? undefined : value[key];
    if (value !== undefined) return value;
  }
  return null;
}

function tile(label, value, { id, sub, gauge } = {}) {
  return h("div", { class: "tile", dataset: id ? { stat: id } : undefined },
    h("div", { class: "tile-label", text: label }),
    h("div", { class: "tile-value", text: value }),
    gauge || null,
    sub ? h("div", { class: "tile-sub", text: sub }) : null);
}

const STAGES = [["vad", "Turn end (VAD)", "vad"], ["asr", "ASR", "asr"], ["retrieval", "Retrieval", "retrieval"], ["llm", "LLM", "llm"], ["tts", "TTS", "tts"]];

/** Today's calls per UTC hour, stacked by outcome (every hour shown, empty ones too), in the console's outcome colours. */
function volumeChart(report) {
  const byHour = new Map();
  for (const bucket of (report && report.volume) || []) {
    const hour = Number(String(bucket.bucket).slice(11, 13));
    if (!Number.isNaN(hour)) byHour.set(hour, bucket.outcomes || {});
  }
  const present = OUTCOME_ORDER.filter((o) => [...byHour.values()].some((outcomes) => outcomes[o]));
  const data = [];
  for (let hour = 0; hour < 24; hour += 1) {
    const outcomes = byHour.get(hour) || {};
    data.push({
      label: hour % 3 === 0 ? String(hour).padStart(2, "0") : "",
      segments: present.map((o) => ({ name: label("outcome", o), tone: outcomeTone(o), value: outcomes[o] || 0 })),
    });
  }
  return [bars(data, { title: "Calls per hour today (UTC), by outcome", height: 150 }),
    present.length ? legend(present.map((o) => [label("outcome", o), outcomeTone(o)])) : null];
}

/** p50 and p95 of each voice stage today. */
function stageTable(report) {
  const latency = (report && report.latency_ms) || {};
  const rows = [["total", "Voice to voice", null], ...STAGES].map(([key, name, tone]) => {
    const dist = latency[key] || {};
    return h("tr", {},
      h("th", { scope: "row" }, tone ? h("span", { class: `swatch tone-${tone}`, "aria-hidden": "true" }) : null, ` ${name}`),
      h("td", { class: "num", text: fmtMs(dist.p50) }), h("td", { class: "num", text: fmtMs(dist.p95) }));
  });
  return h("table", { class: "table compact" },
    h("thead", {}, h("tr", {}, h("th", { scope: "col", text: "Stage" }), h("th", { scope: "col", class: "num", text: "p50" }), h("th", { scope: "col", class: "num", text: "p95" }))),
    h("tbody", {}, rows));
}

function callbackWait(seconds) {
  return seconds === null || seconds === undefined ? "nobody to call back" : `oldest has waited ${fmtDuration(seconds * 1000)}`;
}

function renderStats(container, stats, volume, performance) {
  const sentiment = pick(stats, "sentiment_mix", "sentiment") || {};
  const p50 = pick(stats, "latency_p50_ms");
  const p95 = pick(stats, "latency_p95_ms");
  const containment = pick(stats, "containment_rate");
  const handoff = pick(stats, "handoff_rate");
  replace(container,
    h("div", { class: "tiles" },
      tile("Live calls", fmtNumber(pick(stats, "live_calls")), { id: "live_calls", sub: "in progress now" }),
      tile("Calls today", fmtNumber(pick(stats, "calls_today")), { id: "calls_today", sub: `${fmtNumber(pick(stats, "ended_today"))} ended · since 00:00 UTC` }),
      tile("Containment", fmtPercent(containment), { id: "containment_rate", gauge: meter(containment, outcomeTone("resolved")), sub: `${fmtNumber(pick(stats, "contained_today"))} fully answered, no handoff` }),
      tile("Handoff rate", fmtPercent(handoff), { id: "handoff_rate", gauge: meter(handoff, outcomeTone("handed_off")), sub: "passed to a person or callback" }),
      tile("Avg handle time", fmtDuration(pick(stats, "average_handle_time_ms")), { id: "aht", sub: "ended calls today" }),
      tile("Voice latency p50", fmtMs(p50), { id: "latency", sub: `p95 ${fmtMs(p95)} · ${fmtNumber(pick(stats, "latency_turns"))} turns` }),
      tile("Callbacks waiting", fmtNumber(pick(stats, "callbacks_waiting")), { id: "callbacks_waiting", sub: callbackWait(pick(stats, "oldest_callback_wait_s")) })),
    h("div", { class: "grid-3" },
      h("section", { class: "panel", "aria-labelledby": "volume-title" },
        h("h2", { id: "volume-title", text: "Calls per hour today (UTC)" }),
        volume ? volumeChart(volume) : h("p", { class: "muted", text: "Not available." })),
      h("section", { class: "panel", "aria-labelledby": "sentiment-title" },
        h("h2", { id: "sentiment-title", text: "Caller sentiment today" }),
        donut([
          { label: "Positive", value: pick(sentiment, "positive") || 0, tone: "good" },
          { label: "Neutral", value: pick(sentiment, "neutral") || 0, tone: "neutral" },
          { label: "Negative", value: pick(sentiment, "negative") || 0, tone: "bad" },
        ], "Caller sentiment mix of today's calls"),
        pick(sentiment, "unscored") ? h("p", { class: "muted small", text: `${pick(sentiment, "unscored")} call(s) not scored yet.` }) : null),
      h("section", { class: "panel", "aria-labelledby": "latency-title" },
        h("h2", { id: "latency-title", text: "Voice latency today" }),
        h("p", { class: "muted small", text: LATENCY_MEANS }),
        performance ? stageTable(performance) : h("p", { class: "muted", text: "Not available." }))),
    h("p", { class: "muted small", text: `Updated ${fmtTime(pick(stats, "as_of") || new Date().toISOString())} · refreshes every ${REFRESH_MS / 1000} s` }));
}

export async function renderDashboard(main, ctx) {
  const body = h("div", { class: "dashboard-body", "aria-busy": "true" });
  const refreshButton = h("button", { type: "button", class: "button secondary", text: "Refresh" });
  replace(main, h("div", { class: "page-head" }, h("h1", { text: "Dashboard" }), refreshButton), body);
  let controller = null;
  let failing = false;
  async function load() {
    controller?.abort();
    controller = new AbortController();
    body.setAttribute("aria-busy", "true");
    try {
      const signal = controller.signal;
      const stats = (await api.get("/api/dashboard/stats", { signal })) || {};
      const window = { since: pick(stats, "since"), until: new Date(Date.now() + 60000).toISOString() };
      // The charts are extras: the tiles still show when an analytics report fails.
      const [volume, performance] = await Promise.all([
        api.get("/api/analytics/calls", { query: { ...window, bucket: "hour" }, signal }).catch(() => null),
        api.get("/api/analytics/performance", { query: window, signal }).catch(() => null),
      ]);
      renderStats(body, stats, volume, performance);
      failing = false;
    } catch (error) {
      if (error.name === "AbortError") return;
      if (!failing) ctx.showError(error); // one message per outage, not one every 15 s
      failing = true;
      if (!body.firstChild) replace(body, h("p", { class: "error-text", text: error.message }));
    } finally {
      body.setAttribute("aria-busy", "false");
    }
  }
  refreshButton.addEventListener("click", load);
  await load();
  const timer = setInterval(() => {
    if (document.visibilityState === "visible") load();
  }, REFRESH_MS);
  return () => {
    clearInterval(timer);
    controller?.abort();
  };
}
