// Alerts in the dashboard: a badge per run in the runs table, and the list on a run's page.

import { get } from "./api.js";
import { h, fmtAge, fmtTime } from "./dom.js";

const LEVELS = ["error", "warning", "info"];

// {run id: {level: n}} for the runs (of a project) that have alerts; {} if the server has none
export async function alertCounts(project) {
  try { return await get("/api/alerts/counts", { project }); } catch { return {}; }
}

export function alertBadge(counts) {
  if (!counts) return null;
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  if (!total) return null;
  const worst = LEVELS.find((level) => counts[level]) || "info";
  const detail = LEVELS.filter((level) => counts[level]).map((level) => `${counts[level]} ${level}`).join(", ");
  return h("span", { class: `alert-badge ${worst}`, title: `alerts: ${detail}`, "data-alerts": total }, `⚠ ${total}`);
}

// a panel listing the run's alerts, newest first; null when it has none
export async function alertsPanel(runId) {
  let alerts = [];
  try { alerts = (await get(`/api/runs/${encodeURIComponent(runId)}/alerts`)).alerts; } catch { return null; }
  if (!alerts.length) return null;
  const rows = [...alerts].reverse().map((a) => h("tr", { class: `alert-row ${a.level}` },
    h("td", { title: fmtTime(a.time) }, fmtAge(a.time)),
    h("td", {}, h("span", { class: `alert-level ${a.level}` }, a.level)),
    h("td", { class: "mono muted" }, a.kind),
    h("td", { class: "num" }, a.step ?? ""),
    h("td", {}, h("strong", {}, a.title), a.text ? h("div", { class: "muted alert-text" }, a.text) : null)));
  return h("div", { class: "panel alerts-panel", id: "run-alerts" },
    h("h2", {}, `Alerts (${alerts.length})`),
    h("div", { class: "table-wrap" }, h("table", { class: "data" },
      h("thead", {}, h("tr", {}, h("th", {}, "when"), h("th", {}, "level"), h("th", {}, "kind"), h("th", { class: "num" }, "step"), h("th", {}, "alert"))),
      h("tbody", {}, ...rows))));
}
