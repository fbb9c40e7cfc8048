// The Launch page: a form built from an entry point's config schema and presets, and the
// processes started from here with their live state, output and Stop buttons.

import { get, post } from "./api.js";
import { h, clear, badge, fmtAge, fmtDuration, toast } from "./dom.js";

function resolve(schema, root) {
  // follow $ref into $defs, and pick the non-null branch of Optional[...] (anyOf [X, null])
  for (let i = 0; i < 10 && schema; i++) {
    if (schema.$ref) { schema = { ...root.$defs?.[schema.$ref.split("/").pop()], ...schema, $ref: undefined }; continue; }
    const options = schema.anyOf || schema.oneOf;
    if (options) {
      const picked = options.find((o) => o.type !== "null") || options[0];
      schema = { ...schema, anyOf: undefined, oneOf: undefined, ...picked, nullable: options.some((o) => o.type === "null") };
      continue;
    }
    if (schema.allOf && schema.allOf.length === 1) { schema = { ...schema, ...schema.allOf[0], allOf: undefined }; continue; }
    break;
  }
  return schema || {};
}

function humanize(name) { return name.replace(/_/g, " "); }

// Builds inputs for `schema` into `parent`; returns a function reading the value back.
function buildField(parent, name, schema, root, value, path) {
  schema = resolve(schema, root);
  const label = schema.title && schema.title !== name ? schema.title : humanize(name);
  if (schema.type === "object" && schema.properties) {
    const fieldset = h("fieldset", {}, h("legend", {}, label));
    parent.append(fieldset);
    const readers = {};
    for (const [key, child] of Object.entries(schema.properties)) {
      readers[key] = buildField(fieldset, key, child, root, value?.[key], path ? `${path}.${key}` : key);
    }
    return () => Object.fromEntries(Object.entries(readers).map(([k, read]) => [k, read()]).filter(([, v]) => v !== undefined));
  }
  const current = value !== undefined ? value : schema.default;
  let input;
  let read;
  if (Array.isArray(schema.enum)) {
    input = h("select", {}, ...schema.enum.map((option) => h("option", { value: JSON.stringify(option), selected: option === current }, String(option))));
    read = () => JSON.parse(input.value);
  } else if (schema.type === "boolean") {
    input = h("input", { type: "checkbox", checked: Boolean(current) });
    read = () => input.checked;
  } else if (schema.type === "integer" || schema.type === "number") {
    input = h("input", { type: "number", step: schema.type === "integer" ? 1 : "any", value: current ?? "",
      min: schema.minimum ?? schema.exclusiveMinimum, max: schema.maximum ?? schema.exclusiveMaximum });
    read = () => (input.value === "" ? (schema.nullable ? null : undefined) : Number(input.value));
  } else if (schema.type === "array") {
    input = h("input", { type: "text", value: Array.isArray(current) ? current.join(", ") : "", placeholder: "comma separated" });
    const itemType = resolve(schema.items || {}, root).type;
    read = () => input.value.split(",").map((s) => s.trim()).filter(Boolean).map((s) => (itemType === "integer" || itemType === "number" ? Number(s) : s));
  } else {
    input = h("input", { type: "text", value: current ?? "" });
    read = () => (input.value === "" && schema.nullable ? null : input.value);
  }
  input.name = path;
  input.dataset.path = path;
  parent.append(h("label", { class: "field", title: schema.description || "" }, h("span", {}, label), input));
  return read;
}

