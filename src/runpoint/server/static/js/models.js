// The Models page: registered models (#/models) and one model's versions, aliases and lineage (#/models/<name>).

import { get, post } from "./api.js";
import { h, fmtAge, fmtNum, fmtTime, toast } from "./dom.js";

const runLink = (id, step) => id
  ? h("a", { href: `#/run/${encodeURIComponent(id)}/checkpoints`, title: "the run's checkpoints" }, id, step !== null && step !== undefined ? ` @ step ${step}` : "")
  : h("span", { class: "muted" }, "path");

function aliasChips(aliases) {
  const names = Object.entries(aliases);
  if (!names.length) return h("span", { class: "muted" }, "–");
  return h("span", { class: "chips" }, ...names.map(([alias, version]) => h("span", { class: "tag", title: `${alias} → version ${version}` }, `${alias} → v${version}`)));
}

export async function renderModels(page, name) {
  if (name) return renderModel(page, name);
  const data = await get("/api/models");
  page.append(h("div", { class: "row", style: { marginBottom: "14px" } }, h("h1", {}, "Models"), h("span", { class: "muted" }, `${data.models.length} registered`)));
  if (!data.models.length) {
    page.append(h("div", { class: "empty" }, "No registered models yet. Register a checkpoint from a run's Checkpoints tab, or with ",
      h("code", {}, "rp.register_model(name, run)"), "."));
    return null;
  }
  page.append(h("div", { class: "panel", style: { padding: "0" } }, h("div", { class: "table-wrap" },
    h("table", { class: "data", id: "models-table" },
      h("thead", {}, h("tr", {}, ...["Model", "Project", "Versions", "Latest", "Aliases", "Registered"].map((c) => h("th", {}, c)))),
      h("tbody", {}, ...data.models.map((m) => h("tr", { "data-model": m.name },
        h("td", {}, h("a", { href: `#/models/${encodeURIComponent(m.name)}` }, m.name), m.description ? h("div", { class: "muted" }, m.description) : null),
        h("td", {}, m.project),
        h("td", { class: "num" }, m.versions),
        h("td", { class: "num" }, m.latest === null ? "–" : `v${m.latest}`),
        h("td", {}, aliasChips(m.aliases)),
        h("td", { title: m.latest_registered_at ? fmtTime(m.latest_registered_at) : "" }, m.latest_registered_at ? fmtAge(m.latest_registered_at) : "–"))))))));
  return null;
}

