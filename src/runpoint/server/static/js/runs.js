// The Runs page: filter, sort, pick columns, select runs to compare.

import { get } from "./api.js";
import { alertBadge, alertCounts } from "./alerts.js";
import { h, clear, badge, tags, fmtAge, fmtDuration, fmtNum, fmtTime, num, toast, debounce } from "./dom.js";

const STATUSES = ["running", "completed", "failed", "killed", "crashed"];
const stored = (key, fallback) => { try { return JSON.parse(localStorage.getItem(key)) ?? fallback; } catch { return fallback; } };
const store = (key, value) => localStorage.setItem(key, JSON.stringify(value));

function defaultColumns(keys) {
  const picked = keys.summary.filter((k) => k.startsWith("best/")).slice(0, 2).map((k) => `summary.${k}`);
  const metrics = keys.metrics.filter((k) => /^(val|valid|eval|test)[/_.]/.test(k));
  (metrics.length ? metrics : keys.metrics).slice(0, 3).forEach((k) => picked.push(`metrics.${k}`));
  return picked;
}

function columnLabel(column) {
  const [scope, ...rest] = column.split(".");
  return h("span", { title: column }, h("span", { class: "muted" }, scope === "params" ? "config " : scope === "summary" ? "summary " : ""), rest.join("."));
}

function sortValue(run, sortKey) {
  if (sortKey.startsWith("col:")) return num(run.values[sortKey.slice(4)]);
  return run[sortKey];
}

function compare(a, b) {
  const aMissing = a === null || a === undefined || (typeof a === "number" && Number.isNaN(a));
  const bMissing = b === null || b === undefined || (typeof b === "number" && Number.isNaN(b));
  if (aMissing || bMissing) return aMissing === bMissing ? 0 : aMissing ? 1 : -1;
  if (typeof a === "number" && typeof b === "number") return a - b;
  return String(a).localeCompare(String(b), undefined, { numeric: true });
}