export async function renderLaunch(page) {
  const entries = await get("/api/entry-points");
  let entry = entries[0];
  let readConfig = () => ({});
  const entrySelect = h("select", { id: "entry-point", onchange: () => { entry = entries.find((e) => e.name === entrySelect.value); renderForm(entry.defaults); } },
    ...entries.map((e) => h("option", { value: e.name }, e.name)));
  const description = h("p", { class: "muted", style: { margin: "6px 0 12px" } });
  const presets = h("div", { class: "chips" });
  const project = h("input", { type: "text", id: "launch-project" });
  const name = h("input", { type: "text", id: "launch-name", placeholder: "made up when empty" });
  const form = h("form", { class: "config", id: "launch-form", onsubmit: (event) => { event.preventDefault(); submit(); } });
  const problems = h("ul", { class: "problems" });
  const launchButton = h("button", { class: "primary", id: "launch-button", onclick: () => submit() }, "Launch");
  const list = h("div", { id: "launches" });

  function renderForm(values) {
    description.textContent = entry.description || entry.command.join(" ");
    project.value = entry.project;
    clear(presets).append(h("span", { class: "muted", style: { fontSize: "13px" } }, "Presets:"),
      h("button", { class: "chip", type: "button", onclick: () => renderForm(entry.defaults) }, "defaults"),
      ...Object.entries(entry.presets).map(([presetName, preset]) => h("button", { class: "chip", type: "button", "data-preset": presetName, onclick: () => renderForm(preset) }, presetName)));
    clear(form);
    clear(problems);
    const schema = entry.schema;
    const readers = {};
    const props = resolve(schema, schema).properties || {};
    for (const [key, child] of Object.entries(props)) readers[key] = buildField(form, key, child, schema, values?.[key], key);
    readConfig = () => Object.fromEntries(Object.entries(readers).map(([k, read]) => [k, read()]).filter(([, v]) => v !== undefined));
  }

  async function submit() {
    clear(problems);
    form.querySelectorAll(".invalid").forEach((el) => el.classList.remove("invalid"));
    launchButton.disabled = true;
    try {
      const launch = await post("/api/launches", { entry_point: entry.name, config: readConfig(), project: project.value.trim(), name: name.value.trim() });
      toast(`Started ${entry.name} (pid ${launch.pid})`);
      name.value = "";
      await refresh();
    } catch (error) {
      const issues = error.issues && error.issues.length ? error.issues : [error.message];
      problems.append(...issues.map((issue) => h("li", {}, issue)));
      for (const issue of issues) {
        const path = issue.split(":")[0].replace(/^config\./, "");
        const input = form.querySelector(`[data-path="${CSS.escape(path)}"]`);
        if (input) input.classList.add("invalid");
      }
    } finally {
      launchButton.disabled = false;
    }
  }

  async function stop(launch, force) {
    try {
      await post(`/api/launches/${launch.id}/stop`, { force });
      toast(force ? "Sent SIGKILL" : "Sent SIGTERM: the run saves and ends as killed");
      await refresh();
    } catch (error) { toast(error.message, true); }
  }

  const expanded = new Set();
  async function refresh() {
    const launches = await get("/api/launches");
    if (!launches.length) { clear(list).append(h("div", { class: "empty" }, "Nothing launched yet.")); return; }
    const rows = [];
    for (const launch of launches) {
      const state = launch.state === "running" ? "running" : "exited";
      const running = launch.state === "running";
      const stopping = running && launch.stop_requested_at;
      const output = expanded.has(launch.id) ? (await get(`/api/launches/${launch.id}`)).output : null;
      rows.push(h("tr", { "data-launch": launch.id },
        h("td", { title: launch.command.join(" ") }, h("strong", {}, launch.entry_point), h("div", { class: "mono muted" }, launch.id)),
        h("td", {}, launch.project, launch.name ? ` / ${launch.name}` : ""),
        h("td", {}, badge(state), " ", running ? "" : h("span", { class: "muted" }, `exit ${launch.exit_code}`),
          stopping ? h("span", { class: "muted" }, ` ${launch.stop_signal} sent`) : null),
        h("td", {}, launch.run_id ? h("span", { class: "row", style: { gap: "6px" } }, h("a", { href: `#/run/${launch.run_id}`, class: "run-link" }, launch.run_id.slice(0, 12)),
          launch.run_status ? badge(launch.run_status) : null) : h("span", { class: "muted" }, "waiting for rp.init…")),
        h("td", { title: new Date(launch.started_at * 1000).toLocaleString() }, fmtAge(launch.started_at),
          launch.ended_at ? h("div", { class: "muted" }, `ran ${fmtDuration(launch.ended_at - launch.started_at)}`) : null),
        h("td", { class: "num" },
          h("button", { class: "small", onclick: () => { expanded.has(launch.id) ? expanded.delete(launch.id) : expanded.add(launch.id); refresh(); } }, expanded.has(launch.id) ? "Hide output" : "Output"), " ",
          running ? h("button", { class: "small danger stop", onclick: () => stop(launch, Boolean(stopping)) }, stopping ? "Force kill" : "Stop") : null)));
      if (output !== null) rows.push(h("tr", {}, h("td", { colspan: 6 }, h("pre", { class: "console", style: { maxHeight: "260px" } }, output || "(no output yet)"))));
    }
    clear(list).append(h("table", { class: "data", id: "launches-table" },
      h("thead", {}, h("tr", {}, ...["Entry point", "Project / name", "State", "Run", "Started", ""].map((t) => h("th", {}, t)))),
      h("tbody", {}, rows)));
  }

  page.append(h("div", { class: "row", style: { marginBottom: "14px" } }, h("h1", {}, "Launch")),
    h("div", { class: "launch-layout" },
      h("div", { class: "panel" },
        h("label", { class: "field" }, h("span", {}, "Entry point"), entrySelect), description,
        h("div", { style: { marginBottom: "12px" } }, presets),
        h("label", { class: "field" }, h("span", {}, "Project"), project),
        h("label", { class: "field" }, h("span", {}, "Run name"), name),
        form, problems, h("div", { class: "row", style: { marginTop: "10px" } }, launchButton)),
      h("div", { class: "panel" }, h("h2", {}, "Launched from here"), list)));
  renderForm(entry.defaults);
  await refresh();
  const timer = setInterval(() => refresh().catch(() => {}), 1500);
  return () => clearInterval(timer);
}
