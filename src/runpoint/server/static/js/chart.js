// A metric chart on uPlot: one or several runs overlaid, downsampled on the server.
// Options shared by every chart of a page: { axis: step|time|relative|epoch, smoothing: 0..0.99, log: bool }.
// Drag to zoom (the zoomed range is fetched again at full resolution), double-click to reset.

import { get } from "./api.js";
import { h, clear, fmtNum } from "./dom.js";

const uPlot = window.uPlot;

export function ema(values, alpha) {
  // TensorBoard's debiased exponential moving average; gaps stay gaps.
  const out = new Array(values.length);
  let last = 0, weight = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || v === undefined || !Number.isFinite(v)) { out[i] = null; continue; }
    last = last * alpha + (1 - alpha) * v;
    weight = weight * alpha + (1 - alpha);
    out[i] = last / weight;
  }
  return out;
}

function compact(v) {
  const abs = Math.abs(v);
  if (abs >= 1e9) return +(v / 1e9).toPrecision(3) + "G";
  if (abs >= 1e6) return +(v / 1e6).toPrecision(3) + "M";
  if (abs >= 1e4) return +(v / 1e3).toPrecision(3) + "k";
  if (abs !== 0 && abs < 1e-3) return v.toExponential(2).replace(/\.?0+e/, "e");
  return String(+v.toPrecision(4));
}

function duration(v) {
  const s = Math.abs(v);
  if (s < 120) return `${+v.toFixed(1)}s`;
  if (s < 7200) return `${+(v / 60).toFixed(1)}m`;
  return `${+(v / 3600).toFixed(2)}h`;
}

const AXIS_LABEL = { step: "step", time: "time", relative: "elapsed", epoch: "epoch" };

export class MetricChart {
  constructor(container, { key, runs, options, height = 210 }) {
    this.key = key;
    this.runs = runs;            // [{ id, label, color }]
    this.options = options;
    this.height = height;
    this.range = null;           // [x0, x1] while zoomed
    this.payloads = [];
    this.generation = 0;
    this.plot = null;
    this.note = h("span", { class: "chart-note" });
    this.resetButton = h("button", { class: "small", style: { display: "none" }, onclick: () => this.resetZoom() }, "reset zoom");
    this.plotBox = h("div", { class: "plot", style: { minHeight: `${height + 40}px` } });
    this.card = h("div", { class: "chart-card", "data-key": key },
      h("div", { class: "chart-title" }, h("span", {}, key), h("span", { class: "row" }, this.resetButton, this.note)),
      this.plotBox);
    container.append(this.card);
    this.resizer = new ResizeObserver(() => {
      const width = this.width();
      if (this.plot && Math.abs(this.plot.width - width) > 2) this.plot.setSize({ width, height: this.height });
    });
    this.resizer.observe(this.card);
  }

  width() { return Math.max(200, this.card.clientWidth - 24); }

  async fetchAll() {
    const generation = ++this.generation;
    const started = performance.now();
    const points = Math.min(4000, Math.round(this.width()));
    const [x0, x1] = this.range || [null, null];
    const payloads = await Promise.all(this.runs.map((run) =>
      get(`/api/runs/${encodeURIComponent(run.id)}/series`, { key: this.key, x: this.options.axis, points, x0, x1 })
        .catch((error) => ({ error: error.message, x: [], y: [], bucket_x: [], bucket_mean: [], raw: true, total: 0, in_range: 0 }))));
    if (generation !== this.generation) return null;  // a newer request won
    this.fetchMs = performance.now() - started;
    return payloads;
  }

  // Points that arrived live (run index -> [[x, y], ...]): a fetch that started before they were
  // stored would drop them, so they are put back after each fetch (see keepLive).
  appendPoints(runId, points) {
    const index = this.runs.findIndex((run) => run.id === runId);
    if (index < 0) return false;
    const xs = this.liveX(this.runs[index], points);
    if (!xs) { if (this.plot) this.refresh(); return true; }  // an axis the page cannot compute (epoch): refetch
    const live = (this.live ||= {});
    const kept = (live[index] ||= []);
    xs.forEach((x, i) => kept.push([x, points.values[i]]));
    if (kept.length > 5000) kept.splice(0, kept.length - 5000);
    const payload = this.payloads[index];
    if (!payload || payload.error) return false;  // not fetched yet: its fetch gets them (or keepLive puts them back)
    const added = this.keepLive(index);
    if (!added) return true;
    this.appended = (this.appended || 0) + added;
    this.draw(!this.range);
    this.card.dataset.liveAt = String(Date.now());  // when the newest point reached the chart (the browser test reads it)
    if (!payload.raw && this.appended > 2000) this.refresh();  // a downsampled chart: downsample again, now and then
    return true;
  }

