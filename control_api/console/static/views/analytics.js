// Analytics: interactive charts (plotly.js, served from the installed plotly package) over a date range,
// each point drilling down to the calls behind it, and a CSV export of every series shown.
import { api } from "../api.js";
import { LATENCY_MEANS, OUTCOME_ORDER, field, fmtDuration, fmtMs, fmtNumber, fmtPercent, h, label, outcomeColour, replace, select } from "../dom.js";

const PLOTLY_SRC = "/console/vendor/plotly.min.js";
// plotly.js's own CSS as a same-origin file; this id and class tell plotly not to inject an inline <style>.
const PLOTLY_CSS = "/console/static/plotly.css";
const DAY_MS = 86400000;
const FONT = { family: "system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif", size: 12, color: "#17212b" };
// Outcomes take their colours from the console's one outcome mapping (dom.js outcomeColour), not from here.
const COLOURS = {
  positive: "#16a34a", neutral: "#94a3b8", negative: "#dc2626",
  vad: "#64748b", asr: "#0ea5e9", retrieval: "#8b5cf6", llm: "#0f766e", tts: "#f59e0b", total: "#17212b",
};
const STAGES = [["vad", "Turn end (VAD)"], ["asr", "Speech recognition"], ["retrieval", "Knowledge search"], ["llm", "Answer"], ["tts", "Voice"]];
const HANDOFF_SOURCES = {
  phrase: "Caller asked for a person", tool: "Agent decided to transfer", not_found: "Question not answered",
  sentiment: "Caller upset", dtmf: "Caller pressed a key", api: "Started from the console", unknown: "Not recorded",
};
const BANDS = [["<1m", "Under 1 min"], ["1-3m", "1–3 min"], ["3-10m", "3–10 min"], [">10m", "Over 10 min"]];

let plotlyLoading = null;

/** Load plotly.js once (a same-origin script: the page's CSP allows nothing else). */
export function loadPlotly() {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!plotlyLoading) {
    plotlyLoading = new Promise((resolve, reject) => {
      if (!document.getElementById("plotly.js-style-global")) {
        document.head.append(h("link", { rel: "stylesheet", id: "plotly.js-style-global", class: "no-inline-styles", href: PLOTLY_CSS }));
      }
      const script = document.createElement("script");
      script.src = PLOTLY_SRC;
      script.onload = () => (window.Plotly ? resolve(window.Plotly) : reject(new Error("The chart library did not load.")));
      script.onerror = () => {
        plotlyLoading = null;
        reject(new Error("The chart library could not be loaded."));
      };
      document.head.append(script);
    });
  }
  return plotlyLoading;
}

/** A whole-number tick step giving at most ~5 ticks, so a count axis never shows "0, 1, 1". */
function countStep(max) {
  const raw = Math.max(1, max) / 5;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) || 10 * power;
  return Math.max(1, Math.round(step));
}

// Axis titles are left out: each chart's heading and tooltips name what is counted.
function countAxis(title, max) {
  return { rangemode: "tozero", tick0: 0, dtick: countStep(max), tickformat: "d", tickfont: { size: 12 }, gridcolor: "#e8ecf0", zeroline: false, automargin: true, fixedrange: true };
}

function valueAxis(title, unit) {
  return { rangemode: "tozero", ticksuffix: unit || "", tickfont: { size: 12 }, gridcolor: "#e8ecf0", zeroline: false, automargin: true, fixedrange: true, nticks: 6 };
}

/**
 * A time axis over the chosen range with whole-bucket ticks (a day never split into "04 Dec, 04 Dec"): at most
 * nine ticks, each a whole number of hours or days, counted back from the range's last bucket so the last day
 * (or hour) always has its label. Bars are centred on their bucket's start; the range is padded by half a bucket
 * on each side so the first and last bars are drawn whole.
 */
