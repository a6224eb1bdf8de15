// Dashboard: the desk's numbers from GET /api/dashboard/stats, refreshed every 15 s.
import { api } from "../api.js";
import { donut, meter } from "../charts.js";
import { fmtDuration, fmtMs, fmtNumber, fmtPercent, fmtTime, h, replace } from "../dom.js";

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

function renderStats(container, stats, updatedAt) {
  const sentiment = pick(stats, "sentiment_mix", "sentiment") || {};
  const live = pick(stats, "live_calls", "active_calls");
  const today = pick(stats, "calls_today", "today_calls", "today_volume", "volume_today");
  const containment = pick(stats, "containment_rate");
  const handoff = pick(stats, "handoff_rate");
  const aht = pick(stats, "average_handle_time_ms", "avg_handle_time_ms", "aht_ms");
  const p50 = pick(stats, "latency_p50_ms", "voice_latency_p50_ms", "latency.p50_ms");
  const p95 = pick(stats, "latency_p95_ms", "voice_latency_p95_ms", "latency.p95_ms");
  replace(container,
    h("div", { class: "tiles" },
      tile("Live calls", fmtNumber(live), { id: "live_calls", sub: "in progress now" }),
      tile("Calls today", fmtNumber(today), { id: "calls_today", sub: "since midnight (UTC)" }),
      tile("Containment", fmtPercent(containment), { id: "containment_rate", gauge: meter(containment, "good"), sub: "resolved without a human" }),
      tile("Handoff rate", fmtPercent(handoff), { id: "handoff_rate", gauge: meter(handoff, "warn"), sub: "passed to a human agent" }),
      tile("Avg handle time", fmtDuration(aht), { id: "aht", sub: "ended calls today" }),
      tile("Voice latency", `${fmtMs(p50)}`, { id: "latency", sub: `p50 · p95 ${fmtMs(p95)}` })),
    h("div", { class: "grid-2" },
      h("section", { class: "panel", "aria-labelledby": "sentiment-title" },
        h("h2", { id: "sentiment-title", text: "Caller sentiment today" }),
        donut([
          { label: "Positive", value: pick(sentiment, "positive") || 0, tone: "good" },
          { label: "Neutral", value: pick(sentiment, "neutral") || 0, tone: "neutral" },
          { label: "Negative", value: pick(sentiment, "negative") || 0, tone: "bad" },
        ], "Caller sentiment mix")),
      h("section", { class: "panel", "aria-labelledby": "latency-title" },
        h("h2", { id: "latency-title", text: "Voice latency" }),
        h("p", { class: "muted", text: "From the caller's last word to the agent's first sound." }),
        h("dl", { class: "facts" },
          h("dt", { text: "Median (p50)" }), h("dd", { dataset: { stat: "latency_p50" }, text: fmtMs(p50) }),
          h("dt", { text: "95th percentile (p95)" }), h("dd", { dataset: { stat: "latency_p95" }, text: fmtMs(p95) })))),
    h("p", { class: "muted small", text: `Updated ${fmtTime(updatedAt.toISOString())} · refreshes every ${REFRESH_MS / 1000} s` }));
}

export async function renderDashboard(main, ctx) {
  const body = h("div", { class: "dashboard-body", "aria-live": "polite", "aria-busy": "true" });
  const refreshButton = h("button", { type: "button", class: "button secondary", text: "Refresh" });
  replace(main, h("div", { class: "page-head" }, h("h1", { text: "Dashboard" }), refreshButton), body);
  let controller = null;
  let failing = false;
  async function load() {
    controller?.abort();
    controller = new AbortController();
    body.setAttribute("aria-busy", "true");
    try {
      const stats = await api.get("/api/dashboard/stats", { signal: controller.signal });
      renderStats(body, stats || {}, new Date());
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
