// Users (admin): invite, change role, deactivate / reactivate.
import { api } from "../api.js";
import { cardTable, field, fmtDateTime, h, label, labelOptions, pill, replace, select } from "../dom.js";

const ROLES = labelOptions("role", ["admin", "supervisor", "agent", "viewer"]);

function inviteForm(ctx, onCreated) {
  const email = h("input", { type: "email", name: "email", required: true, autocomplete: "off" });
  const name = h("input", { type: "text", name: "full_name", maxlength: 200, autocomplete: "off" });
  const role = select({ name: "role" }, ROLES, "agent");
  const password = h("input", { type: "password", name: "password", autocomplete: "new-password", minlength: 10 });
  const submit = h("button", { type: "submit", class: "button primary", text: "Invite" });
  const form = h("form", { class: "inline-form", "aria-label": "Invite a user" },
    field("E-mail", email), field("Name", name), field("Role", role),
    field("Password (optional)", password, "Leave empty to e-mail an invitation link."), h("div", { class: "filter-actions" }, submit));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    try {
      const body = { email: email.value.trim(), role: role.value, full_name: name.value.trim() || null };
      if (password.value) body.password = password.value;
      const user = await api.post("/api/users", body);
      ctx.notify(password.value ? `Account created for ${user.email}.` : `Invitation sent to ${user.email}.`, "success");
      form.reset();
      onCreated();
    } catch (error) {
      ctx.showError(error);
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

function userRow(user, ctx, reload) {
  const self = user.id === ctx.user.id;
  const role = select({ name: "role", "aria-label": `Role of ${user.email}`, disabled: self }, ROLES, user.role);
  role.addEventListener("change", async () => {
    role.disabled = true;
    try {
      await api.patch(`/api/users/${encodeURIComponent(user.id)}`, { role: role.value });
      ctx.notify(`${user.email} is now ${label("role", role.value).toLowerCase()}.`, "success");
      user.role = role.value;
    } catch (error) {
      role.value = user.role;
      ctx.showError(error);
    } finally {
      role.disabled = self;
    }
  });
  const toggle = h("button", {
    type: "button",
    class: user.is_active ? "button danger small" : "button secondary small",
    text: user.is_active ? "Deactivate" : "Reactivate",
    "aria-label": `${user.is_active ? "Deactivate" : "Reactivate"} ${user.email}`,
    disabled: self,
  });
  toggle.addEventListener("click", async () => {
    if (user.is_active && !window.confirm(`Deactivate ${user.email}? Their sessions end at once.`)) return;
    toggle.disabled = true;
    try {
      const path = `/api/users/${encodeURIComponent(user.id)}`;
      if (user.is_active) await api.post(`${path}/deactivate`);
      else await api.patch(path, { is_active: true });
      ctx.notify(`${user.email} ${user.is_active ? "deactivated" : "reactivated"}.`, "success");
      reload();
    } catch (error) {
      ctx.showError(error);
      toggle.disabled = false;
    }
  });
  return h("tr", { dataset: { userId: user.id } },
    h("td", {}, h("div", { text: user.full_name || "—" }), h("div", { class: "muted small", text: user.email })),
    h("td", {}, role),
    h("td", {}, user.is_active ? pill("active", "good") : pill("inactive", "bad")),
    h("td", { text: fmtDateTime(user.last_login_at) }),
    h("td", { text: fmtDateTime(user.created_at) }),
    h("td", {}, self ? h("span", { class: "muted small", text: "You" }) : toggle));
}

export async function renderUsers(main, ctx) {
  const tbody = h("tbody");
  const count = h("p", { class: "muted small", role: "status" });
  async function load() {
    try {
      const page = await api.get("/api/users", { query: { limit: 500 } });
      const items = (page && (page.items || page.data)) || (Array.isArray(page) ? page : []);
      replace(tbody, items.map((user) => userRow(user, ctx, load)));
      count.textContent = `${items.length} account${items.length === 1 ? "" : "s"}.`;
    } catch (error) {
      ctx.showError(error);
    }
  }
  replace(main,
    h("div", { class: "page-head" }, h("h1", { text: "Users" })),
    h("section", { class: "panel", "aria-labelledby": "invite-title" }, h("h2", { id: "invite-title", text: "Invite someone" }), inviteForm(ctx, load)),
    h("section", { class: "panel flush", "aria-labelledby": "accounts-title" },
      h("h2", { id: "accounts-title", class: "panel-title", text: "Accounts" }),
      h("div", { class: "table-wrap" }, cardTable(h("table", { class: "table" },
        h("thead", {}, h("tr", {}, ["Name", "Role", "State", "Last sign-in", "Created", ""].map((t) => h("th", { scope: "col", text: t })))),
        tbody))),
      h("div", { class: "table-foot" }, count)));
  await load();
  return undefined;
}
