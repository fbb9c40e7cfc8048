// The dashboard's router: #/runs, #/run/<id>[/<tab>], #/compare?runs=a,b, #/launch.

import { get } from "./api.js";
import { h, clear } from "./dom.js";
import { renderRuns } from "./runs.js";
import { renderRun } from "./run.js";
import { renderCompare } from "./compare.js";
import { renderLaunch } from "./launch.js";

const page = document.getElementById("page");
let cleanup = null;

function parse() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [path, queryString] = hash.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, query: new URLSearchParams(queryString || "") };
}

async function route() {
  if (cleanup) { try { cleanup(); } catch (e) { console.error(e); } }
  cleanup = null;
  const { parts, query } = parse();
  const name = parts[0] || "runs";
  document.querySelectorAll("[data-nav]").forEach((a) => a.classList.toggle("active", a.dataset.nav === (name === "run" ? "runs" : name)));
  clear(page);
  try {
    if (name === "runs") cleanup = await renderRuns(page, query);
    else if (name === "run" && parts[1]) cleanup = await renderRun(page, parts[1], parts[2] || "charts");
    else if (name === "compare") cleanup = await renderCompare(page, query);
    else if (name === "launch") cleanup = await renderLaunch(page);
    else page.append(h("div", { class: "empty" }, "No such page. ", h("a", { href: "#/runs" }, "Back to runs")));
  } catch (error) {
    clear(page).append(h("div", { class: "empty" }, h("strong", {}, "Could not load this page: "), error.message));
  }
}

window.addEventListener("hashchange", route);
get("/api/info").then((info) => {
  const root = document.getElementById("root-path");
  root.textContent = info.root;
  root.title = `runpoint ${info.version} · ${info.runs} runs`;
}).catch(() => {});
route();
