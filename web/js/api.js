// REST under /api/v1: the session's tokens, one refresh at a time, the error shape.
//
// Tokens live in localStorage so a reload stays signed in; every request that answers 401
// is retried once after a refresh (a single refresh in flight however many requests fail
// together). A failed refresh ends the session.

const KEY = "chorus.session";
let session = JSON.parse(localStorage.getItem(KEY) || "null");
const listeners = new Set();
let refreshing = null;

/** An error answered by the server: `status`, `code` (`validation_failed`, …), `fields`. */
export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `request failed (${status})`);
    this.status = status;
    this.code = e.code || "http_" + status;
    this.fields = e.fields || {};
  }
}

/** The signed-in session `{access_token, refresh_token, user}`, or null. */
export const current = () => session;
export const me = () => session && session.user;

/** Calls `f(session)` whenever the session starts, changes user data, or ends. */
export function onSession(f) {
  listeners.add(f);
  return () => listeners.delete(f);
}

export function setSession(s) {
  session = s;
  if (s) localStorage.setItem(KEY, JSON.stringify(s));
  else localStorage.removeItem(KEY);
  for (const f of listeners) f(s);
}

/** Replaces the cached account (after a profile or settings change). */
export function setMe(user) {
  if (session) setSession({ ...session, user });
}

/** Exchanges the refresh token for new tokens; resolves to the new access token. */
export function refresh() {
  if (!refreshing) {
    const token = session && session.refresh_token;
    refreshing = (async () => {
      if (!token) throw new ApiError(401, { error: { code: "unauthorized", message: "signed out" } });
      const r = await fetch("/api/v1/auth/refresh", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ refresh_token: token }),
      });
      const body = await r.json().catch(() => null);
      if (!r.ok) {
        // Only a refused token ends the session; a network error or a 5xx keeps it.
        if (r.status === 401 || r.status === 403) setSession(null);
        throw new ApiError(r.status, body);
      }
      setSession(body);
      return body.access_token;
    })().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

async function send(method, path, body, token) {
  const headers = {};
  if (token) headers.Authorization = "Bearer " + token;
  let payload;
  if (body instanceof FormData) payload = body;
  else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  return fetch("/api/v1" + path, { method, headers, body: payload });
}

/** `api("GET", "/feed")` → the parsed body; throws ApiError on a non-2xx answer. */
export async function api(method, path, body) {
  let token = session && session.access_token;
  let r = await send(method, path, body, token);
  if (r.status === 401 && session && session.refresh_token) {
    token = await refresh();
    r = await send(method, path, body, token);
  }
  if (r.status === 204) return null;
  const text = await r.text();
  const data = text ? JSON.parse(text) : null;
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

export const get = (path) => api("GET", path);
export const post = (path, body) => api("POST", path, body === undefined ? {} : body);
export const put = (path, body) => api("PUT", path, body);
export const patch = (path, body) => api("PATCH", path, body);
export const del = (path, body) => api("DELETE", path, body);

/** Uploads a file with progress (`onProgress(0..1)`); resolves to the `201` body. */
export function upload(file, onProgress) {
  const attempt = (token) =>
    new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "/api/v1/media");
      if (token) xhr.setRequestHeader("Authorization", "Bearer " + token);
      xhr.upload.onprogress = (e) => e.lengthComputable && onProgress && onProgress(e.loaded / e.total);
      xhr.onload = () => {
        let body = null;
        try {
          body = JSON.parse(xhr.responseText);
        } catch (_) {}
        if (xhr.status === 201) resolve(body);
        else reject(new ApiError(xhr.status, body));
      };
      xhr.onerror = () => reject(new ApiError(0, { error: { code: "network", message: "upload failed: network error" } }));
      const form = new FormData();
      form.append("file", file);
      xhr.send(form);
    });
  return attempt(session && session.access_token).catch(async (e) => {
    if (e.status !== 401 || !session) throw e;
    return attempt(await refresh());
  });
}

/** A query string from an object, skipping empty values. */
export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") u.set(k, v);
  const s = u.toString();
  return s ? "?" + s : "";
}