function lineageRows(version) {
  const l = version.lineage || {};
  const rows = [
    ["run", runLink(version.run_id, version.step)],
    ["checkpoint", h("code", {}, version.checkpoint)],
    ["manifest hash", version.manifest_hash ? h("code", {}, version.manifest_hash) : "–"],
    ["config hash", l.config_hash ? h("code", {}, l.config_hash) : "–"],
    ["git", l.git_commit ? h("span", {}, h("code", {}, String(l.git_commit).slice(0, 12)), l.git_dirty ? h("span", { class: "badge failed", style: { marginLeft: "6px" } }, "dirty") : "") : "–"],
    ["metric", l.metric ? `${l.metric} = ${fmtNum(l.metric_value)}` : "–"],
    ["registered", `${fmtTime(version.registered_at)}${version.registered_by ? ` by ${version.registered_by}` : ""}`],
  ];
  if (version.tags && version.tags.length) rows.push(["tags", version.tags.join(", ")]);
  if (l.summary && Object.keys(l.summary).length) {
    rows.push(["summary", h("span", {}, ...Object.entries(l.summary).slice(0, 12).map(([k, v]) => h("span", { class: "summary-item" }, `${k}=${fmtNum(v)}  `)))]);
  }
  return h("dl", { class: "kv" }, ...rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

async function renderModel(page, name) {
  const data = await get(`/api/models/${encodeURIComponent(name)}`);
  const byVersion = {};
  data.aliases.forEach((a) => { (byVersion[a.version] ||= []).push(a.alias); });
  page.append(
    h("div", { class: "row", style: { marginBottom: "6px" } }, h("a", { href: "#/models" }, "Models"), h("span", { class: "muted" }, "/")),
    h("div", { class: "row", style: { marginBottom: "14px" } }, h("h1", {}, data.model.name), h("span", { class: "muted" }, `project ${data.model.project}`),
      data.model.description ? h("span", { class: "muted" }, `· ${data.model.description}`) : null));
  const versions = [...data.versions].reverse(); // newest first
  page.append(h("div", { class: "panel", id: "model-versions" }, h("h2", {}, "Versions"),
    ...versions.map((v) => h("section", { class: "version", "data-version": v.version },
      h("div", { class: "row" }, h("h3", { style: { margin: "8px 0" } }, `v${v.version}`),
        ...(byVersion[v.version] || []).map((alias) => h("span", { class: "tag alias" }, alias)),
        v.description ? h("span", { class: "muted" }, v.description) : null),
      lineageRows(v)))));
  page.append(h("div", { class: "panel", id: "alias-history", style: { marginTop: "14px" } }, h("h2", {}, "Alias history"),
    data.history.length ? h("table", { class: "data" },
      h("thead", {}, h("tr", {}, ...["When", "Alias", "From", "To", "Outcome", "By"].map((c) => h("th", {}, c)))),
      h("tbody", {}, ...[...data.history].reverse().map((e) => h("tr", { class: e.outcome === "conflict" ? "muted" : "" },
        h("td", { title: fmtTime(e.at) }, fmtAge(e.at)), h("td", {}, e.alias),
        h("td", {}, e.from_version ? `v${e.from_version}` : "–"), h("td", {}, e.to_version ? `v${e.to_version}` : "–"),
        h("td", {}, e.outcome === "conflict" ? `conflict (expected ${e.expected ? "v" + e.expected : "none"})` : e.outcome),
        h("td", {}, e.by || "–")))))
      : h("div", { class: "empty" }, "No alias has been set.")));
  return null;
}

// The Checkpoints tab's "Register" control: a name (existing models offered), an optional alias and description.
let info = null; // /api/info, once: whether this server registers checkpoints itself

export function registerControl(runId, checkpoint, registered, onDone) {
  const box = h("span", { class: "register" });
  info ||= get("/api/info").catch(() => ({}));
  const tagsOf = (list) => list.map((v) => h("a", { class: "tag alias", href: `#/models/${encodeURIComponent(v.name)}`, title: "registered model version" }, `${v.name}:${v.version}`));
  const button = h("button", { class: "small", disabled: checkpoint.state !== "present", onclick: () => openForm() }, "Register");
  box.append(...tagsOf(registered));
  info.then((i) => { if (i.registers_models !== false) box.append(button); });

  async function openForm() {
    button.disabled = true;
    const models = await get("/api/models").then((d) => d.models).catch(() => []);
    const listId = `models-${runId}-${checkpoint.step}`;
    const name = h("input", { type: "text", placeholder: "model name", list: listId, size: 14, "aria-label": "model name" });
    const alias = h("input", { type: "text", placeholder: "alias (optional)", size: 12, "aria-label": "alias" });
    const description = h("input", { type: "text", placeholder: "description (optional)", size: 18, "aria-label": "description" });
    const message = h("span", { class: "muted" });
    const submit = h("button", { class: "small primary", onclick: async () => {
      submit.disabled = true;
      try {
        const v = await post(`/api/runs/${encodeURIComponent(runId)}/checkpoints/${checkpoint.step}/register`,
          { name: name.value.trim(), alias: alias.value.trim() || null, description: description.value.trim() });
        toast(`Registered ${v.name}:${v.version}${v.alias ? ` as ${v.alias}` : ""}`);
        form.remove();
        onDone && onDone();
      } catch (error) { message.textContent = error.message; message.style.color = "var(--danger)"; submit.disabled = false; }
    } }, "Register");
    const cancel = h("button", { class: "small", onclick: () => { form.remove(); button.disabled = false; } }, "Cancel");
    const form = h("span", { class: "register-form" },
      h("datalist", { id: listId }, ...models.map((m) => h("option", { value: m.name }))), name, alias, description, submit, cancel, message);
    box.append(form);
    name.focus();
  }
  return box;
}
