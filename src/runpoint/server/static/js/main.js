// The dashboard's router: #/runs, #/run/<id>[/<tab>], #/compare?runs=a,b, #/models[/<name>], #/launch.

import { get } from "./api.js";
import { h, clear } from "./dom.js";
import { renderRuns } from "./runs.js";
import { renderRun } from "./run.js";
import { renderCompare } from "./compare.js";
import { renderLaunch } from "./launch.js";
import { renderModels } from "./models.js";

const page = document.getElementById("page");
let cleanup = null;

function parse() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [path, queryString] = hash.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, query: new URLSearchParams(queryString || "") };
}

let shown = 0; // the latest navigation; an earlier one still loading must not draw into the page

async function route() {
  const navigation = ++shown;
  if (cleanup) { try { cleanup(); } catch (e) { console.error(e); } }
  cleanup = null;
  const { parts, query } = parse();
  const name = parts[0] || "runs";
  document.querySelectorAll("[data-nav]").forEach((a) => a.classList.toggle("active", a.dataset.nav === (name === "run" ? "runs" : name)));
  // each navigation draws into its own view: one overtaken while it loads draws off-screen
  const view = h("div");
  clear(page).append(view);
  let stop = null;
  try {
    if (name === "runs") stop = await renderRuns(view, query);
    else if (name === "run" && parts[1]) stop = await renderRun(view, parts[1], parts[2] || "charts");
    else if (name === "compare") stop = await renderCompare(view, query);
    else if (name === "launch") stop = await renderLaunch(view);
    else if (name === "models") stop = await renderModels(view, parts[1]);
    else view.append(h("div", { class: "empty" }, "No such page. ", h("a", { href: "#/runs" }, "Back to runs")));
  } catch (error) {
    clear(view).append(h("div", { class: "empty" }, h("strong", {}, "Could not load this page: "), error.message));
  }
  if (navigation === shown) cleanup = stop;
  else if (stop) { try { stop(); } catch (e) { console.error(e); } } // its timers, charts, popovers
}

window.addEventListener("hashchange", route);
get("/api/info").then((info) => {
  const root = document.getElementById("root-path");
  root.textContent = info.root;
  root.title = `runpoint ${info.version} · ${info.runs} runs`;
  // a server with nothing to launch (the team server) shows no Launch page
  if (!info.entry_points.length) document.querySelector("[data-nav='launch']")?.remove();
}).catch(() => {});
route();
