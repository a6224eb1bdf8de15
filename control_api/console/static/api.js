// The console's only door to the control API: same-origin fetch with the HttpOnly session cookie,
// the CSRF header on unsafe methods, and problem+json errors turned into ApiError.

const CSRF_COOKIE = "voxdesk_csrf";
const CSRF_HEADER = "X-CSRF-Token";
const CSRF_STORE = "voxdesk.csrf";
const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);

/** An error answer from the API, carrying its RFC 9457 problem object. */
export class ApiError extends Error {
  constructor(status, problem) {
    const detail = (problem && (problem.detail || problem.title)) || `The server answered ${status}.`;
    super(detail);
    this.name = "ApiError";
    this.status = status;
    this.problem = problem || {};
  }
}

let onUnauthenticated = () => {};

/** Register what happens when a request answers 401 (the session expired or was revoked). */
export function setUnauthenticatedHandler(handler) {
  onUnauthenticated = handler;
}

function readCookie(name) {
  for (const part of document.cookie.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return decodeURIComponent(rest.join("="));
  }
  return null;
}

/** The CSRF token of this session: the readable cookie when the server sets one, else the login answer's. */
export function csrfToken() {
  return readCookie(CSRF_COOKIE) || sessionStorage.getItem(CSRF_STORE);
}

export function rememberCsrf(token) {
  if (token) sessionStorage.setItem(CSRF_STORE, token);
  else sessionStorage.removeItem(CSRF_STORE);
}

async function parseBody(response) {
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  if (type.includes("json")) {
    try {
      return await response.json();
    } catch {
      return null;
    }
  }
  return await response.text();
}

/**
 * Call the API.
 * @param {string} method
 * @param {string} path - starts with /api/
 * @param {{json?: any, form?: FormData|URLSearchParams, query?: Object, signal?: AbortSignal, quiet401?: boolean, blob?: boolean}} [options]
 */
export async function request(method, path, options = {}) {
  const headers = { Accept: "application/json, application/problem+json" };
  let body;
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(options.json);
  } else if (options.form !== undefined) {
    body = options.form; // the browser sets the multipart / urlencoded content type
  }
  if (UNSAFE.has(method)) {
    const token = csrfToken();
    if (token) headers[CSRF_HEADER] = token;
  }
  let url = path;
  if (options.query) {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(options.query)) {
      if (value === undefined || value === null || value === "") continue;
      if (Array.isArray(value)) value.forEach((v) => params.append(key, v));
      else params.append(key, value);
    }
    const text = params.toString();
    if (text) url += (url.includes("?") ? "&" : "?") + text;
  }
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body,
      credentials: "same-origin",
      cache: "no-store",
      signal: options.signal,
    });
  } catch (error) {
    if (error && error.name === "AbortError") throw error;
    throw new ApiError(0, { detail: "The server cannot be reached. Check that Voxdesk is running." });
  }
  // `blob: true` (audio, files): the body of a successful answer as a Blob; problems are still read as JSON.
  const data = options.blob && response.ok ? await response.blob() : await parseBody(response);
  if (!response.ok) {
    const problem = data && typeof data === "object" ? data : { detail: typeof data === "string" && data ? data : undefined };
    const error = new ApiError(response.status, problem);
    if (response.status === 401 && !options.quiet401) onUnauthenticated(error);
    throw error;
  }
  return data;
}

export const api = {
  get: (path, options) => request("GET", path, options),
  post: (path, json, options = {}) => request("POST", path, { ...options, json }),
  put: (path, json, options = {}) => request("PUT", path, { ...options, json }),
  patch: (path, json, options = {}) => request("PATCH", path, { ...options, json }),
  del: (path, options) => request("DELETE", path, options),
  upload: (path, form, options = {}) => request("POST", path, { ...options, form }),
};

/** A query string for links (CSV export), skipping empty values. */
export function queryString(query) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") params.append(key, value);
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}

/**
 * Open a console session (HttpOnly cookie) with an e-mail and password; returns the signed-in user.
 * @param {string} email
 * @param {string} password
 */
export async function signIn(email, password) {
  const form = new URLSearchParams({ username: email, password, grant_type: "password", cookie_session: "true" });
  const answer = await request("POST", "/api/auth/login", { form, quiet401: true });
  rememberCsrf((answer && answer.csrf_token) || null);
  return await request("GET", "/api/auth/me", { quiet401: true });
}
