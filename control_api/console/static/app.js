// Console shell: session, permissions, hash routing, notices.
import { api, ApiError, rememberCsrf, request, setUnauthenticatedHandler } from "./api.js";
import { h, label, replace } from "./dom.js";
import { renderLogin, renderResetPassword } from "./views/login.js";
import { renderDashboard } from "./views/dashboard.js";
import { renderAnalytics } from "./views/analytics.js";
import { renderSettings } from "./views/settings.js";
import { renderCalls } from "./views/calls.js";
import { renderCallDetail } from "./views/call_detail.js";
import { renderKnowledge } from "./views/knowledge.js";
import { renderUsers } from "./views/users.js";
import { renderAudit } from "./views/audit.js";
import { renderIntegrations } from "./views/integrations.js";
import { renderDesk } from "./views/desk.js";
import { renderCallbacks } from "./views/callbacks.js";
import { renderLearning } from "./views/learning.js";
import { renderSops } from "./views/sops.js";

// view name -> [permission needed, render function, page title, shown in the main navigation].
// The navigation is built from this table, in this order: a page is added here and nowhere else.
const VIEWS = {
  dashboard: ["analytics:read", renderDashboard, "Dashboard", true],
  analytics: ["analytics:read", renderAnalytics, "Analytics", true],
  calls: ["calls:read_own", renderCalls, "Calls", true],
  call: ["calls:read_own", renderCallDetail, "Call", false],
  knowledge: ["knowledge:read", renderKnowledge, "Knowledge", true],
  users: ["users:manage", renderUsers, "Users", true],
  audit: ["audit:read", renderAudit, "Audit log", true],
  settings: ["analytics:read", renderSettings, "Settings", true],
  integrations: ["integrations:operate", renderIntegrations, "Integrations", true],
  desk: ["handoffs:take", renderDesk, "Desk", true],
  callbacks: ["handoffs:take", renderCallbacks, "Callbacks", true],
  learning: ["learning:manage", renderLearning, "Autonomous learning", true],
  sops: ["sops:manage", renderSops, "SOP generator", true],
};

/** Fill the main navigation from VIEWS (items the role cannot open are hidden by updateChrome). */
function buildNav() {
  const list = document.querySelector("#nav ul");
  list.replaceChildren(...Object.entries(VIEWS)
    .filter(([, view]) => view[3])
    .map(([name, [permission, , title]]) => h("li", { "data-permission": permission },
      h("a", { href: `#/${name}`, "data-view": name, text: title }))));
}

const main = document.getElementById("view");
const notices = document.getElementById("notices");
const topbar = document.getElementById("topbar");

let currentUser = null;
let cleanup = null;
let renderToken = 0;

/** Whether the signed-in user's role grants `permission` (the server still decides). */
export function can(permission) {
  return Boolean(currentUser && (currentUser.permissions || []).includes(permission));
}

/**
 * Show a message to the user. Errors stay until dismissed; others fade after a few seconds.
 * @param {string|Error} message
 * @param {"info"|"success"|"error"} [kind]
 */
export function notify(message, kind = "info") {
  const text = message instanceof Error ? message.message : String(message);
  const tone = message instanceof Error ? "error" : kind;
  const close = h("button", { type: "button", class: "notice-close", "aria-label": "Dismiss message", text: "×" });
  const note = h("div", { class: `notice notice-${tone}`, role: tone === "error" ? "alert" : null },
    h("span", { class: "notice-text", text }), close);
  close.addEventListener("click", () => note.remove());
  notices.append(note);
  if (tone !== "error") setTimeout(() => note.remove(), 5000);
  while (notices.children.length > 3) notices.firstElementChild.remove();
}

/** Report an API error: its problem `detail`, or the message of any other error. */
export function showError(error) {
  if (error && error.name === "AbortError") return;
  if (error instanceof ApiError && error.status === 401) return; // handled by the sign-in redirect
  notify(error instanceof Error ? error : new Error(String(error)), "error");
}

function landingView() {
  for (const [name, [permission, , , inNav]] of Object.entries(VIEWS)) {
    if (inNav && can(permission)) return name;
  }
  return null;
}

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [pathPart, queryPart = ""] = raw.split("?");
  const parts = pathPart.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, query: new URLSearchParams(queryPart) };
}

export function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

const menuToggle = document.getElementById("menu-toggle");

/** Open or close the collapsed menu (narrow screens; on wide ones the menu is always shown and the button hidden). */
function setMenu(open) {
  menuToggle.setAttribute("aria-expanded", String(open));
  topbar.classList.toggle("menu-open", open);
}

