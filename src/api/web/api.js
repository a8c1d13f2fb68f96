// The page's REST client: the token (kept in this browser only) and JSON errors in words.

const TOKEN_KEY = "rumgate-token";

/** An answer that was not 2xx: `message` is the API's own words, `code` its snake_case code. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
  toString() { return this.message + " (" + this.code + ")"; }
}

export const auth = {
  get token() { return localStorage.getItem(TOKEN_KEY) || ""; },
  set(token) { localStorage.setItem(TOKEN_KEY, token); },
  clear() { localStorage.removeItem(TOKEN_KEY); },
};

/** `/#token=…` hands the page a token once; a fragment never reaches the server or its logs. */
export function takeTokenFromHash() {
  if (!location.hash.startsWith("#token=")) return false;
  auth.set(decodeURIComponent(location.hash.slice(7)));
  history.replaceState(null, "", location.pathname + location.search);
  return true;
}

let unauthorized = () => {};
/** Called with the error whenever the API refuses the token (401). */
export function onUnauthorized(fn) { unauthorized = fn; }

export function authHeaders(extra) {
  return Object.assign({ "Authorization": "Bearer " + auth.token }, extra || {});
}

/** Turns a non-2xx response into an ApiError carrying the API's message. */
export async function errorOf(resp) {
  const text = await resp.text().catch(() => "");
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = null; }
  const e = body && body.error;
  if (e && e.message) return new ApiError(resp.status, e.code || "error", e.message);
  const detail = text ? ": " + text.slice(0, 200) : "";
  return new ApiError(resp.status, "http_" + resp.status, "the node answered " + resp.status + " " + resp.statusText + detail);
}

/**
 * One JSON request. `opts`: method, body (sent as JSON), headers, signal.
 * Resolves to the parsed body; rejects with ApiError (network failures included).
 */
export async function api(path, opts) {
  const o = opts || {};
  const headers = authHeaders(o.headers);
  if (o.body !== undefined) headers["Content-Type"] = "application/json";
  let resp;
  try {
    resp = await fetch(path, {
      method: o.method || "GET",
      headers,
      body: o.body === undefined ? undefined : JSON.stringify(o.body),
      signal: o.signal,
    });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, "network", "cannot reach the node: " + e.message);
  }
  if (!resp.ok) {
    const err = await errorOf(resp);
    if (resp.status === 401) unauthorized(err);
    throw err;
  }
  const text = await resp.text();
  return text ? JSON.parse(text) : null;
}

/** Like `api`, but a route this node does not serve (yet) resolves to null. */
export async function optional(path) {
  try {
    return await api(path);
  } catch (e) {
    if (e instanceof ApiError && (e.status === 405 || (e.status === 404 && e.code === "not_found"))) return null;
    throw e;
  }
}

export function groupPath(gid, rest) {
  return "/api/v1/groups/" + encodeURIComponent(gid) + (rest || "");
}

/** 128 random bits as hex (crypto.randomUUID exists only in secure contexts). */
function randomKey() {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** Posts an ActivityStreams object to a group (idempotent: one key per attempt). */
export function post(gid, object) {
  return api(groupPath(gid, "/posts"), {
    method: "POST",
    body: object,
    headers: { "Idempotency-Key": randomKey() },
  });
}
