// Log in / sign up. After success the page goes to `?next=` when it is a same-origin
// relative path ("/static/room.html?room=x"), else home: never "//evil.com", "https:...",
// "javascript:..." or a backslash trick.
import { api, describe, h, me, param, setStatus, siteHeader } from "./ui.js";
import { t } from "./i18n.js";

/** The path to go to after logging in: `next` if it is safe, else "/". */
export function safeNext(next) {
  if (typeof next !== "string" || !next.startsWith("/") || next.startsWith("//")) return "/";
  if (/[\\\u0000-\u001f\u007f\s]/.test(next)) return "/";
  let url;
  try {
    url = new URL(next, location.origin);
  } catch {
    return "/";
  }
  if (url.origin !== location.origin) return "/";
  return url.pathname + url.search + url.hash;
}

const next = safeNext(param("next"));

function showError(el, err) {
  el.hidden = false;
  setStatus(el, "error", describe(err));
}

function fields(form) {
  return Object.fromEntries(new FormData(form).entries());
}

async function submit(form, errorEl, button, request) {
  errorEl.hidden = true;
  button.disabled = true;
  try {
    await request(fields(form));
    location.assign(next);
  } catch (err) {
    showError(errorEl, err);
    button.disabled = false;
    const first = form.querySelector("input:invalid") || form.querySelector("input");
    first.focus();
  }
}

const loginForm = document.getElementById("login-form");
loginForm.addEventListener("submit", (event) => {
  event.preventDefault();
  submit(loginForm, document.getElementById("login-error"), document.getElementById("login-submit"),
    ({ email, password }) => api("/api/auth/login", { method: "POST", body: { email: email.trim(), password } }));
});

const signupForm = document.getElementById("signup-form");
signupForm.addEventListener("submit", (event) => {
  event.preventDefault();
  submit(signupForm, document.getElementById("signup-error"), document.getElementById("signup-submit"),
    ({ email, password, display_name, role }) => {
      const body = { email: email.trim(), password, role };
      if (display_name && display_name.trim()) body.display_name = display_name.trim();
      return api("/api/auth/signup", { method: "POST", body });
    });
});

siteHeader().then((user) => {
  if (!user) return;
  const note = document.getElementById("signed-in");
  note.hidden = false;
  note.replaceChildren(t("login.logged_in_as", { name: user.display_name || user.email }),
    h("a", { href: next, id: "continue" }, t("login.continue")));
  document.getElementById("my-data").hidden = false;
}).catch(() => null);

// Account deletion (DELETE /api/me with the password): the account's person is removed.
const deleteForm = document.getElementById("delete-form");
deleteForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = document.getElementById("delete-error");
  error.hidden = true;
  try {
    await api("/api/me", { method: "DELETE", body: { password: document.getElementById("delete-password").value } });
    location.assign("/");
  } catch (err) {
    error.hidden = false;
    setStatus(error, "error", describe(err));
  }
});

window.stagepass = { safeNext, me };