function timeAxis(bucket, range) {
  const unit = bucketUnit(bucket);
  const first = Math.floor(new Date(range.since).getTime() / unit) * unit;
  const last = Math.floor((new Date(range.until).getTime() - 1) / unit) * unit;
  const count = Math.max(1, Math.round((last - first) / unit) + 1);
  const steps = Math.max(1, Math.ceil(count / 8));
  const tickvals = [];
  for (let at = last; at >= first; at -= steps * unit) tickvals.unshift(new Date(at));
  return {
    type: "date", tickfont: { size: 12 }, automargin: true, fixedrange: true,
    range: [new Date(first - unit / 2), new Date(last + unit / 2)], tickmode: "array", tickvals,
    hoverformat: bucket === "hour" ? "%d %b %H:00 UTC" : "%a %d %b %Y", tickformat: bucket === "hour" ? "%d %b %H:00" : "%d %b",
  };
}

function bucketUnit(bucket) {
  return bucket === "hour" ? 3600000 : DAY_MS;
}

/**
 * Explicit bar geometry on a time axis: plotly sizes bars from the gap between neighbouring points, so a range
 * with a single bucket of data drew a 1-px line. ``slot``/``of`` place side-by-side (grouped) bars.
 */
function timeBar(bucket, slot = 0, of = 1) {
  const width = bucketUnit(bucket) * 0.75;
  return of === 1 ? { width } : { width: width / of, offset: -width / 2 + (slot * width) / of };
}

function categoryAxis(extra = {}) {
  return { type: "category", tickfont: { size: 12 }, automargin: true, fixedrange: true, ...extra };
}

/** The UTC instant of a bucket label ("2026-12-04" or "2026-12-04T14:00:00"). */
function bucketStart(key) {
  return new Date(key.length <= 10 ? `${key}T00:00:00Z` : `${key}Z`);
}

function bucketRange(key, bucket) {
  const since = bucketStart(key);
  const until = new Date(since.getTime() + (bucket === "hour" ? 3600000 : DAY_MS));
  return { since: since.toISOString(), until: until.toISOString() };
}

/** The calls list for a drill-down: an exact UTC range plus any list filters. */
function callsLink(range, filters = {}) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries({ since: range.since, until: range.until, ...filters })) if (value) params.set(key, value);
  return `#/calls?${params.toString()}`;
}

/** The height of a horizontal bar chart: one slim bar per category, not one bar filling the box. */
function barsHeight(count) {
  return Math.min(300, 90 + 42 * count);
}

/** A section's own heading (the last part of "Document > Section > Subsection"), at most 40 characters. */
function shortTopic(topic) {
  const last = String(topic).split(" > ").pop().trim();
  return last.length > 40 ? `${last.slice(0, 39)}…` : last;
}

function emptyNote(text) {
  return h("p", { class: "empty", text });
}

/** One chart panel: a title, what a click does, the plot box and a text summary for screen readers. */
function panel(id, title, hint) {
  const box = h("div", { class: "chart", id: `chart-${id}`, role: "img", "aria-label": title });
  const summary = h("p", { class: "visually-hidden", id: `chart-${id}-summary` });
  box.setAttribute("aria-describedby", summary.id);
  const section = h("section", { class: "panel chart-panel", "aria-labelledby": `chart-${id}-title`, dataset: { chart: id } },
    h("h2", { id: `chart-${id}-title`, text: title }),
    hint ? h("p", { class: "muted small", text: hint }) : null,
    box, summary);
  return { section, box, summary };
}

function defaultRange() {
  const today = new Date();
  const from = new Date(today.getTime() - 29 * DAY_MS);
  const iso = (d) => d.toISOString().slice(0, 10);
  return { from: iso(from), to: iso(today) };
}

