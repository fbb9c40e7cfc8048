// fetch() wrappers for the dashboard's JSON API; errors carry the server's one-line reason.

export class ApiError extends Error {
  constructor(status, detail, issues) {
    super(detail);
    this.status = status;
    this.issues = issues || [];
  }
}

async function handle(response) {
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { detail: text }; }
  if (!response.ok) {
    throw new ApiError(response.status, (data && data.detail) || response.statusText, data && data.issues);
  }
  return data;
}

export function url(path, params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value === null || value === undefined || value === "") continue;
    if (Array.isArray(value)) value.forEach((v) => query.append(key, v));
    else query.append(key, value);
  }
  const qs = query.toString();
  return qs ? `${path}?${qs}` : path;
}

export async function get(path, params, options = {}) {
  return handle(await fetch(url(path, params), { credentials: "same-origin", signal: options.signal }));
}

export async function post(path, body) {
  return handle(await fetch(path, {
    method: "POST", credentials: "same-origin",
    headers: { "content-type": "application/json" }, body: JSON.stringify(body || {}),
  }));
}