function updateChrome(viewName) {
  setMenu(false);
  topbar.hidden = !currentUser;
  if (!currentUser) return;
  const who = document.getElementById("who");
  who.replaceChildren(h("span", { text: currentUser.full_name || currentUser.email }),
    h("span", { class: "who-role", text: ` · ${label("role", currentUser.role)}` }));
  who.title = `${currentUser.email} · ${label("role", currentUser.role)}`;
  for (const item of document.querySelectorAll("#nav li[data-permission]")) {
    item.hidden = !can(item.dataset.permission);
  }
  for (const link of document.querySelectorAll("#nav a[data-view]")) {
    const active = link.dataset.view === viewName || (viewName === "call" && link.dataset.view === "calls");
    if (active) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

async function route() {
  const token = ++renderToken;
  if (cleanup) {
    try {
      cleanup();
    } catch (error) {
      console.warn("view cleanup failed", error);
    }
    cleanup = null;
  }
  notices.replaceChildren(); // messages belong to the page they were shown on
  const { parts, query } = parseHash();
  if (!currentUser) {
    updateChrome(null);
    document.title = "Sign in · Voxdesk";
    renderLogin(main, { onSignedIn: signedIn, notify, showError });
    return;
  }
  let name = parts[0] || landingView();
  if (name === "calls" && parts[1]) name = "call";
  const view = VIEWS[name];
  if (!view) {
    updateChrome(null);
    replace(main, h("section", { class: "panel" },
      h("h1", { text: "Nothing here" }),
      h("p", { text: "This page does not exist, or your role has no page in the console." })));
    return;
  }
  const [permission, render, title] = view;
  updateChrome(name);
  if (!can(permission)) {
    replace(main, h("section", { class: "panel" },
      h("h1", { text: "Not available" }),
      h("p", { text: "Your role does not allow this page." })));
    return;
  }
  document.title = `${title} · Voxdesk`;
  replace(main, h("p", { class: "loading", text: "Loading…" }));
  const ctx = { user: currentUser, can, notify, showError, navigate, query, params: parts.slice(1), isCurrent: () => token === renderToken };
  try {
    const result = await render(main, ctx);
    if (token !== renderToken) {
      if (typeof result === "function") result();
      return;
    }
    cleanup = typeof result === "function" ? result : null;
    // Move focus to the new page's heading so keyboard and screen-reader users land on it.
    const heading = main.querySelector("h1");
    if (heading && !main.contains(document.activeElement)) {
      heading.setAttribute("tabindex", "-1");
      heading.focus({ preventScroll: true });
    }
  } catch (error) {
    if (token !== renderToken) return;
    showError(error);
    replace(main, h("section", { class: "panel" }, h("h1", { text: title }),
      h("p", { class: "error-text", text: error instanceof Error ? error.message : String(error) })));
  }
}

function signedIn(user) {
  currentUser = user;
  const hash = location.hash.replace(/^#\/?/, "");
  if (!hash || hash === "login") location.hash = `#/${landingView() || "dashboard"}`;
  else route();
}

async function signOut() {
  try {
    await request("POST", "/api/auth/logout", { quiet401: true });
  } catch (error) {
    // 401: the session had already ended. Anything else: the session may still be live, so say so and stay.
    if (!(error instanceof ApiError && error.status === 401)) {
      showError(error);
      return;
    }
  }
  currentUser = null;
  rememberCsrf(null);
  history.replaceState(null, "", "/console#/login");
  route();
  notify("You are signed out.", "success");
}

async function boot() {
  buildNav();
  setUnauthenticatedHandler(() => {
    if (!currentUser) return;
    currentUser = null;
    rememberCsrf(null);
    route();
    notify("Your session has ended. Please sign in again.", "info");
  });
  document.getElementById("signout").addEventListener("click", signOut);
  menuToggle.addEventListener("click", () => setMenu(menuToggle.getAttribute("aria-expanded") !== "true"));
  // Escape closes the open menu and gives the focus back to its button.
  topbar.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && topbar.classList.contains("menu-open")) {
      setMenu(false);
      menuToggle.focus();
    }
  });
  document.getElementById("nav").addEventListener("click", (event) => {
    if (event.target.closest("a")) setMenu(false);
  });
  // The skip link must not change the hash (the hash is the router's).
  document.querySelector(".skip-link").addEventListener("click", (event) => {
    event.preventDefault();
    main.focus();
  });
  window.addEventListener("hashchange", route);
  if (location.pathname.replace(/\/$/, "").endsWith("/reset-password")) {
    renderResetPassword(main);
    return;
  }
  try {
    currentUser = await api.get("/api/auth/me", { quiet401: true });
  } catch (error) {
    currentUser = null;
    if (!(error instanceof ApiError && error.status === 401)) showError(error);
  }
  route();
}

boot();
