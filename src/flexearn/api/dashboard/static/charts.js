// SVG charts for the flexearn dashboard: line, step and stacked-area series on linear axes, with a
// tooltip that survives the page's redraws, and a message instead of empty axes when there is no data.
//
// Every drawn series is a <path data-series="id"> of absolute "M x y L x y …" vertices, and the
// <svg> carries its scales (data-x-domain, data-x-range, data-y-domain, data-y-range), so a test
// can map each vertex back to the value it was drawn from.
"use strict";

const FlexCharts = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const HOUR = 3600e3;
  const DAY = 24 * HOUR;
  const MARGIN = { top: 12, right: 16, bottom: 28, left: 64 };

  function el(name, attrs, parent) {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (parent) parent.appendChild(node);
    return node;
  }

  // Round numbers for axis ticks: 1, 2 or 5 times a power of ten.
  function niceStep(span, count) {
    const raw = span / Math.max(count, 1);
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    const m = raw / power;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * power;
  }

  function linearTicks(min, max, count) {
    const step = niceStep(max - min || 1, count);
    const ticks = [];
    for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) ticks.push(v);
    return ticks;
  }

  function timeTicks(min, max, count) {
    const steps = [HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY];
    const step = steps.find((s) => (max - min) / s <= count) || 7 * DAY;
    const ticks = [];
    for (let v = Math.ceil(min / step) * step; v <= max; v += step) ticks.push(v);
    return ticks;
  }

  const pad2 = (n) => String(n).padStart(2, "0");
  const MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(" ");

  function formatTime(ms, withDay) {
    const d = new Date(ms);
    const hm = `${pad2(d.getUTCHours())}:00`;
    const day = `${MONTHS[d.getUTCMonth()]} ${d.getUTCDate()}`;
    if (withDay === "day") return day;
    return withDay ? `${day} ${hm}` : hm;
  }

  function formatAmount(v) {
    const a = Math.abs(v);
    if (a >= 1e9) return `${+(v / 1e9).toFixed(2)}B`;
    if (a >= 1e6) return `${+(v / 1e6).toFixed(2)}M`;
    if (a >= 1e3) return `${+(v / 1e3).toFixed(2)}k`;
    if (a >= 1) return `${+v.toFixed(2)}`;
    return `${+v.toPrecision(3)}`;
  }

  const formatPct = (v) => `${(v * 100).toFixed(2)}%`;
  const FORMATS = { pct: formatPct, amount: formatAmount };

  // Stacked series add the previous stacked series' values at the same x.
  function stackSeries(series) {
    const base = new Map();
    return series.map((s) => {
      if (!s.stack) return { ...s, lower: null };
      const lower = s.points.map(([x]) => base.get(x) || 0);
      const points = s.points.map(([x, y], i) => [x, y + lower[i]]);
      points.forEach(([x, y]) => base.set(x, y));
      return { ...s, points, lower };
    });
  }

  function extent(values, fallback) {
    const finite = values.filter(Number.isFinite);
    return finite.length ? [Math.min(...finite), Math.max(...finite)] : fallback;
  }

  // What each container last drew (so a poll bringing the same data redraws nothing), and where
  // the pointer rests on each chart (so a redraw with new data shows the tooltip again there).
  const drawn = new WeakMap();
  const pointers = new Map();
  const hidden = new Set(); // "chart/series" the viewer switched off in a legend
  const zooms = new Map(); // chart id → { range: [from, to], key } dragged out on a time chart

  function render(container, spec) {
    const width = Math.max(container.clientWidth, 240);
    const off = spec.series.filter((s) => hidden.has(`${spec.id}/${s.id}`)).map((s) => s.id);
    const zoomed = zooms.get(spec.id);
    if (zoomed && zoomed.key !== spec.x.zoomKey) zooms.delete(spec.id); // another window or currency
    const zoom = zooms.has(spec.id) ? zoomed.range : null;
    const key = `${width} ${off} ${zoom} ${JSON.stringify(spec)}`;
    if (drawn.get(container) === key) return;
    drawn.set(container, key);
    const marked = (spec.vlines || []).length + (spec.hlines || []).length;
    if (!marked && !spec.series.some((s) => s.points.length)) {
      const empty = document.createElement("div");
      empty.className = "empty";
      empty.dataset.emptyChart = spec.id;
      empty.textContent = spec.empty || "No data yet.";
      container.replaceChildren(empty);
      return;
    }
    const height = spec.height || 260;
    const inZoom = (s) => (zoom ? { ...s, points: s.points.filter(([x]) => x >= zoom[0] && x <= zoom[1]) } : s);
    const series = stackSeries(spec.series.filter((s) => !off.includes(s.id)).map(inZoom)); // the scale fits what is shown
    const xs = series.flatMap((s) => s.points.map((p) => p[0])).concat((spec.vlines || []).map((l) => l.x));
    const ys = series.flatMap((s) => s.points.map((p) => p[1])).concat((spec.hlines || []).map((l) => l.y));
    let [x0, x1] = zoom || (spec.x.min !== undefined ? [spec.x.min, spec.x.max] : extent(xs, [0, 1]));
    if (x1 <= x0) x1 = x0 + (spec.x.kind === "time" ? HOUR : 1);
    // all zero (a market nobody borrows from yet): a scale near zero, not 0–150 %
    const yTop = extent(ys, [0, 0])[1] || (spec.y.format === "pct" ? 0.01 : 1);
    const y0 = 0;
    const yStep = niceStep(yTop * 1.05, 5);
    const y1 = Math.ceil((yTop * 1.05) / yStep) * yStep; // the top tick above every value
    const box = { left: MARGIN.left, right: width - MARGIN.right, top: MARGIN.top, bottom: height - MARGIN.bottom };
    const sx = (x) => box.left + ((x - x0) / (x1 - x0)) * (box.right - box.left);
    const sy = (y) => box.bottom - ((y - y0) / (y1 - y0)) * (box.bottom - box.top);
    const fmtY = FORMATS[spec.y.format] || formatAmount;

    const svg = el("svg", {
      width, height, viewBox: `0 0 ${width} ${height}`, class: "chart", "data-chart": spec.id,
      "data-x-domain": `${x0},${x1}`, "data-x-range": `${box.left},${box.right}`,
      "data-y-domain": `${y0},${y1}`, "data-y-range": `${box.bottom},${box.top}`,
    });
    const axis = el("g", { class: "axis" }, svg);
    for (const t of linearTicks(y0, y1, 5)) {
      el("line", { x1: box.left, x2: box.right, y1: sy(t), y2: sy(t), class: "grid" }, axis);
      el("text", { x: box.left - 6, y: sy(t) + 4, "text-anchor": "end" }, axis).textContent = fmtY(t);
    }
    const isTime = spec.x.kind === "time";
    const xTicks = isTime ? timeTicks(x0, x1, Math.min(7, Math.floor(width / 75))) : linearTicks(x0, x1, Math.floor(width / 110));
    const daily = isTime && xTicks.length > 1 && xTicks[1] - xTicks[0] >= DAY;
    for (const t of xTicks) {
      el("line", { x1: sx(t), x2: sx(t), y1: box.bottom, y2: box.bottom + 4, class: "tick" }, axis);
      const label = isTime ? formatTime(t, daily ? "day" : false) : formatAmount(t);
      el("text", { x: sx(t), y: box.bottom + 18, "text-anchor": "middle" }, axis).textContent = label;
    }
    el("line", { x1: box.left, x2: box.right, y1: box.bottom, y2: box.bottom, class: "baseline" }, axis);

    const xy = ([x, y]) => `${sx(x).toFixed(2)} ${sy(y).toFixed(2)}`;
    const line = (points) => points.map((p, i) => (i ? "L " : "M ") + xy(p)).join(" ");
    for (const s of series) {
      if (!s.points.length) continue;
      if (s.fill) {
        const lower = s.lower ? s.points.map(([x], i) => [x, s.lower[i]]) : s.points.map(([x]) => [x, 0]);
        const d = `${line(s.points)} ${lower.reverse().map((p) => "L " + xy(p)).join(" ")} Z`;
        el("path", { d, fill: s.color, "fill-opacity": 0.28, stroke: "none", class: "area" }, svg);
      }
      el("path", {
        d: line(s.points), stroke: s.color, fill: "none", "stroke-width": s.width || 2,
        "stroke-dasharray": s.dash ? "5 4" : "none", class: "series", "data-series": s.id,
        "data-count": s.points.length,
      }, svg);
    }
    for (const l of spec.vlines || []) {
      const x = sx(l.x), right = x > (box.left + box.right) / 2; // the label on the side with room
      marker(svg, l, `M ${x.toFixed(2)} ${box.bottom} L ${x.toFixed(2)} ${box.top}`, right ? x - 4 : x + 4, box.top + 12, right ? "end" : "start");
    }
    for (const l of spec.hlines || []) marker(svg, l, `M ${box.left} ${sy(l.y).toFixed(2)} L ${box.right} ${sy(l.y).toFixed(2)}`, box.right - 4, sy(l.y) - 5, "end");
    hover(svg, container, series, box, sx, isTime, fmtY, spec);
    if (isTime) zoomer(svg, container, spec, box, (px) => x0 + ((px - box.left) / (box.right - box.left)) * (x1 - x0));
    container.replaceChildren(svg, legend(container, spec, off, zoom));
  }

  function marker(svg, l, d, tx, ty, anchor) {
    el("path", { d, stroke: l.color, "stroke-width": 1.5, "stroke-dasharray": "6 3", fill: "none", class: "marker", "data-series": l.id }, svg);
    const text = el("text", { x: tx, y: ty, fill: l.color, class: "marker-label", "text-anchor": anchor || "start" }, svg);
    text.textContent = l.label;
  }

  // A series' legend entry is a switch: off, the series is not drawn and the scale fits the rest.
  function legend(container, spec, off, zoom) {
    const box = document.createElement("div");
    box.className = "legend";
    for (const s of [...spec.series, ...(spec.vlines || []), ...(spec.hlines || [])]) {
      const isSeries = spec.series.includes(s) && spec.series.length > 1;
      const item = document.createElement(isSeries ? "button" : "span");
      item.innerHTML = `<i style="background:${s.color}"></i>`;
      item.append(s.legend || s.label);
      if (isSeries) {
        item.type = "button";
        item.dataset.series = s.id;
        item.setAttribute("aria-pressed", String(!off.includes(s.id)));
        item.title = off.includes(s.id) ? "show" : "hide";
        item.addEventListener("click", () => {
          const k = `${spec.id}/${s.id}`;
          if (!hidden.delete(k)) hidden.add(k);
          render(container, spec);
        });
      }
      box.appendChild(item);
    }
    if (zoom) {
      const reset = document.createElement("button");
      reset.type = "button";
      reset.className = "reset-zoom";
      reset.textContent = "show all (or double-click)";
      reset.addEventListener("click", () => { zooms.delete(spec.id); render(container, spec); });
      box.appendChild(reset);
    }
    return box;
  }

  // Drag across a time chart (with a mouse) to zoom in on those hours; double-click to zoom out.
  // The zoom stays across redraws until the chart's zoomKey (its window, its currency) changes.
  function zoomer(svg, container, spec, box, xAt) {
    let start = null;
    const band = el("rect", { y: box.top, height: box.bottom - box.top, class: "selection", visibility: "hidden" }, svg);
    const at = (event) => Math.min(box.right, Math.max(box.left, event.clientX - svg.getBoundingClientRect().left));
    svg.addEventListener("pointerdown", (event) => {
      if (event.pointerType !== "mouse" || event.button !== 0) return;
      start = at(event);
      svg.setPointerCapture(event.pointerId);
    });
    svg.addEventListener("pointermove", (event) => {
      if (start === null) return;
      const px = at(event);
      band.setAttribute("x", Math.min(start, px));
      band.setAttribute("width", Math.abs(px - start));
      band.setAttribute("visibility", "visible");
    });
    svg.addEventListener("pointerup", (event) => {
      if (start === null) return;
      const [a, b] = [start, at(event)].sort((p, q) => p - q);
      start = null;
      band.setAttribute("visibility", "hidden");
      if (b - a < 8) return; // a click, not a drag
      zooms.set(spec.id, { range: [xAt(a), xAt(b)], key: spec.x.zoomKey });
      render(container, spec);
    });
    svg.addEventListener("dblclick", () => {
      if (zooms.delete(spec.id)) render(container, spec);
    });
  }

  // A crosshair with the nearest point's values; it follows the pointer (mouse, pen or touch) and
  // comes back after a redraw while the pointer is still on the chart.
  function hover(svg, container, series, box, sx, isTime, fmtY, spec) {
    const ref = series.find((s) => s.points.length);
    if (!ref) return;
    const cursor = el("line", { y1: box.top, y2: box.bottom, class: "cursor", visibility: "hidden" }, svg);
    const tip = document.createElement("div");
    tip.className = "tooltip";
    tip.dataset.tooltip = spec.id;
    container.style.position = "relative";
    const show = (px) => {
      let best = 0;
      ref.points.forEach((p, i) => { if (Math.abs(sx(p[0]) - px) < Math.abs(sx(ref.points[best][0]) - px)) best = i; });
      const x = ref.points[best][0];
      cursor.setAttribute("x1", sx(x));
      cursor.setAttribute("x2", sx(x));
      cursor.setAttribute("visibility", "visible");
      const head = isTime ? formatTime(x, true) + " UTC" : `${spec.x.label || "x"} ${formatAmount(x)}`;
      const rows = series.filter((s) => s.points[best]).map((s) => {
        const value = s.lower ? s.points[best][1] - s.lower[best] : s.points[best][1];
        return `<div><i style="background:${s.color}"></i>${s.label}: <b>${fmtY(value)}</b></div>`;
      });
      tip.innerHTML = `<div class="tip-head">${head}</div>${rows.join("")}`;
      if (!tip.isConnected) container.appendChild(tip);
      const room = sx(x) + 12 + tip.offsetWidth <= box.right; // else on the cursor's left
      tip.style.left = `${Math.max(0, room ? sx(x) + 12 : sx(x) - 12 - tip.offsetWidth)}px`;
      tip.style.top = `${box.top + 4}px`;
    };
    svg.addEventListener("pointermove", (event) => {
      const px = event.clientX - svg.getBoundingClientRect().left;
      pointers.set(spec.id, px);
      show(px);
    });
    svg.addEventListener("pointerleave", () => {
      pointers.delete(spec.id);
      cursor.setAttribute("visibility", "hidden");
      tip.remove();
    });
    if (pointers.has(spec.id)) queueMicrotask(() => svg.isConnected && show(pointers.get(spec.id)));
  }

  // A tiny line without axes, for the market cards.
  function spark(container, points, color) {
    const width = 160, height = 36;
    const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", class: "spark" });
    if (points.length > 1) {
      const [x0, x1] = extent(points.map((p) => p[0]), [0, 1]);
      const [y0, y1] = extent(points.map((p) => p[1]), [0, 1]);
      const sx = (x) => 2 + ((x - x0) / (x1 - x0 || 1)) * (width - 4);
      const sy = (y) => height - 3 - ((y - y0) / (y1 - y0 || 1)) * (height - 6);
      const d = points.map((p, i) => `${i ? "L" : "M"} ${sx(p[0]).toFixed(1)} ${sy(p[1]).toFixed(1)}`).join(" ");
      el("path", { d, stroke: color, fill: "none", "stroke-width": 1.5, "data-series": "spark" }, svg);
    }
    container.replaceChildren(svg);
  }

  // Levels [from, to, y] as a staircase: (from1, y1) → (to1, y1), (from2, y2) → (to2, y2) …
  const staircase = (levels) => levels.flatMap(([from, to, y]) => [[from, y], [to, y]]);

  return { render, spark, staircase, formatPct, formatAmount, formatTime };
})();
