// Following a running run: new points by Server-Sent Events (/api/runs/{id}/stream), or by
// polling when SSE fails (no EventSource, the stream refused or cut): the page passes both.
// document.body.dataset.live says which is in use ("sse", "polling", "ended").

import { url } from "./api.js";

const MAX_URL = 6000;  // a run with hundreds of keys at distinct steps: too long a cursor for a GET, poll

// The stream's cursor: the step most keys are at as `since`, the others one by one in `after`.
export function cursor(lastSteps) {
  const tally = {};
  Object.values(lastSteps).forEach((s) => { tally[s] = (tally[s] || 0) + 1; });
  const common = Object.keys(tally).sort((a, b) => tally[b] - tally[a])[0];
  const since = common === undefined ? null : Number(common);
  const after = {};
  for (const [key, step] of Object.entries(lastSteps)) if (step !== since) after[key] = step;
  return { since, after: Object.keys(after).length ? JSON.stringify(after) : null };
}

// handlers: { points(byKey), reload(keys), state(state), end(data), poll() }. Returns { stop() }.
export function followRun(runId, lastSteps, handlers, { pollMs = 1500 } = {}) {
  let source = null;
  let timer = null;
  let stopped = false;
  const mark = (mode) => { document.body.dataset.live = mode; };

  function poll() {
    if (stopped || timer) return;
    if (source) { source.close(); source = null; }
    mark("polling");
    timer = setInterval(handlers.poll, pollMs);
  }

  const streamUrl = url(`/api/runs/${encodeURIComponent(runId)}/stream`, cursor(lastSteps));
  if (typeof EventSource !== "function" || streamUrl.length > MAX_URL) poll();
  else {
    source = new EventSource(streamUrl, { withCredentials: true });
    mark("sse");
    const on = (name, handler) => source.addEventListener(name, (event) => {
      if (!stopped) handler(JSON.parse(event.data));
    });
    on("metrics", (data) => handlers.points(data));
    on("reload", (data) => handlers.reload(data.keys));
    on("state", (data) => handlers.state(data));
    on("end", (data) => { source.close(); source = null; mark("ended"); handlers.end(data); });
    on("problem", () => poll());
    // an error event: refused (401, 503...) or cut; EventSource would reconnect from the first cursor: poll instead
    source.onerror = () => { if (!stopped) poll(); };
  }
  return {
    stop() {
      stopped = true;
      if (source) source.close();
      if (timer) clearInterval(timer);
    },
  };
}
