// The Compare page: chosen metrics of several runs overlaid, config differences, final metrics.

import { get } from "./api.js";
import { h, clear, badge, fmtNum, num, lowerIsBetter, directionless, PALETTE } from "./dom.js";
import { MetricChart, chartToolbar } from "./chart.js";
import { renderGroups } from "./groups.js";

const chartOptions = { axis: "step", smoothing: 0, log: false };

function defaultMetrics(keys) {
  const preferred = keys.filter((k) => /loss|acc/.test(k) && !/lr|time/.test(k));
  return (preferred.length ? preferred : keys).slice(0, 4);
}

export async function renderCompare(page, query) {
  const refs = (query.get("runs") || "").split(",").map((s) => s.trim()).filter(Boolean);
  if (refs.length < 2) {
    page.append(h("h1", { style: { marginBottom: "14px" } }, "Compare"),
      h("div", { class: "empty" }, "Pick two or more runs on the ", h("a", { href: "#/runs" }, "Runs"), " page and press Compare."));
    return () => {};
  }
  const data = await get("/api/compare", { runs: refs.join(",") });
  const runs = data.runs.map((run, i) => ({ ...run, color: PALETTE[i % PALETTE.length] }));
  const metricKeys = Object.keys(data.metrics_last);
  const stored = JSON.parse(sessionStorage.getItem("rp.compare.metrics") || "null");
  let chosen = (stored || []).filter((k) => metricKeys.includes(k));
  if (!chosen.length) chosen = defaultMetrics(metricKeys);
  let charts = [];

  const legend = h("div", { class: "row" }, ...runs.map((run) => h("span", { class: "row", style: { gap: "6px", marginRight: "10px" } },
    h("span", { class: "swatch", style: { background: run.color } }), h("a", { href: `#/run/${run.id}` }, run.name),
    h("span", { class: "mono muted" }, run.id.slice(0, 8)), badge(run.status))));
  const chips = h("div", { class: "chips", id: "metric-chips" });
  const grid = h("div", { class: "charts", id: "compare-charts" });

  function renderChips() {
    clear(chips).append(...metricKeys.map((key) => h("button", { class: "chip" + (chosen.includes(key) ? " on" : ""), "data-key": key, onclick: () => {
      chosen = chosen.includes(key) ? chosen.filter((k) => k !== key) : [...chosen, key];
      sessionStorage.setItem("rp.compare.metrics", JSON.stringify(chosen));
      renderChips();
      renderCharts();
      if (grouped.checked) renderGrouped();
    } }, key)));
  }

  function renderCharts() {
    charts.forEach((c) => c.destroy());
    charts = [];
    clear(grid);
    const series = runs.map((run) => ({ id: run.id, label: run.name, color: run.color }));
    for (const key of chosen) {
      const chart = new MetricChart(grid, { key, runs: series, options: chartOptions, height: 240 });
      charts.push(chart);
      chart.load();
    }
    if (!chosen.length) grid.append(h("div", { class: "empty" }, "Pick metrics above."));
  }

  const header = h("tr", {}, h("th", {}, ""), ...runs.map((run) => h("th", { class: "num" }, h("span", { class: "swatch", style: { background: run.color } }), run.name)));
  const showSame = h("input", { type: "checkbox", onchange: () => renderConfig() });
  const configBox = h("div");
  function renderConfig() {
    const rows = Object.entries(data.params_differing).map(([k, values]) => [k, values, true]);
    if (showSame.checked) Object.entries(data.params_same).forEach(([k, v]) => rows.push([k, runs.map(() => v), false]));
    rows.sort((a, b) => a[0].localeCompare(b[0]));
    clear(configBox).append(rows.length
      ? h("table", { class: "data", id: "config-diff" }, h("thead", {}, header.cloneNode(true)),
        h("tbody", {}, ...rows.map(([k, values, differs]) => h("tr", { class: differs ? "differs" : "" }, h("td", { class: "mono" }, k),
          ...values.map((v) => h("td", { class: "num mono" + (differs ? " diff" : "") }, fmtNum(v)))))))
      : h("p", { class: "muted" }, "The configs are identical."));
  }

  function finalTable() {
    const rows = [...Object.entries(data.metrics_last).map(([k, v]) => [k, v]), ...Object.entries(data.summary || {}).map(([k, v]) => [`summary: ${k}`, v])];
    return h("table", { class: "data", id: "final-metrics" }, h("thead", {}, header.cloneNode(true)),
      h("tbody", {}, ...rows.map(([key, values]) => {
        const numbers = values.map(num).filter((v) => typeof v === "number" && Number.isFinite(v));
        const best = numbers.length > 1 && !directionless(key.replace(/^summary: /, "")) ? (lowerIsBetter(key) ? Math.min(...numbers) : Math.max(...numbers)) : null;
        return h("tr", {}, h("td", {}, key), ...values.map((v) => h("td", { class: "num mono" + (best !== null && num(v) === best ? " best" : "") }, fmtNum(v))));
      })));
  }

  // Grouped by config: seeds of one config become one group with mean ± std, CI and a mean curve with a band.
  const groupBox = h("div", { id: "group-view" });
  const band = h("select", { "aria-label": "band", onchange: () => renderGrouped() },
    h("option", { value: "minmax" }, "band: min–max"), h("option", { value: "ci" }, "band: 95% CI"));
  const grouped = h("input", { type: "checkbox", id: "group-toggle", checked: sessionStorage.getItem("rp.compare.grouped") === "1",
    onchange: () => { sessionStorage.setItem("rp.compare.grouped", grouped.checked ? "1" : "0"); renderGrouped(); } });
  const groupPanel = h("div", { class: "panel", style: { marginBottom: "14px" } },
    h("div", { class: "row", style: { marginBottom: "10px" } }, h("h2", { style: { margin: 0 } }, "Groups (runs whose configs differ only in the seed)"),
      h("span", { class: "spacer" }), band), groupBox);
  let stopGroups = () => {};
  async function renderGrouped() {
    stopGroups();
    stopGroups = () => {};
    groupPanel.style.display = grouped.checked ? "" : "none";
    if (grouped.checked) stopGroups = await renderGroups(groupBox, refs, chosen, { band: band.value });
  }

  page.append(
    h("div", { class: "row", style: { marginBottom: "12px" } }, h("h1", {}, `Compare ${runs.length} runs`), h("span", { class: "spacer" }),
      h("label", { class: "inline" }, grouped, "Group by config (ignoring seed)")),
    h("div", { class: "panel", style: { marginBottom: "14px" } }, legend),
    groupPanel,
    h("div", { class: "panel", style: { marginBottom: "14px" } }, h("h2", {}, "Metrics"), chips,
      h("div", { style: { marginTop: "12px" } }, chartToolbar(chartOptions, (what) => {
        if (what === "smoothing") charts.forEach((c) => c.draw(false)); else charts.forEach((c) => c.rebuild());
      }, { filter: false, epochAvailable: metricKeys.includes("epoch") })), grid),
    h("div", { class: "grid2" },
      h("div", { class: "panel" }, h("div", { class: "row", style: { marginBottom: "10px" } }, h("h2", { style: { margin: 0 } }, "Config differences"),
        h("span", { class: "spacer" }), h("label", { class: "inline" }, showSame, "show identical values")), h("div", { class: "table-wrap" }, configBox)),
      h("div", { class: "panel" }, h("h2", {}, "Final metrics"), h("div", { class: "table-wrap" }, finalTable()))));
  renderChips();
  renderConfig();
  renderCharts();
  renderGrouped();
  const timer = setInterval(() => { if (runs.some((r) => r.status === "running")) charts.forEach((c) => c.refresh()); }, 3000);
  return () => { clearInterval(timer); charts.forEach((c) => c.destroy()); stopGroups(); };
}