  liveX(run, points) {
    switch (this.options.axis) {
      case "step": return points.steps;
      case "time": return points.times;
      case "relative": return run.origin === undefined ? null : points.times.map((t) => t - run.origin);
      default: return null;
    }
  }

  keepLive(index) {
    const payload = this.payloads[index];
    const kept = (this.live || {})[index];
    if (!payload || !kept || this.options.axis === "epoch") return 0;
    let last = payload.x.length ? payload.x[payload.x.length - 1] : -Infinity;
    let added = 0;
    for (const [x, y] of kept) {
      if (!(x > last)) continue;  // the fetched series has it already
      payload.x.push(x); payload.y.push(y);
      if (!payload.raw) { payload.bucket_x.push(x); payload.bucket_mean.push(y); }
      payload.total = (payload.total || 0) + 1;
      payload.in_range = (payload.in_range || 0) + 1;
      last = x;
      added++;
    }
    return added;
  }

  async load() {
    // a run may log hundreds of metrics: fetch a chart's series once it nears the viewport
    if (!this.visible) {
      if (!this.watcher) {
        this.watcher = new IntersectionObserver((entries) => {
          if (!entries.some((e) => e.isIntersecting)) return;
          this.visible = true;
          this.watcher.disconnect();
          this.load();
        }, { rootMargin: "800px 0px" });
        this.watcher.observe(this.card);
      }
      return;
    }
    const payloads = await this.fetchAll();
    if (!payloads) return;
    this.setPayloads(payloads);
    this.draw(true);
  }

  setPayloads(payloads) {
    this.payloads = payloads;
    this.appended = 0;
    payloads.forEach((p, i) => this.keepLive(i));
  }

  async refresh() {
    // live updates of a long series cost the server a downsampling each: space them by the fetch time
    const now = performance.now();
    if (this.lastRefresh !== undefined && now - this.lastRefresh < Math.max(1000, 10 * (this.fetchMs || 0))) return;
    this.lastRefresh = now;
    return this.reload();
  }

  async reload() {
    if (!this.plot) return this.load();
    const payloads = await this.fetchAll();
    if (!payloads) return;
    this.setPayloads(payloads);
    this.draw(false);
  }

  rebuild() {
    this.range = null;
    this.live = {};  // their x was on the axis of before
    if (this.plot) { this.plot.destroy(); this.plot = null; }
    return this.load();
  }

  async zoom(x0, x1) {
    if (!(x1 > x0)) return;
    this.range = [x0, x1];
    this.resetButton.style.display = "";
    await this.reload();
    if (this.plot) this.plot.setScale("x", { min: x0, max: x1 });
  }

  async resetZoom() {
    this.range = null;
    this.resetButton.style.display = "none";
    const payloads = await this.fetchAll();
    if (!payloads) return;
    this.setPayloads(payloads);
    this.draw(true);
  }

  data() {
    const { smoothing, log } = this.options;
    const tables = [];
    const series = [{ label: AXIS_LABEL[this.options.axis], value: (u, v) => this.formatX(v) }];
    const positive = (ys) => (log ? ys.map((y) => (y !== null && y > 0 ? y : null)) : ys);
    this.payloads.forEach((p, i) => {
      const run = this.runs[i];
      const smooth = smoothing > 0 && p.x.length > 1;
      tables.push([p.x, positive(p.y)]);
      series.push({
        label: this.runs.length > 1 ? run.label : (smooth ? "raw" : this.key),
        stroke: smooth ? run.color + "44" : run.color, width: smooth ? 1 : 1.5,
        points: { show: false }, value: (u, v) => fmtNum(v),
      });
      if (smooth) {
        const xs = p.raw ? p.x : p.bucket_x;
        const ys = p.raw ? p.y : p.bucket_mean;
        tables.push([xs, positive(ema(ys, smoothing))]);
        series.push({
          label: this.runs.length > 1 ? `${run.label} (smoothed)` : "smoothed",
          stroke: run.color, width: 2, points: { show: false }, value: (u, v) => fmtNum(v),
        });
      }
    });
    const aligned = tables.length === 1 ? tables[0] : uPlot.join(tables);
    return { aligned, series };
  }

  formatX(v) {
    if (v === null || v === undefined) return "–";
    switch (this.options.axis) {
      case "time": return new Date(v * 1000).toLocaleString();
      case "relative": return duration(v);
      case "epoch": return v.toFixed(2);
      default: return String(Math.round(v));
    }
  }

