// Compare grouped by config (seed ignored): per group n, mean ± std and 95% CI of each chosen metric,
// and per metric a chart of each group's mean curve with a shaded band (min–max or CI) across its runs.

import { get } from "./api.js";
import { h, clear, fmtNum, PALETTE } from "./dom.js";

const uPlot = window.uPlot;

function short(v) {
  if (v === null || v === undefined || v === "NaN") return "–";
  return fmtNum(Number(Number(v).toPrecision(4)));
}

function meanStd(s) {
  if (!s || !s.n) return "–";
  return s.n > 1 ? `${short(s.mean)} ± ${short(s.std)}` : short(s.mean);
}

function ci(s) {
  return s && s.n > 1 ? `${short(s.ci_low)} to ${short(s.ci_high)}` : "–";
}

function alpha(color, a) {
  const n = parseInt(color.slice(1), 16);
  return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${a})`;
}

function describeGroup(group, differing) {
  const keys = Object.keys(differing);
  return keys.length ? keys.map((k) => `${k}=${fmtNum(group.params[k])}`).join(" · ") : "same config";
}

function statsTable(groups, differing, keys) {
  const head = h("tr", {}, h("th", {}, "group"), h("th", { class: "num" }, "n"),
    ...keys.flatMap((k) => [h("th", { class: "num" }, `${k} final (mean ± std)`), h("th", { class: "num" }, "95% CI"),
      h("th", { class: "num" }, "best (mean ± std)")]));
  const rows = groups.map((g) => h("tr", { "data-group": g.label },
    h("td", {}, h("span", { class: "swatch", style: { background: g.color } }), h("span", { class: "mono" }, g.label),
      h("div", { class: "muted", style: { fontSize: "12px" } }, describeGroup(g, differing))),
    h("td", { class: "num mono" }, String(g.n)),
    ...keys.flatMap((k) => {
      const m = g.metrics[k];
      return [h("td", { class: "num mono" }, m ? meanStd(m.final) : "–"), h("td", { class: "num mono" }, m ? ci(m.final) : "–"),
        h("td", { class: "num mono" }, m && m.best ? meanStd(m.best) : "–")];
    })));
  return h("table", { class: "data", id: "group-stats" }, h("thead", {}, head), h("tbody", {}, ...rows));
}

function groupChart(container, key, groups, band) {
  const card = h("div", { class: "chart-card", "data-key": key, "data-group-chart": "1" },
    h("div", { class: "chart-title" }, h("span", {}, `${key} · mean across runs`),
      h("span", { class: "chart-note" }, band === "ci" ? "band: 95% CI" : "band: min–max")));
  const box = h("div", { class: "plot" });
  card.append(box);
  container.append(card);
  const tables = [];
  const series = [{ label: "step" }];
  const bands = [];
  groups.forEach((g) => {
    const c = g.curves[key];
    if (!c || !c.steps.length) return;
    const lo = band === "ci" ? c.ci_low : c.low;
    const hi = band === "ci" ? c.ci_high : c.high;
    tables.push([c.steps, c.mean], [c.steps, hi], [c.steps, lo]);
    const base = series.length;
    series.push({ label: `${g.label} (n=${g.n})`, stroke: g.color, width: 2, points: { show: false }, value: (u, v) => fmtNum(v) },
      { label: "high", stroke: alpha(g.color, 0.35), width: 1, points: { show: false }, value: (u, v) => fmtNum(v) },
      { label: "low", stroke: alpha(g.color, 0.35), width: 1, points: { show: false }, value: (u, v) => fmtNum(v) });
    bands.push({ series: [base + 1, base + 2], fill: alpha(g.color, 0.16) });
  });
  if (!tables.length) { box.append(h("div", { class: "empty" }, "no points")); return null; }
  const grid = { stroke: "#eef0f3", width: 1 };
  const plot = new uPlot({
    width: Math.max(200, card.clientWidth - 24), height: 240, series, bands,
    axes: [{ stroke: "#667085", grid, font: "11px system-ui" }, { stroke: "#667085", grid, size: 62, font: "11px system-ui" }],
    legend: { show: true, live: true }, scales: { x: { time: false } },
  }, uPlot.join(tables), box);
  return plot;
}

export async function renderGroups(container, refs, keys, { band = "minmax" } = {}) {
  clear(container).append(h("div", { class: "muted" }, "Grouping…"));
  let data;
  try {
    data = await get("/api/groups", { runs: refs, metric: keys, curve: keys.slice(0, 8), points: 400 });
  } catch (error) {
    clear(container).append(h("div", { class: "empty" }, `Cannot group these runs: ${error.message}`));
    return () => {};
  }
  const groups = data.groups.map((g, i) => ({ ...g, color: PALETTE[i % PALETTE.length] }));
  const differing = data.differing || {};
  const names = Object.keys(differing);
  const summary = h("p", { class: "muted", id: "group-summary" },
    `${groups.length} group${groups.length === 1 ? "" : "s"} of ${groups.reduce((n, g) => n + g.n, 0)} runs, ignoring ${data.ignore.join(", ")}`
    + (names.length ? ` · groups differ in ${names.join(", ")}` : ""));
  const charts = h("div", { class: "charts", id: "group-charts" });
  clear(container).append(summary, h("div", { class: "table-wrap", style: { marginBottom: "14px" } }, statsTable(groups, differing, keys)), charts);
  const plots = keys.map((key) => groupChart(charts, key, groups, band)).filter(Boolean);
  return () => plots.forEach((p) => p.destroy());
}