/** Rows of the CSV export: chart, bucket or category, series, value. */
function csvText(rows) {
  const quote = (value) => {
    const text = value === null || value === undefined ? "" : String(value);
    // A leading =, +, - or @ would run as a formula in a spreadsheet.
    const safe = /^[=+\-@]/.test(text) ? `'${text}` : text;
    return /[",\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
  };
  return ["chart,x,series,value", ...rows.map((row) => row.map(quote).join(","))].join("\n") + "\n";
}

export async function renderAnalytics(main, ctx) {
  const q = ctx.query;
  const fallback = defaultRange();
  const from = h("input", { type: "date", name: "from", value: q.get("from") || fallback.from, required: true });
  const to = h("input", { type: "date", name: "to", value: q.get("to") || fallback.to, required: true });
  const bucketChoice = select({ name: "bucket" }, [["auto", "Automatic"], ["hour", "By hour"], ["day", "By day"]], q.get("bucket") || "auto");
  const exportButton = h("button", { type: "button", class: "button secondary", text: "Export CSV", disabled: true });
  const form = h("form", { class: "filters range-form", "aria-label": "Date range" },
    field("From", from), field("To", to), field("Group", bucketChoice),
    h("div", { class: "filter-actions" },
      h("button", { type: "submit", class: "button primary", text: "Apply" }),
      ...[[7, "7 days"], [30, "30 days"], [90, "90 days"]].map(([days, text]) => {
        const preset = h("button", { type: "button", class: "button secondary small", text, "aria-label": `Last ${text}` });
        preset.addEventListener("click", () => {
          const end = new Date();
          from.value = new Date(end.getTime() - (days - 1) * DAY_MS).toISOString().slice(0, 10);
          to.value = end.toISOString().slice(0, 10);
          form.requestSubmit();
        });
        return preset;
      })));
  const tiles = h("div", { class: "tiles" });
  const grid = h("div", { class: "chart-grid", "aria-busy": "true" });
  const status = h("p", { class: "muted small", role: "status" });
  replace(main,
    h("div", { class: "page-head" }, h("h1", { text: "Analytics" }), exportButton),
    h("section", { class: "panel" }, form, status),
    tiles, grid);

  let Plotly;
  try {
    Plotly = await loadPlotly();
  } catch (error) {
    replace(grid, h("section", { class: "panel" }, h("p", { class: "error-text", text: error.message })));
    return undefined;
  }
  if (!ctx.isCurrent()) return undefined;

  let csvRows = [];
  let controller = null;
  const plotted = [];
  const layoutBase = { font: FONT, margin: { l: 56, r: 16, t: 8, b: 48 }, height: 300, paper_bgcolor: "#fff", plot_bgcolor: "#fff", hoverlabel: { font: { size: 13 } }, legend: { orientation: "h", y: -0.22, font: { size: 12 } }, bargap: 0.25 };
  const config = { displayModeBar: false, responsive: true, displaylogo: false };

  function plot(target, traces, layout, onPick) {
    Plotly.newPlot(target.box, traces, { ...layoutBase, ...layout }, config);
    plotted.push(target.box);
    if (onPick) target.box.on("plotly_click", (event) => {
      const point = event && event.points && event.points[0];
      if (point) onPick(point);
    });
  }

  async function load() {
    controller?.abort();
    controller = new AbortController();
    const since = new Date(`${from.value}T00:00:00Z`);
    const until = new Date(new Date(`${to.value}T00:00:00Z`).getTime() + DAY_MS);
    if (!(since < until)) {
      ctx.notify(new Error("The start date must be on or before the end date."));
      return;
    }
    const days = (until - since) / DAY_MS;
    const bucket = bucketChoice.value === "auto" ? (days <= 3 ? "hour" : "day") : bucketChoice.value;
    history.replaceState(null, "", `#/analytics?from=${from.value}&to=${to.value}&bucket=${bucketChoice.value}`);
    const window = { since: since.toISOString(), until: until.toISOString(), bucket };
    status.textContent = "Loading…";
    exportButton.disabled = true;
    grid.setAttribute("aria-busy", "true");
    let calls, sentiment, performance, trends;
    try {
      const signal = controller.signal;
      [calls, sentiment, performance, trends] = await Promise.all([
        api.get("/api/analytics/calls", { query: window, signal }),
        api.get("/api/analytics/sentiment", { query: { ...window, worst: 0 }, signal }),
        api.get("/api/analytics/performance", { query: { since: window.since, until: window.until }, signal }),
        api.get("/api/analytics/trends", { query: window, signal }),
      ]);
    } catch (error) {
      if (error.name === "AbortError") return;
      status.textContent = "";
      grid.setAttribute("aria-busy", "false");
      ctx.showError(error);
      return;
    }
    if (!ctx.isCurrent()) return;
    for (const box of plotted.splice(0)) Plotly.purge(box);
    csvRows = [];
    const range = { since: window.since, until: window.until };
    const ended = Object.entries(calls.by_outcome).filter(([k]) => k !== "live").reduce((s, [, n]) => s + n, 0);
    const contained = calls.by_outcome.resolved || 0;
    replace(tiles,
      tile("Calls", fmtNumber(calls.total), `${fmtNumber(ended)} ended`),
      tile("Containment", fmtPercent(ended ? contained / ended : null), "every question answered, no handoff"),
      tile("Handle time p50", fmtDuration(calls.duration_ms.p50), `p95 ${fmtDuration(calls.duration_ms.p95)}`),
      tile("Voice latency p50", fmtMs(performance.latency_ms.total.p50), `p95 ${fmtMs(performance.latency_ms.total.p95)}`),
      tile("Answer coverage", fmtPercent(performance.answer_coverage), `${fmtNumber(performance.knowledge_queries)} callers' knowledge queries${performance.test_queries ? ` · ${fmtNumber(performance.test_queries)} typed test${performance.test_queries === 1 ? "" : "s"} not counted` : ""}`));

    const charts = {
      volume: panel("volume", bucket === "hour" ? "Calls per hour, by outcome" : "Calls per day, by outcome", "Click a bar to see those calls."),
      hours: panel("hours", "Calls by hour of the day (UTC)", "Click a bar to see the calls of the range."),
      outcomes: panel("outcomes", "Outcomes", "Contained means every question was answered from the knowledge base and nobody was handed over."),
      handle: panel("handle", "Handle time", null),
      sentiment: panel("sentiment", "Caller sentiment", "Click a point to see that period's negative calls."),
      latency: panel("latency", "Voice latency per stage (mean)", `${LATENCY_MEANS} Click a point to see those calls.`),
      handoffs: panel("handoffs", "Why calls were handed to a person", "Click a bar to see the handed-off calls."),
      topics: panel("topics", "Top topics", "The knowledge-base sections that answered most questions."),
      unanswered: panel("unanswered", "Unanswered questions", "Click a bar to see that period's calls."),
    };
    replace(grid, Object.values(charts).map((c) => c.section));

    // 1. Volume over time, stacked by outcome.
    const buckets = calls.volume.map((v) => v.bucket);
    const xs = buckets.map(bucketStart);
    const present = OUTCOME_ORDER.filter((o) => calls.volume.some((v) => (v.outcomes || {})[o]));
    if (!buckets.length) replace(charts.volume.box, emptyNote("No calls in this range."));
    else {
      const peak = Math.max(...calls.volume.map((v) => v.calls));
      plot(charts.volume, present.map((o) => ({
        type: "bar", ...timeBar(bucket), name: label("outcome", o), x: xs, y: calls.volume.map((v) => (v.outcomes || {})[o] || 0),
        marker: { color: outcomeColour(o) }, customdata: buckets, hovertemplate: `%{y} call(s) · ${label("outcome", o)}<extra></extra>`,
      })), { barmode: "stack", xaxis: timeAxis(bucket, range), yaxis: countAxis("Calls", peak) },
      (point) => ctx.navigate(callsLink(bucketRange(point.customdata, bucket))));
      charts.volume.summary.textContent = `${calls.total} calls, busiest ${bucket} ${buckets[calls.volume.findIndex((v) => v.calls === peak)]} with ${peak}.`;
      for (const v of calls.volume) for (const o of present) csvRows.push(["volume", v.bucket, o, (v.outcomes || {})[o] || 0]);
    }

    // 2. Hour-of-day profile.
    const hours = calls.by_hour_of_day || [];
    if (!calls.total) replace(charts.hours.box, emptyNote("No calls in this range."));
    else {
      const labels = hours.map((_, hour) => `${String(hour).padStart(2, "0")}:00`);
      // A numeric hour axis: a tick every 2 hours, every 6 on a phone (24 labels do not fit 390 px).
      const every = charts.hours.box.clientWidth < 520 ? 6 : 2;
      plot(charts.hours, [{ type: "bar", x: hours.map((_, hour) => hour), y: hours, customdata: labels, marker: { color: "#0f766e" }, hovertemplate: "%{customdata} UTC: %{y} call(s)<extra></extra>" }],
        { xaxis: { type: "linear", range: [-0.5, 23.5], tick0: 0, dtick: every, tickvals: labels.map((_, hour) => hour).filter((hour) => hour % every === 0), ticktext: labels.filter((_, hour) => hour % every === 0), tickfont: { size: 12 }, fixedrange: true, automargin: true }, yaxis: countAxis("Calls", Math.max(...hours)), showlegend: false },
        () => ctx.navigate(callsLink(range)));
      const busiest = hours.indexOf(Math.max(...hours));
      charts.hours.summary.textContent = `Busiest hour ${labels[busiest]} UTC.`;
      hours.forEach((n, hour) => csvRows.push(["hour_of_day", labels[hour], "calls", n]));
    }

    // 3. Outcomes.
    const outcomeKeys = OUTCOME_ORDER.filter((o) => calls.by_outcome[o]);
    if (!outcomeKeys.length) replace(charts.outcomes.box, emptyNote("No calls in this range."));
    else {
      const values = outcomeKeys.map((o) => calls.by_outcome[o]);
      plot(charts.outcomes, [{
        type: "bar", orientation: "h", y: outcomeKeys.map((o) => label("outcome", o)), x: values, customdata: outcomeKeys,
        marker: { color: outcomeKeys.map((o) => outcomeColour(o)) }, hovertemplate: "%{y}: %{x} call(s)<extra></extra>",
        text: values.map((n) => `${n} (${Math.round((100 * n) / calls.total)} %)`), textposition: "auto",
      }], { xaxis: countAxis("Calls", Math.max(...values)), yaxis: categoryAxis({ autorange: "reversed" }), showlegend: false, margin: { l: 8, r: 16, t: 8, b: 48 }, height: barsHeight(outcomeKeys.length) },
      (point) => ctx.navigate(callsLink(range, point.customdata === "live" ? {} : { outcome: point.customdata })));
      charts.outcomes.summary.textContent = outcomeKeys.map((o) => `${label("outcome", o)} ${calls.by_outcome[o]}`).join(", ");
      outcomeKeys.forEach((o) => csvRows.push(["outcomes", o, "calls", calls.by_outcome[o]]));
    }

    // 4. Handle time.
    const bands = BANDS.map(([key]) => calls.duration_histogram[key] || 0);
    if (!bands.some(Boolean)) replace(charts.handle.box, emptyNote("No ended calls in this range."));
    else {
      plot(charts.handle, [{ type: "bar", x: BANDS.map(([, text]) => text), y: bands, marker: { color: "#0ea5e9" }, hovertemplate: "%{x}: %{y} call(s)<extra></extra>" }],
        { xaxis: categoryAxis(), yaxis: countAxis("Calls", Math.max(...bands)), showlegend: false });
      charts.handle.summary.textContent = `Median ${fmtDuration(calls.duration_ms.p50)}, 95th percentile ${fmtDuration(calls.duration_ms.p95)}.`;
      BANDS.forEach(([key], i) => csvRows.push(["handle_time", key, "calls", bands[i]]));
    }

    // 5. Sentiment trend: stacked labels and the mean score.
    const trend = sentiment.trend || [];
    if (!trend.length) replace(charts.sentiment.box, emptyNote("No scored calls in this range."));
    else {
      const tx = trend.map((t) => bucketStart(t.bucket));
      const peak = Math.max(...trend.map((t) => t.scored_calls));
      plot(charts.sentiment, [
        ...["positive", "neutral", "negative"].map((name) => ({
          type: "bar", ...timeBar(bucket), name: label("sentiment", name), x: tx, y: trend.map((t) => t[name]), customdata: trend.map((t) => t.bucket),
          marker: { color: COLOURS[name] }, hovertemplate: `%{y} ${name} call(s)<extra></extra>`,
        })),
        { type: "scatter", mode: "lines+markers", name: "Mean score", x: tx, y: trend.map((t) => t.mean), yaxis: "y2", customdata: trend.map((t) => t.bucket), line: { color: "#17212b" }, hovertemplate: "mean %{y:.2f}<extra></extra>" },
      ], { barmode: "stack", xaxis: timeAxis(bucket, range), yaxis: countAxis("Calls", peak), yaxis2: { overlaying: "y", side: "right", range: [-1, 1], dtick: 0.5, tickfont: { size: 12 }, showgrid: false, fixedrange: true }, margin: { l: 56, r: 44, t: 8, b: 48 } },
      (point) => ctx.navigate(callsLink(bucketRange(point.customdata, bucket), { sentiment: "negative" })));
      charts.sentiment.summary.textContent = `Positive ${sentiment.mix.positive}, neutral ${sentiment.mix.neutral}, negative ${sentiment.mix.negative}.`;
      for (const t of trend) for (const name of ["positive", "neutral", "negative", "mean"]) csvRows.push(["sentiment", t.bucket, name, t[name]]);
    }

    // 6. Latency per stage over time.
    const latency = trends.latency || [];
    if (!latency.length) replace(charts.latency.box, emptyNote("No measured turns in this range."));
    else {
      const lx = latency.map((l) => bucketStart(l.bucket));
      plot(charts.latency, [["total", "Voice to voice"], ...STAGES].map(([key, name]) => ({
        type: "scatter", mode: "lines+markers", name, x: lx, y: latency.map((l) => l[key]), customdata: latency.map((l) => l.bucket),
        line: { color: COLOURS[key], width: key === "total" ? 3 : 2 }, hovertemplate: `${name}: %{y:.0f} ms<extra></extra>`,
      })), { xaxis: timeAxis(bucket, range), yaxis: valueAxis("Milliseconds", " ms") },
      (point) => ctx.navigate(callsLink(bucketRange(point.customdata, bucket))));
      charts.latency.summary.textContent = `Voice-to-voice p50 ${fmtMs(performance.latency_ms.total.p50)}.`;
      for (const l of latency) for (const key of ["total", ...STAGES.map(([k]) => k)]) csvRows.push(["latency_ms", l.bucket, key, l[key]]);
    }

    // 7. Handoff reasons.
    const reasons = trends.handoff_reasons || [];
    if (!reasons.length) replace(charts.handoffs.box, emptyNote("No handoffs in this range."));
    else {
      plot(charts.handoffs, [{
        type: "bar", orientation: "h", y: reasons.map((r) => HANDOFF_SOURCES[r.source] || label("reason", r.source)), x: reasons.map((r) => r.count),
        marker: { color: "#0ea5e9" }, hovertemplate: "%{y}: %{x}<extra></extra>",
      }], { xaxis: countAxis("Handoffs", Math.max(...reasons.map((r) => r.count))), yaxis: categoryAxis({ autorange: "reversed" }), showlegend: false, margin: { l: 8, r: 16, t: 8, b: 48 }, height: barsHeight(reasons.length) },
      () => ctx.navigate(callsLink(range, { outcome: "handed_off" })));
      charts.handoffs.summary.textContent = reasons.map((r) => `${HANDOFF_SOURCES[r.source] || r.source} ${r.count}`).join(", ");
      reasons.forEach((r) => csvRows.push(["handoff_reasons", r.source, "handoffs", r.count]));
    }

    // 8. Top topics.
    const topics = trends.top_topics || [];
    if (!topics.length) replace(charts.topics.box, emptyNote("No answered questions in this range."));
    else {
      plot(charts.topics, [{
        type: "bar", orientation: "h", y: topics.map((t) => shortTopic(t.topic)), x: topics.map((t) => t.count),
        customdata: topics.map((t) => t.document), marker: { color: "#8b5cf6" }, hovertemplate: "%{y} (%{customdata}): %{x} question(s)<extra></extra>",
      }], { xaxis: countAxis("Questions", Math.max(...topics.map((t) => t.count))), yaxis: categoryAxis({ autorange: "reversed" }), showlegend: false, margin: { l: 8, r: 16, t: 8, b: 48 }, height: barsHeight(topics.length) },
      () => ctx.navigate("#/knowledge"));
      charts.topics.summary.textContent = topics.map((t) => `${t.topic} ${t.count}`).join(", ");
      topics.forEach((t) => csvRows.push(["top_topics", t.topic, t.document, t.count]));
    }

    // 9. Unanswered questions over time.
    const missed = trends.unanswered || [];
    if (!missed.length) replace(charts.unanswered.box, emptyNote("No questions in this range."));
    else {
      const ux = missed.map((m) => bucketStart(m.bucket));
      const peak = Math.max(...missed.map((m) => Math.max(m.unanswered, m.queries_not_found)));
      plot(charts.unanswered, [
        { type: "bar", ...timeBar(bucket, 0, 2), name: "Caller questions not answered", x: ux, y: missed.map((m) => m.unanswered), customdata: missed.map((m) => m.bucket), marker: { color: outcomeColour("unanswered") }, hovertemplate: "%{y} unanswered<extra></extra>" },
        { type: "bar", ...timeBar(bucket, 1, 2), name: "Searches that found nothing", x: ux, y: missed.map((m) => m.queries_not_found), customdata: missed.map((m) => m.bucket), marker: { color: "#94a3b8" }, hovertemplate: "%{y} found nothing<extra></extra>" },
      ], { barmode: "group", xaxis: timeAxis(bucket, range), yaxis: countAxis("Questions", peak) },
      (point) => ctx.navigate(callsLink(bucketRange(point.customdata, bucket))));
      const total = missed.reduce((s, m) => s + m.unanswered, 0);
      charts.unanswered.summary.textContent = `${total} caller question(s) went unanswered.`;
      for (const m of missed) for (const key of ["questions", "unanswered", "queries_not_found"]) csvRows.push(["unanswered", m.bucket, key, m[key]]);
    }
    status.textContent = `${from.value} to ${to.value} (UTC), grouped by ${bucket}.`;
    exportButton.disabled = false;
    grid.setAttribute("aria-busy", "false");
  }

  function tile(name, value, sub) {
    return h("div", { class: "tile" }, h("div", { class: "tile-label", text: name }), h("div", { class: "tile-value", text: value }),
      sub ? h("div", { class: "tile-sub", text: sub }) : null);
  }

  exportButton.addEventListener("click", () => {
    const url = URL.createObjectURL(new Blob([csvText(csvRows)], { type: "text/csv" }));
    const link = h("a", { href: url, download: `voxdesk-analytics-${from.value}-${to.value}.csv` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  await load();
  return () => {
    controller?.abort();
    for (const box of plotted.splice(0)) Plotly.purge(box);
  };
}