  describe() {
    const total = this.payloads.reduce((n, p) => n + (p.total || 0), 0);
    const sent = this.payloads.reduce((n, p) => n + p.x.length, 0);
    const nonfinite = this.payloads.reduce((n, p) => n + (p.nonfinite || 0), 0);
    const errors = this.payloads.filter((p) => p.error).map((p) => p.error);
    let text = `${total.toLocaleString()} pts`;
    if (this.payloads.some((p) => !p.raw)) text += ` · min/max of ${sent.toLocaleString()} drawn`;
    if (nonfinite) text += ` · ${nonfinite} non-finite`;
    if (errors.length) text = errors[0];
    this.note.textContent = text;
    this.card.dataset.total = String(total);
    this.card.dataset.drawn = String(sent);
    this.card.dataset.inRange = String(this.payloads.reduce((n, p) => n + (p.in_range || 0), 0));
    const first = this.payloads[0];
    if (first && first.x.length) this.card.dataset.lastX = String(first.x[first.x.length - 1]);
  }

  draw(resetScales) {
    const { aligned, series } = this.data();
    this.describe();
    const sent = this.payloads.reduce((n, p) => n + p.x.length, 0);
    if (!sent) {
      if (this.plot) { this.plot.destroy(); this.plot = null; }
      clear(this.plotBox).append(h("div", { class: "empty" }, "no points yet"));
      return;
    }
    if (this.plot && this.plot.series.length === series.length) {
      this.plot.setData(aligned, resetScales);
      if (!resetScales && this.range) this.plot.setScale("x", { min: this.range[0], max: this.range[1] });
      return;
    }
    if (this.plot) this.plot.destroy();
    clear(this.plotBox);
    const axis = this.options.axis;
    const grid = { stroke: "#eef0f3", width: 1 };
    const ticks = { stroke: "#e4e7ec", width: 1, size: 4 };
    const xValues = axis === "time" ? undefined
      : (u, vals) => vals.map((v) => (axis === "relative" ? duration(v) : axis === "epoch" ? String(+v.toFixed(2)) : compact(v)));
    const opts = {
      width: this.width(), height: this.height,
      scales: { x: { time: axis === "time" }, y: { distr: this.options.log ? 3 : 1 } },
      axes: [
        { stroke: "#667085", grid, ticks, values: xValues, font: "11px system-ui" },
        { stroke: "#667085", grid, ticks, size: 62, font: "11px system-ui",
          values: this.options.log ? undefined : (u, vals) => vals.map((v) => (v === null ? "" : compact(v))) },
      ],
      series,
      legend: { show: true, live: true },
      cursor: {
        drag: { x: true, y: false, setScale: false },
        bind: { dblclick: () => () => { this.resetZoom(); return null; } },
      },
      hooks: {
        setSelect: [(u) => {
          if (u.select.width < 3) return;
          const x0 = u.posToVal(u.select.left, "x");
          const x1 = u.posToVal(u.select.left + u.select.width, "x");
          u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
          this.zoom(x0, x1);
        }],
      },
    };
    this.plot = new uPlot(opts, aligned, this.plotBox);
    if (this.range) this.plot.setScale("x", { min: this.range[0], max: this.range[1] });
  }

  destroy() {
    this.generation++;
    this.resizer.disconnect();
    if (this.watcher) this.watcher.disconnect();
    if (this.plot) this.plot.destroy();
    this.plot = null;
    this.card.remove();
  }
}

// The toolbar every chart page shares: x axis, smoothing, log scale, metric filter.
export function chartToolbar(options, onChange, { filter = true, epochAvailable = true } = {}) {
  const axis = h("select", { "aria-label": "x axis", onchange: () => { options.axis = axis.value; onChange("axis"); } },
    ...["step", "relative", "time", "epoch"].map((value) => h("option", {
      value, selected: options.axis === value, disabled: value === "epoch" && !epochAvailable,
    }, { step: "Step", relative: "Relative time", time: "Wall time", epoch: "Epoch" }[value])));
  const shown = h("span", { class: "mono muted" }, options.smoothing.toFixed(2));
  const smoothing = h("input", { type: "range", min: 0, max: 0.99, step: 0.01, value: options.smoothing, "aria-label": "smoothing",
    oninput: () => { options.smoothing = Number(smoothing.value); shown.textContent = options.smoothing.toFixed(2); },
    onchange: () => onChange("smoothing") });
  const log = h("input", { type: "checkbox", checked: options.log, onchange: () => { options.log = log.checked; onChange("log"); } });
  const box = h("input", { type: "search", placeholder: "Filter metrics", value: options.filter || "",
    oninput: () => { options.filter = box.value; onChange("filter"); } });
  return h("div", { class: "toolbar" },
    h("label", { class: "inline" }, "X axis", axis),
    h("label", { class: "inline" }, "Smoothing", smoothing, shown),
    h("label", { class: "inline" }, log, "Log scale"),
    filter ? box : null,
    h("span", { class: "muted", style: { fontSize: "12px" } }, "Drag to zoom · double-click to reset"));
}
