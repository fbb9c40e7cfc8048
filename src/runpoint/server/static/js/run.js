// The Run page: header, headline numbers, and tabs for charts, overview, config, console,
// checkpoints and media. Charts and the console follow a running run live (live.js: Server-Sent
// Events, or polling /state where they fail).

import { get, post } from "./api.js";
import { h, append, clear, badge, tags, fmtAge, fmtBytes, fmtDuration, fmtNum, fmtTime, num, toast, lowerIsBetter, directionless, PALETTE } from "./dom.js";
import { MetricChart, chartToolbar } from "./chart.js";
import { registerControl } from "./models.js";
import { alertsPanel } from "./alerts.js";
import { followRun } from "./live.js";
import { tensorboardControl } from "./tensorboard.js";

const TABS = ["charts", "overview", "config", "console", "checkpoints", "media"];
const chartOptions = { axis: "step", smoothing: 0, log: false, filter: "" };

function groupOf(key) {
  const slash = key.indexOf("/");
  return slash > 0 ? key.slice(0, slash) : "metrics";
}

function kvList(entries) {
  return h("dl", { class: "kv" }, ...entries.filter(([, v]) => v !== undefined && v !== null && v !== "").flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

export async function renderRun(page, ref, initialTab) {
  let details = await get(`/api/runs/${encodeURIComponent(ref)}`);
  const runId = details.run.id;
  let tab = TABS.includes(initialTab) ? initialTab : "charts";
  let charts = [];
  let counts = {};
  let timers = [];
  let consoleState = { file: null, follow: true };
  const tensorboard = tensorboardControl(runId);

  const headBox = h("div");
  const statsBox = h("div", { class: "stats" });
  const tabsBox = h("div", { class: "tabs", role: "tablist" });
  const body = h("div");
  const alertsBox = h("div");
  const showAlerts = async () => { const panel = await alertsPanel(runId); alertsBox.replaceChildren(...(panel ? [panel] : [])); };
  page.append(headBox, alertsBox, statsBox, tabsBox, body);

  function renderHead() {
    const run = details.run;
    const stop = run.status === "running"
      ? h("button", { class: "danger", id: "stop-run", onclick: async (event) => {
        event.currentTarget.disabled = true;
        try { const r = await post(`/api/runs/${runId}/stop`, {}); toast(`Sent ${r.signal} to run ${run.name}`); }
        catch (error) { toast(error.message, true); event.currentTarget.disabled = false; }
      } }, "Stop") : null;
    clear(headBox).append(h("div", { class: "run-head" },
      h("div", { class: "title" },
        h("div", { class: "row" }, h("h1", { id: "run-name" }, run.name), badge(run.status), h("span", { class: "mono muted" }, run.id)),
        h("div", { class: "meta" },
          h("span", {}, "project ", h("a", { href: `#/runs?project=${encodeURIComponent(run.project)}` }, run.project)),
          run.group ? h("span", {}, `group ${run.group}`) : null,
          h("span", { title: fmtTime(run.created_at) }, `started ${fmtAge(run.created_at)}`),
          h("span", {}, `ran ${fmtDuration(run.duration_s)}`),
          run.resume_count ? h("span", {}, `resumed ${run.resume_count}×`) : null,
          tags(run.tags))),
      h("span", { class: "spacer" }),
      tensorboard,
      h("a", { class: "button", href: `#/compare?runs=${runId}` }, "Compare…"),
      stop));
    if (run.notes) headBox.append(h("p", { class: "muted", style: { margin: "-6px 0 14px" } }, run.notes));
  }

  function renderStats() {
    clear(statsBox);
    const summary = details.summary || {};
    const items = [];
    for (const [key, value] of Object.entries(summary)) {
      if (typeof num(value) === "number" && items.length < 4) items.push([key, value]);
    }
    const metrics = details.metrics || {};
    const preferred = Object.keys(metrics).filter((k) => /^(val|valid|eval|test)[/_.]/.test(k));
    for (const key of (preferred.length ? preferred : Object.keys(metrics)).slice(0, 6 - items.length)) {
      const m = metrics[key];
      items.push([`${key} (${lowerIsBetter(key) ? "min" : "max"})`, lowerIsBetter(key) ? m.min : m.max]);
    }
    const steps = Math.max(-1, ...Object.values(metrics).map((m) => m.last_step));
    if (steps >= 0) items.push(["last step", steps]);
    for (const [label, value] of items) {
      statsBox.append(h("div", { class: "stat" }, h("div", { class: "label" }, label), h("div", { class: "value" }, fmtNum(value))));
    }
  }

  function renderTabs() {
    clear(tabsBox);
    for (const name of TABS) {
      const count = counts[name];
      tabsBox.append(h("button", { class: name === tab ? "active" : "", role: "tab", "data-tab": name, onclick: () => show(name) },
        name[0].toUpperCase() + name.slice(1), count !== undefined ? h("span", { class: "count" }, count) : null));
    }
  }

  function destroyCharts() { charts.forEach((c) => c.destroy()); charts = []; }

  async function show(name) {
    tab = name;
    history.replaceState(null, "", `#/run/${runId}/${name}`);
    destroyCharts();
    renderTabs();
    clear(body);
    try {
      if (name === "charts") renderCharts();
      else if (name === "overview") renderOverview();
      else if (name === "config") renderConfig();
      else if (name === "console") await renderConsole();
      else if (name === "checkpoints") await renderCheckpoints();
      else if (name === "media") await renderMedia();
    } catch (error) {
      body.append(h("div", { class: "empty" }, error.message));
    }
  }

  function renderCharts() {
    const keys = Object.keys(details.metrics).sort();
    const epochAvailable = keys.includes("epoch");
    if (!epochAvailable && chartOptions.axis === "epoch") chartOptions.axis = "step";
    const grid = h("div");
    const layout = () => {
      destroyCharts();
      clear(grid);
      const needle = (chartOptions.filter || "").toLowerCase();
      const shown = keys.filter((k) => k.toLowerCase().includes(needle));
      if (!keys.length) { grid.append(h("div", { class: "empty" }, "This run has logged no metrics yet.")); return; }
      const groups = {};
      shown.forEach((k) => (groups[groupOf(k)] ||= []).push(k));
      const FIRST = ["train", "val", "valid", "eval", "test"];
      const rank = (g) => (FIRST.includes(g) ? FIRST.indexOf(g) : g === "metrics" ? 99 : 50);
      const order = Object.keys(groups).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
      for (const group of order) {
        const members = groups[group];
        const section = h("div", { class: "charts" });
        grid.append(h("h3", { class: "chart-group" }, group), section);
        for (const key of members) {
          const chart = new MetricChart(section, { key, runs: [{ id: runId, label: details.run.name, color: PALETTE[0], origin: details.run.created_at }], options: chartOptions });
          charts.push(chart);
          chart.load();
        }
      }
    };
    body.append(chartToolbar(chartOptions, (what) => {
      if (what === "filter") layout();
      else if (what === "smoothing") charts.forEach((c) => c.draw(false));
      else charts.forEach((c) => c.rebuild());
    }, { epochAvailable }), grid);
    layout();
  }

  function renderOverview() {
    const run = details.run;
    const meta = details.meta || {};
    const git = meta.git || {};
    const left = h("div", { class: "panel" }, h("h2", {}, "Run"), kvList([
      ["id", h("span", { class: "mono" }, run.id)], ["status", badge(run.status)], ["created", fmtTime(run.created_at)],
      ["ended", run.ended_at ? fmtTime(run.ended_at) : null], ["duration", fmtDuration(run.duration_s)],
      ["host", run.host ? `${run.host} (pid ${run.pid})` : null], ["directory", h("span", { class: "mono" }, run.dir)],
      ["config hash", run.config_hash ? h("span", { class: "mono" }, run.config_hash.slice(0, 12)) : null],
      ["git", git.commit ? `${git.commit.slice(0, 12)} on ${git.branch || "?"}${git.dirty ? " (uncommitted changes)" : ""}` : null],
      ["python", meta.python && (meta.python.version || meta.python)], ["torch", meta.torch && (meta.torch.version || meta.torch)],
      ["command", Array.isArray(meta.argv) ? h("span", { class: "mono" }, meta.argv.join(" ")) : null],
      ["working dir", meta.cwd ? h("span", { class: "mono" }, meta.cwd) : null], ["user", meta.user],
      ["machine", [meta.os, meta.cpu_count ? `${meta.cpu_count} CPUs` : null, ...(meta.gpus || []).map((g) => g.name || g)].filter(Boolean).join(" · ")],
    ]));
    const summaryRows = Object.entries(details.summary || {});
    const summary = h("div", { class: "panel" }, h("h2", {}, "Summary"),
      summaryRows.length ? h("table", { class: "data" }, h("tbody", {}, ...summaryRows.map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", { class: "num mono" }, fmtNum(v))))))
        : h("p", { class: "muted" }, "Nothing set on run.summary."));
    const metricRows = Object.entries(details.metrics || {});
    const metrics = h("div", { class: "panel" }, h("h2", {}, "Metrics"), h("div", { class: "table-wrap" }, h("table", { class: "data", id: "metrics-table" },
      h("thead", {}, h("tr", {}, h("th", {}, "key"), h("th", { class: "num" }, "last"), h("th", { class: "num" }, "best"),
        h("th", { class: "num" }, "min (step)"), h("th", { class: "num" }, "max (step)"), h("th", { class: "num" }, "points"))),
      h("tbody", {}, ...metricRows.map(([k, m]) => h("tr", {}, h("td", {}, k), h("td", { class: "num mono" }, fmtNum(m.last)),
        h("td", { class: "num mono best" }, directionless(k) ? "" : fmtNum(lowerIsBetter(k) ? m.min : m.max)),
        h("td", { class: "num mono" }, `${fmtNum(m.min)} (${m.min_step ?? "–"})`), h("td", { class: "num mono" }, `${fmtNum(m.max)} (${m.max_step ?? "–"})`),
        h("td", { class: "num" }, m.count.toLocaleString())))))));
    append(body, [run.error ? h("div", { class: "panel", style: { marginBottom: "16px" } }, h("h2", {}, "Error"), h("div", { class: "error-box" }, run.error)) : null,
      h("div", { class: "grid2" }, left, summary), h("div", { style: { marginTop: "16px" } }, metrics)]);
  }

  function renderConfig() {
    const params = Object.entries(details.params || {});
    const filter = h("input", { type: "search", placeholder: "Filter keys", oninput: () => {
      const needle = filter.value.toLowerCase();
      rows.forEach(([k, tr]) => { tr.style.display = k.toLowerCase().includes(needle) ? "" : "none"; });
    } });
    const rows = params.map(([k, v]) => [k, h("tr", {}, h("td", { class: "mono" }, k), h("td", { class: "mono" }, fmtNum(v)))]);
    body.append(h("div", { class: "panel" }, h("div", { class: "row", style: { marginBottom: "10px" } }, h("h2", { style: { margin: 0 } }, "Config"), h("span", { class: "spacer" }), filter),
      params.length ? h("table", { class: "data", id: "config-table" }, h("thead", {}, h("tr", {}, h("th", {}, "key"), h("th", {}, "value"))), h("tbody", {}, rows.map(([, tr]) => tr)))
        : h("p", { class: "muted" }, "This run has no config.")));
  }

  async function renderConsole() {
    const pre = h("pre", { class: "console", id: "console" });
    const picker = h("select", { onchange: () => { consoleState.file = picker.value; refreshConsole(); } });
    const follow = h("input", { type: "checkbox", checked: consoleState.follow, onchange: () => { consoleState.follow = follow.checked; } });
    const note = h("span", { class: "muted" });
    body.append(h("div", { class: "toolbar" }, picker, h("label", { class: "inline" }, follow, "Follow"), note), pre);
    async function refreshConsole() {
      const data = await get(`/api/runs/${runId}/console`, { file: consoleState.file });
      clear(picker).append(...data.files.map((f) => h("option", { value: f.name, selected: f.name === data.file }, `${f.name}${f.runpoint ? " (runpoint's own events)" : ""} (${fmtBytes(f.bytes)})`)));
      note.textContent = data.truncated ? `last ${fmtBytes(data.text.length)} of ${fmtBytes(data.bytes)}` : "";
      const atBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 40;
      pre.textContent = data.text || "(no console output captured)";
      if (consoleState.follow && atBottom) pre.scrollTop = pre.scrollHeight;
    }
    body.refreshConsole = refreshConsole;
    await refreshConsole();
    pre.scrollTop = pre.scrollHeight;
  }

  async function renderCheckpoints() {
    const [data, registered] = await Promise.all([get(`/api/runs/${runId}/checkpoints`),
      get(`/api/runs/${runId}/models`).then((r) => r.versions).catch(() => [])]);
    counts.checkpoints = data.checkpoints.length;
    renderTabs();
    if (!data.checkpoints.length) { body.append(h("div", { class: "empty" }, "No checkpoints recorded for this run.")); return; }
    const metricKeys = [...new Set(data.checkpoints.flatMap((c) => Object.keys(c.metrics || {})))];
    const total = data.checkpoints.filter((c) => c.state === "present").reduce((n, c) => n + c.bytes, 0);
    body.append(h("div", { class: "panel" },
      h("div", { class: "row", style: { marginBottom: "10px" } }, h("h2", { style: { margin: 0 } }, "Checkpoints"),
        h("span", { class: "muted" }, `latest: ${data.latest || "–"} · best: ${data.best || "–"} · ${fmtBytes(total)} on disk`)),
      h("table", { class: "data", id: "checkpoints-table" },
        h("thead", {}, h("tr", {}, h("th", { class: "num" }, "step"), h("th", {}, "path"), h("th", { class: "num" }, "size"),
          ...metricKeys.map((k) => h("th", { class: "num" }, k)), h("th", {}, "saved"), h("th", {}, "state"), h("th", {}, ""), h("th", {}, "model"))),
        h("tbody", {}, ...data.checkpoints.map((c) => {
          const result = h("span", { class: "muted" });
          const verify = h("button", { class: "small", disabled: c.state !== "present", onclick: async () => {
            verify.disabled = true;
            try {
              const r = await post(`/api/runs/${runId}/checkpoints/${c.step}/verify`, {});
              result.textContent = r.ok ? `✓ ${r.files_checked} files ok` : `✗ ${r.problems.join("; ")}`;
              result.style.color = r.ok ? "var(--ok)" : "var(--danger)";
            } catch (error) { result.textContent = error.message; }
            verify.disabled = false;
          } }, "Verify");
          return h("tr", {}, h("td", { class: "num mono" }, c.step),
            h("td", { class: "mono" }, c.path, c.is_best ? h("span", { class: "tag", style: { marginLeft: "6px" } }, "best") : null,
              data.latest && c.path.endsWith(data.latest) ? h("span", { class: "tag" }, "latest") : null),
            h("td", { class: "num" }, fmtBytes(c.bytes)), ...metricKeys.map((k) => h("td", { class: "num mono" }, fmtNum(c.metrics[k]))),
            h("td", { title: fmtTime(c.created_at) }, fmtAge(c.created_at)), h("td", {}, c.state), h("td", {}, verify, " ", result),
            h("td", {}, registerControl(runId, c, registered.filter((v) => v.step === c.step), () => { clear(body); renderCheckpoints(); })));
        })))));
  }

  async function renderMedia() {
    const data = await get(`/api/runs/${runId}/media`);
    counts.media = data.media.length;
    renderTabs();
    if (!data.media.length) { body.append(h("div", { class: "empty" }, "No media logged for this run.")); return; }
    const byKey = {};
    data.media.forEach((m) => (byKey[m.key] ||= []).push(m));
    for (const [key, items] of Object.entries(byKey)) {
      const view = h("div", { class: "gallery" });
      const slider = items.length > 1 ? h("input", { type: "range", min: 0, max: items.length - 1, value: items.length - 1, oninput: () => paint() }) : null;
      const stepLabel = h("span", { class: "muted mono" });
      const paint = () => {
        const item = items[slider ? Number(slider.value) : 0];
        stepLabel.textContent = `step ${item.step}`;
        clear(view).append(mediaItem(item));
      };
      body.append(h("div", { class: "panel" }, h("div", { class: "row", style: { marginBottom: "8px" } }, h("h2", { style: { margin: 0 } }, key),
        h("span", { class: "muted" }, `${items.length} × ${items[0].kind}`), h("span", { class: "spacer" }), slider, stepLabel), view));
      paint();
    }
  }

  function mediaItem(item) {
    const caption = h("figcaption", {}, h("span", {}, item.key), h("span", {}, `step ${item.step}`));
    if (item.kind === "image" && item.url) return h("figure", {}, h("img", { src: item.url, alt: `${item.key} at step ${item.step}`, loading: "lazy" }), caption);
    if (item.kind === "histogram" && item.data) return h("figure", {}, histogram(item.data), caption);
    if (item.kind === "text") return h("figure", {}, h("pre", { class: "console", style: { maxHeight: "240px" } }, typeof item.data === "string" ? item.data : (item.data?.text ?? JSON.stringify(item.data))), caption);
    if (item.kind === "table" && item.data) {
      const rows = item.data.rows || item.data.data || [];
      const columns = item.data.columns || (rows[0] ? rows[0].map((_, i) => `col ${i + 1}`) : []);
      return h("figure", {}, h("table", { class: "data" }, h("thead", {}, h("tr", {}, columns.map((c) => h("th", {}, c)))),
        h("tbody", {}, rows.slice(0, 100).map((r) => h("tr", {}, r.map((v) => h("td", {}, fmtNum(v))))))), caption);
    }
    return h("figure", {}, h("pre", {}, JSON.stringify(item.data)), caption);
  }

  function histogram(data) {
    const canvas = h("canvas", { width: 280, height: 140, style: { width: "100%", height: "auto" } });
    const counts = data.counts || [];
    const max = Math.max(1, ...counts);
    const ctx = canvas.getContext("2d");
    const width = canvas.width / Math.max(1, counts.length);
    ctx.fillStyle = PALETTE[0];
    counts.forEach((c, i) => { const hgt = (c / max) * (canvas.height - 4); ctx.fillRect(i * width, canvas.height - hgt, Math.max(1, width - 1), hgt); });
    return canvas;
  }

  // live: follow the run while it runs (Server-Sent Events; polling /state where they fail)
  let lastCounts = JSON.stringify(Object.fromEntries(Object.entries(details.metrics).map(([k, m]) => [k, m.count])));
  async function refreshDetails(keysChanged) {
    details = await get(`/api/runs/${runId}`);
    renderHead();
    renderStats();
    showAlerts();
    if (tab === "charts" && keysChanged) show("charts");
    if (tab === "console" && body.refreshConsole) body.refreshConsole();
    if (tab === "overview") show("overview");
  }
  async function poll() {
    if (details.run.status !== "running") return;
    try {
      const state = await get(`/api/runs/${runId}/state`);
      const nowCounts = JSON.stringify(Object.fromEntries(Object.entries(state.metrics).map(([k, m]) => [k, m.count])));
      const keysChanged = Object.keys(state.metrics).length !== Object.keys(details.metrics).length;
      const changed = nowCounts !== lastCounts || state.status !== details.run.status;
      lastCounts = nowCounts;
      if (!changed) return;
      await refreshDetails(keysChanged);
      if (tab === "charts" && !keysChanged) charts.forEach((c) => c.refresh());
    } catch (error) { /* the next poll retries */ }
  }
  // what the stream brings is drawn at once; the rest of the page (numbers, console) follows every few seconds
  let refreshing = null;
  function refreshSoon(keysChanged) {
    if (keysChanged) { refreshing = null; refreshDetails(true).catch(() => {}); return; }
    if (refreshing) return;
    refreshing = setTimeout(() => { refreshing = null; refreshDetails(false).catch(() => {}); }, 3000);
  }
  function livePoints(byKey) {
    const unknown = Object.keys(byKey).some((key) => !(key in details.metrics));
    for (const [key, points] of Object.entries(byKey)) {
      charts.filter((c) => c.key === key).forEach((c) => c.appendPoints(runId, points));
    }
    refreshSoon(unknown);
  }
  if (details.run.status === "running") {
    const lastSteps = Object.fromEntries(Object.entries(details.metrics).map(([k, m]) => [k, m.last_step]));
    const follower = followRun(runId, lastSteps, {
      points: livePoints,
      reload: (keys) => charts.filter((c) => keys.includes(c.key)).forEach((c) => c.reload()),
      state: (state) => { if (state.status !== details.run.status) refreshDetails(false).catch(() => {}); },
      end: () => refreshDetails(false).then(() => charts.forEach((c) => c.reload())).catch(() => {}),
      poll,
    });
    timers.push(follower);
  }

  renderHead();
  renderStats();
  showAlerts();
  Promise.all([get(`/api/runs/${runId}/checkpoints`), get(`/api/runs/${runId}/media`)]).then(([c, m]) => {
    counts.checkpoints = c.checkpoints.length; counts.media = m.media.length; renderTabs();
  }).catch(() => {});
  counts.charts = Object.keys(details.metrics).length;
  await show(tab);
  return () => { timers.forEach((t) => t.stop()); if (refreshing) clearTimeout(refreshing); destroyCharts(); };
}
