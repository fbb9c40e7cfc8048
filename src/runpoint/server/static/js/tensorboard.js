// "Open in TensorBoard" on a run's page: the dashboard starts (or reuses) a TensorBoard for the
// run, reading its TensorBoard sink's directory or an export of its scalars, and links to it.
// Absent where the server offers no TensorBoard (the team server).

import { get, post } from "./api.js";
import { h, clear, toast } from "./dom.js";

export function tensorboardControl(runId) {
  const box = h("span", { class: "row", id: "tensorboard" });
  const link = (url) => h("a", { class: "button", id: "tensorboard-link", href: url, target: "_blank", rel: "noopener noreferrer",
    title: "TensorBoard, started by this dashboard (stopped with it)" }, `TensorBoard ↗ ${url.replace(/^http:\/\//, "").replace(/\/$/, "")}`);
  get(`/api/runs/${encodeURIComponent(runId)}/tensorboard`).then((info) => {
    if (info.url) { box.append(link(info.url)); return; }
    const hint = info.source === "sink" ? "Its TensorBoard sink's event files" : "Its scalars, exported to event files";
    const button = h("button", { id: "open-tensorboard", title: `${hint}: ${info.logdir}`, onclick: async () => {
      button.disabled = true;
      button.textContent = "Starting TensorBoard…";
      try {
        const opened = await post("/api/tensorboard", { runs: [runId] });
        clear(box).append(link(opened.url));
      } catch (error) {
        toast(error.message, true);
        button.disabled = false;
        button.textContent = "Open in TensorBoard";
      }
    } }, "Open in TensorBoard");
    box.append(button);
  }).catch(() => { box.remove(); });  // no such route here: nothing to offer
  return box;
}
