// Sign-in and "choose a new password" (reset or invitation link) pages.
import { api, signIn } from "../api.js";
import { field, h, replace } from "../dom.js";

function card(title, intro, form) {
  return h("section", { class: "auth-card", "aria-labelledby": "auth-title" },
    h("div", { class: "auth-brand" },
      h("img", { src: "/console/static/favicon.svg", alt: "", width: 40, height: 40 }),
      h("span", { text: "Voxdesk" })),
    h("h1", { id: "auth-title", text: title }),
    intro ? h("p", { class: "muted", text: intro }) : null,
    form);
}

/** The sign-in form; calls `onSignedIn(user)` once the cookie session is open. */
export function renderLogin(main, { onSignedIn }) {
  const email = h("input", { type: "email", name: "email", autocomplete: "username", required: true });
  const password = h("input", { type: "password", name: "password", autocomplete: "current-password", required: true });
  const error = h("p", { class: "form-error", role: "alert", hidden: true });
  const submit = h("button", { type: "submit", class: "button primary wide", text: "Sign in" });
  const form = h("form", { class: "stack", novalidate: false },
    field("E-mail", email), field("Password", password), error, submit);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    submit.disabled = true;
    submit.textContent = "Signing in…";
    try {
      const user = await signIn(email.value.trim(), password.value);
      password.value = "";
      onSignedIn(user);
    } catch (problem) {
      error.textContent = problem.message;
      error.hidden = false;
      password.select();
    } finally {
      submit.disabled = false;
      submit.textContent = "Sign in";
    }
  });
  replace(main, h("div", { class: "auth-page" },
    card("Sign in to the console", "Use the account your administrator gave you.", form),
    h("p", { class: "muted small" }, "Forgot your password? ",
      h("a", { href: "/console/reset-password", text: "Reset it" }))));
  email.focus();
}

/** Reset (or invitation) page: ask for the e-mail, or set a new password with the token from the link. */
export function renderResetPassword(main) {
  const token = new URLSearchParams(location.search).get("token");
  const error = h("p", { class: "form-error", role: "alert", hidden: true });
  const back = h("p", { class: "muted small" }, h("a", { href: "/console#/login", text: "Back to sign-in" }));
  if (!token) {
    const email = h("input", { type: "email", name: "email", autocomplete: "username", required: true });
    const submit = h("button", { type: "submit", class: "button primary wide", text: "E-mail me a reset link" });
    const form = h("form", { class: "stack" }, field("E-mail", email), error, submit);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.hidden = true;
      submit.disabled = true;
      try {
        await api.post("/api/auth/reset-password", { email: email.value.trim() }, { quiet401: true });
        replace(form, h("p", { role: "status", text: "If an account has this address, a reset link is on its way." }));
      } catch (problem) {
        error.textContent = problem.message;
        error.hidden = false;
      } finally {
        submit.disabled = false;
      }
    });
    replace(main, h("div", { class: "auth-page" }, card("Reset your password", null, form), back));
    email.focus();
    return;
  }
  const password = h("input", { type: "password", name: "new-password", autocomplete: "new-password", required: true, minlength: 10 });
  const again = h("input", { type: "password", name: "confirm-password", autocomplete: "new-password", required: true, minlength: 10 });
  const submit = h("button", { type: "submit", class: "button primary wide", text: "Set password" });
  const form = h("form", { class: "stack" },
    field("New password", password, "At least 10 characters."), field("Repeat the password", again), error, submit);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    if (password.value !== again.value) {
      error.textContent = "The two passwords differ.";
      error.hidden = false;
      return;
    }
    submit.disabled = true;
    try {
      await api.post("/api/auth/reset-password", { token, new_password: password.value }, { quiet401: true });
      replace(form, h("p", { class: "form-ok", role: "status", text: "Your password is set. Every earlier session of this account has ended." }),
        h("a", { class: "button primary wide", href: "/console#/login", text: "Sign in" }));
    } catch (problem) {
      error.textContent = problem.message;
      error.hidden = false;
    } finally {
      submit.disabled = false;
    }
  });
  replace(main, h("div", { class: "auth-page" }, card("Choose a new password", null, form), back));
  password.focus();
}
