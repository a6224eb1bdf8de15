// Tiny inline-SVG charts. Colours come from CSS classes (the stylesheet), not inline styles.
import { h, replace, svg } from "./dom.js";

/**
 * A donut of named parts, with a legend.
 * @param {{label: string, value: number, tone: string}[]} parts
 * @param {string} title - accessible name
 */
export function donut(parts, title) {
  const total = parts.reduce((sum, part) => sum + Math.max(0, Number(part.value) || 0), 0);
  const size = 120;
  const radius = 46;
  const circumference = 2 * Math.PI * radius;
  const chart = svg("svg", { viewBox: `0 0 ${size} ${size}`, width: size, height: size, role: "img", "aria-label": title, class: "donut" });
  chart.append(svg("circle", { cx: 60, cy: 60, r: radius, class: "donut-track" }));
  let offset = 0;
  for (const part of parts) {
    const value = Math.max(0, Number(part.value) || 0);
    if (!total || !value) continue;
    const length = (value / total) * circumference;
    chart.append(svg("circle", {
      cx: 60, cy: 60, r: radius,
      class: `donut-part tone-${part.tone}`,
      "stroke-dasharray": `${length} ${circumference - length}`,
      "stroke-dashoffset": String(-offset),
      transform: "rotate(-90 60 60)",
    }, svg("title", { text: `${part.label}: ${value}` })));
    offset += length;
  }
  chart.append(svg("text", { x: 60, y: 58, class: "donut-total", "text-anchor": "middle", text: total ? String(total) : "0" }));
  chart.append(svg("text", { x: 60, y: 74, class: "donut-caption", "text-anchor": "middle", text: "calls" }));
  const legend = h("ul", { class: "legend" }, parts.map((part) => {
    const value = Math.max(0, Number(part.value) || 0);
    const share = total ? Math.round((value / total) * 100) : 0;
    return h("li", {}, h("span", { class: `swatch tone-${part.tone}`, "aria-hidden": "true" }),
      h("span", { text: part.label }), h("strong", { text: `${value} (${share} %)` }));
  }));
  return h("div", { class: "donut-wrap" }, chart, legend);
}

/**
 * A horizontal meter for a rate in [0, 1].
 * @param {number|null} rate
 * @param {string} tone
 */
export function meter(rate, tone) {
  const value = rate === null || rate === undefined ? 0 : Math.max(0, Math.min(1, Number(rate) > 1 ? Number(rate) / 100 : Number(rate)));
  const chart = svg("svg", { viewBox: "0 0 100 6", preserveAspectRatio: "none", class: "meter", "aria-hidden": "true" });
  chart.append(svg("rect", { x: 0, y: 0, width: 100, height: 6, rx: 3, class: "meter-track" }));
  chart.append(svg("rect", { x: 0, y: 0, width: (value * 100).toFixed(2), height: 6, rx: 3, class: `meter-fill tone-${tone}` }));
  return chart;
}

/**
 * Vertical bars, optionally stacked (e.g. latency per turn split by stage). Drawn at the width of the box it
 * sits in, one SVG unit to a CSS pixel, so labels keep the stylesheet's size on a phone and a wide screen alike
 * (a fixed viewBox stretched to the width scaled them from ~6 px to ~19 px); redrawn when the box resizes.
 * @param {{label: string, segments: {value: number, tone: string, name: string}[]}[]} bars
 * @param {{title: string, unit?: string, height?: number}} options
 */
export function bars(bars, options) {
  const box = h("div", { class: "bars-box" });
  let drawn = 0;
  const draw = (width, fluid) => {
    drawn = fluid ? 0 : width;
    replace(box, barsSvg(bars, options, width, fluid));
  };
  // Until the box has a width, a viewBox stretched to it (it must not widen the page while it is laid out).
  draw(Math.max(320, bars.length * 22 + 48), true);
  if (typeof ResizeObserver !== "undefined") {
    new ResizeObserver((entries) => {
      const width = Math.floor(entries[0].contentRect.width);
      if (width > 0 && Math.abs(width - drawn) > 1) draw(width, false);
    }).observe(box);
  }
  return box;
}

function barsSvg(bars, { title, unit = "", height = 160 }, width, fluid) {
  const top = 12;
  const bottom = 22;
  const left = 44;
  const plot = height - top - bottom;
  const max = Math.max(1, ...bars.map((bar) => bar.segments.reduce((s, seg) => s + (Number(seg.value) || 0), 0)));
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "bars", role: "img", "aria-label": title, width: fluid ? "100%" : width, height });
  for (const fraction of [0, 0.5, 1]) {
    const y = top + plot - fraction * plot;
    chart.append(svg("line", { x1: left, x2: width - 4, y1: y, y2: y, class: "grid" }));
    chart.append(svg("text", { x: left - 6, y: y + 4, class: "axis", "text-anchor": "end", text: `${Math.round(max * fraction)}${unit}` }));
  }
  const step = (width - left - 8) / Math.max(1, bars.length);
  const barWidth = Math.min(28, step * 0.7);
  // Labels at the stylesheet's 10 px need about 24 px each: on a narrow box only every few bars is labelled.
  const every = Math.max(1, Math.ceil(24 / step));
  bars.forEach((bar, index) => {
    const x = left + index * step + (step - barWidth) / 2;
    let y = top + plot;
    const total = bar.segments.reduce((s, seg) => s + (Number(seg.value) || 0), 0);
    const group = svg("g", {}, svg("title", {
      text: `${bar.label}: ${Math.round(total)}${unit}` + bar.segments.filter((s) => s.value).map((s) => `, ${s.name} ${Math.round(s.value)}${unit}`).join(""),
    }));
    for (const segment of bar.segments) {
      const value = Number(segment.value) || 0;
      if (value <= 0) continue;
      const segmentHeight = (value / max) * plot;
      y -= segmentHeight;
      group.append(svg("rect", { x: x.toFixed(1), y: y.toFixed(1), width: barWidth.toFixed(1), height: segmentHeight.toFixed(1), class: `bar tone-${segment.tone}` }));
    }
    chart.append(group);
    if (bar.label && index % every === 0) {
      chart.append(svg("text", { x: (x + barWidth / 2).toFixed(1), y: height - 6, class: "axis", "text-anchor": "middle", text: bar.label }));
    }
  });
  return chart;
}

/** A legend for stacked bars. */
export function legend(items) {
  return h("ul", { class: "legend inline" }, items.map(([label, tone]) =>
    h("li", {}, h("span", { class: `swatch tone-${tone}`, "aria-hidden": "true" }), h("span", { text: label }))));
}