export async function renderRuns(page, query) {
  const state = {
    project: query.get("project") ?? stored("rp.runs.project", ""),
    statuses: new Set(query.getAll("status")),
    tag: query.get("tag") || "",
    where: query.get("where") || "",
    search: "",
    sort: stored("rp.runs.sort", { key: "created_at", desc: true }),
    columns: stored("rp.runs.columns", null),
    selected: new Set(),
    runs: [],
    alerts: {},
  };
  const info = await get("/api/info");
  if (state.project && !(state.project in info.projects)) state.project = "";

  const count = h("span", { class: "muted" });
  const compareButton = h("button", { class: "primary", disabled: true, onclick: () => {
    location.hash = `#/compare?runs=${[...state.selected].join(",")}`;
  } }, "Compare");
  const projectSelect = h("select", { "aria-label": "project", onchange: () => { state.project = projectSelect.value; store("rp.runs.project", state.project); state.columns = null; load(); } },
    h("option", { value: "" }, `All projects (${info.runs})`),
    ...Object.entries(info.projects).map(([name, n]) => h("option", { value: name, selected: name === state.project }, `${name} (${n})`)));
  const statusChips = h("div", { class: "chips" }, ...STATUSES.map((status) => {
    const chip = h("button", { class: "chip" + (state.statuses.has(status) ? " on" : ""), "data-status": status, onclick: () => {
      state.statuses.has(status) ? state.statuses.delete(status) : state.statuses.add(status);
      chip.classList.toggle("on");
      load();
    } }, status);
    return chip;
  }));
  const tagInput = h("input", { type: "text", placeholder: "tag", value: state.tag, size: 10, onchange: () => { state.tag = tagInput.value.trim(); load(); } });
  const whereInput = h("input", { type: "text", placeholder: "filter: params.training.learning_rate > 1e-3; metrics.val/acc > 0.9", value: state.where, style: { minWidth: "360px", flex: "1" },
    onchange: () => { state.where = whereInput.value; load(); } });
  const searchInput = h("input", { type: "search", placeholder: "Search name, id, tag", oninput: debounce(() => { state.search = searchInput.value.toLowerCase(); renderTable(); }, 120) });
  const columnsButton = h("button", { onclick: (event) => openColumnPicker(event.currentTarget) }, "Columns");
  const tableBox = h("div", { class: "table-wrap" });

  page.append(
    h("div", { class: "row", style: { marginBottom: "14px" } }, h("h1", {}, "Runs"), count, h("span", { class: "spacer" }), columnsButton, compareButton),
    h("div", { class: "panel", style: { marginBottom: "14px", padding: "12px 14px" } },
      h("div", { class: "row" }, projectSelect, statusChips, tagInput, searchInput),
      h("div", { class: "row", style: { marginTop: "10px" } }, whereInput)),
    h("div", { class: "panel", style: { padding: "0" } }, tableBox));

  async function load(quiet = false) {
    try {
      if (!state.columns) {
        const keys = await get("/api/columns", { project: state.project });
        state.columns = defaultColumns(keys);
      }
      const where = state.where.split(/;|\n/).map((s) => s.trim()).filter(Boolean);
      const result = await get("/api/runs", {
        project: state.project, status: [...state.statuses], tag: state.tag ? state.tag.split(/[ ,]+/) : [], where,
        columns: state.columns.join(","),
      });
      state.runs = result.runs;
      state.alerts = await alertCounts(state.project);
      whereInput.classList.remove("invalid");
      renderTable();
      if (result.more) toast("Showing the newest 5,000 runs: narrow the filters to see others");
    } catch (error) {
      if (!quiet) toast(error.message, true);
      if (error.status === 400) whereInput.classList.add("invalid");
    }
  }

  function visibleRuns() {
    let runs = state.runs;
    if (state.search) {
      runs = runs.filter((r) => r.name.toLowerCase().includes(state.search) || r.id.includes(state.search)
        || r.tags.some((t) => t.toLowerCase().includes(state.search)) || r.project.toLowerCase().includes(state.search));
    }
    const { key, desc } = state.sort;
    return [...runs].sort((a, b) => (desc ? -1 : 1) * compare(sortValue(a, key), sortValue(b, key)));
  }

  function header(label, key, cls = "") {
    const active = state.sort.key === key;
    return h("th", { class: `sortable ${cls}`, "data-sort": key, onclick: () => {
      state.sort = { key, desc: active ? !state.sort.desc : key === "created_at" || key.startsWith("col:") };
      store("rp.runs.sort", state.sort);
      renderTable();
    } }, label, active ? h("span", { class: "arrow" }, state.sort.desc ? "↓" : "↑") : null);
  }

  function renderTable() {
    const runs = visibleRuns();
    count.textContent = `${runs.length} of ${state.runs.length} shown`;
    compareButton.disabled = state.selected.size < 2;
    compareButton.textContent = state.selected.size ? `Compare (${state.selected.size})` : "Compare";
    if (!state.runs.length) {
      clear(tableBox).append(h("div", { class: "empty", style: { border: "none" } }, "No runs match. Start one with ",
        h("code", {}, "runpoint demo"), " or from the ", h("a", { href: "#/launch" }, "Launch"), " page."));
      return;
    }
    const allBox = h("input", { type: "checkbox", "aria-label": "select all", checked: runs.length > 0 && runs.every((r) => state.selected.has(r.id)),
      onchange: () => { runs.forEach((r) => (allBox.checked ? state.selected.add(r.id) : state.selected.delete(r.id))); renderTable(); } });
    const head = h("tr", {}, h("th", { style: { width: "34px" } }, allBox), header("Status", "status"), header("Name", "name"),
      header("Project", "project"), h("th", {}, "Tags"), header("Created", "created_at"), header("Duration", "duration_s", "num"),
      ...state.columns.map((c) => header(columnLabel(c), `col:${c}`, "num")));
    const body = document.createDocumentFragment();
    for (const run of runs) {
      const box = h("input", { type: "checkbox", "aria-label": `select ${run.name}`, checked: state.selected.has(run.id) });
      const tr = h("tr", { class: state.selected.has(run.id) ? "selected" : "", "data-run": run.id },
        h("td", {}, box),
        h("td", {}, badge(run.status)),
        h("td", {}, h("a", { href: `#/run/${run.id}` }, run.name), " ", h("span", { class: "mono muted" }, run.id.slice(0, 8)), alertBadge(state.alerts[run.id])),
        h("td", {}, run.project),
        h("td", {}, tags(run.tags)),
        h("td", { title: fmtTime(run.created_at) }, fmtAge(run.created_at)),
        h("td", { class: "num" }, fmtDuration(run.duration_s)),
        ...state.columns.map((c) => h("td", { class: "num mono" }, fmtNum(run.values[c]))));
      box.addEventListener("change", () => {
        box.checked ? state.selected.add(run.id) : state.selected.delete(run.id);
        tr.classList.toggle("selected", box.checked);
        compareButton.disabled = state.selected.size < 2;
        compareButton.textContent = state.selected.size ? `Compare (${state.selected.size})` : "Compare";
      });
      body.append(tr);
    }
    const table = h("table", { class: "data", id: "runs-table" }, h("thead", {}, head), h("tbody", {}, body));
    clear(tableBox).append(table);
  }

  let popover = null;
  async function openColumnPicker(anchor) {
    if (popover) { popover.remove(); popover = null; return; }
    const keys = await get("/api/columns", { project: state.project });
    const search = h("input", { type: "search", placeholder: "Find a key", style: { width: "100%" } });
    const list = h("div");
    const renderList = () => {
      clear(list);
      const needle = search.value.toLowerCase();
      for (const [scope, names] of Object.entries(keys)) {
        const shown = names.filter((k) => k.toLowerCase().includes(needle));
        if (!shown.length) continue;
        list.append(h("div", { class: "scope" }, scope === "params" ? "config" : scope));
        for (const key of shown) {
          const column = `${scope}.${key}`;
          const box = h("input", { type: "checkbox", checked: state.columns.includes(column), onchange: () => {
            state.columns = box.checked ? [...state.columns, column] : state.columns.filter((c) => c !== column);
            store("rp.runs.columns", state.columns);
            load(true);
          } });
          list.append(h("label", {}, box, key));
        }
      }
    };
    search.addEventListener("input", renderList);
    renderList();
    const rect = anchor.getBoundingClientRect();
    popover = h("div", { class: "popover", style: { top: `${rect.bottom + window.scrollY + 6}px`, left: `${Math.max(8, rect.right - 360)}px` } },
      search, list, h("div", { class: "row", style: { marginTop: "10px" } }, h("span", { class: "spacer" }),
        h("button", { class: "small", onclick: () => { state.columns = []; store("rp.runs.columns", []); load(true); renderList(); } }, "Clear"),
        h("button", { class: "small primary", onclick: () => { popover.remove(); popover = null; } }, "Done")));
    document.body.append(popover);
    search.focus();
  }

  if (!state.columns || !Array.isArray(state.columns)) state.columns = null;
  await load();
  // every 4 s while something runs, else every 20 s (new runs appear without a reload)
  let ticks = 0;
  const timer = setInterval(() => {
    ticks++;
    if (state.runs.some((r) => r.status === "running") || ticks % 5 === 0) load(true);
  }, 4000);
  return () => { clearInterval(timer); if (popover) popover.remove(); };
}
