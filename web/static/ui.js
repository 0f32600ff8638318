// Shared helpers for Stagepass pages: JSON API calls, the logged-in user, safe DOM
// building (user text always goes through textContent), money, status lines, the header.
// Texts for people come from the catalogue (i18n.js); server errors by their code.
import { errorText, formatMoney, languageSwitcher, t } from "./i18n.js";

export { formatMoney };

/** A refused API call: `status` is the HTTP status, `code`/`message` the server's error. */
export class ApiError extends Error {
  constructor(message, status = 0, code = "") {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

/**
 * Call the JSON API with the login cookie. `body` (an object) is sent as JSON.
 * Resolves to the parsed JSON (or null for an empty body); throws ApiError otherwise.
 */
export async function api(path, { method = "GET", body, headers = {} } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers }, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new ApiError(t("common.network_error", { detail: err.message || err }));
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = data && data.error;
    throw new ApiError(error ? errorText(String(error.code), String(error.message)) : `${response.status} ${response.statusText}`,
                       response.status, error ? String(error.code) : "");
  }
  return data;
}

/** The logged-in user ({id, email, display_name, role}) or null. */
export async function me() {
  try {
    return (await api("/api/me")).user;
  } catch (err) {
    if (err.status === 401) return null;
    throw err;
  }
}

/**
 * Build an element: h("a", {href: "/", class: "x", onclick: fn}, "text", child...).
 * Strings become text nodes (never HTML); null/false children are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** How many minor units digits `currency` has (2 for USD, 0 for JPY). */
export function currencyDigits(currency) {
  try {
    return new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits;
  } catch {
    return 2; // unknown code: the server says which ones it takes
  }
}

/** 990, "USD" -> "9.90" (for an input field); null -> "". */
export function fromMinor(minor, currency) {
  if (minor === null || minor === undefined) return "";
  const digits = currencyDigits(currency);
  return (minor / 10 ** digits).toFixed(digits);
}

/** "9.90", "USD" -> 990; null when the text is not such an amount. */
export function parseMinor(text, currency) {
  const value = String(text).trim().replace(",", ".");
  const digits = currencyDigits(currency);
  const match = /^(\d+)(?:\.(\d*))?$/.exec(value);
  if (!match || (match[2] || "").length > digits) return null;
  return Number(match[1]) * 10 ** digits + Number((match[2] || "").padEnd(digits, "0") || 0);
}

/** An error for people: its message, plus the HTTP status when there is one. */
export function describe(err) {
  const message = (err && err.message) || String(err);
  return err && err.status ? t("common.http_status", { message, status: err.status }) : message;
}

/** Set a status line (`data-state` drives its colour; the text is plain text). */
export function setStatus(el, state, text) {
  el.dataset.state = state;
  el.textContent = text;
}

/** Query-string parameter of the page, or `fallback`. */
export function param(name, fallback = null) {
  return new URLSearchParams(location.search).get(name) ?? fallback;
}

/**
 * Fill `<header id="site-header">` with the navigation and the login state.
 * Resolves to the user (or null) so pages need only one /api/me call.
 */
export async function siteHeader() {
  const header = document.getElementById("site-header");
  const user = await me().catch(() => null);
  if (!header) return user;
  const back = encodeURIComponent(location.pathname + location.search);
  const links = [h("a", { href: "/", class: "brand" }, "Stagepass")];
  if (user && (user.role === "creator" || user.role === "admin")) {
    links.push(h("a", { href: "/static/studio.html" }, t("nav.studio")), h("a", { href: "/static/dashboard.html" }, t("nav.dashboard")));
  }
  if (user && user.role === "admin") links.push(h("a", { href: "/static/admin.html" }, t("nav.admin")));
  const account = user
    ? h("span", { class: "account" }, await inbox(), " ", h("span", { class: "who" }, user.display_name || user.email), " ",
        h("button", { type: "button", class: "link", id: "logout", onclick: async () => {
          await api("/api/auth/logout", { method: "POST" }).catch(() => null);
          location.reload();
        } }, t("nav.log_out")))
    : h("a", { href: `/static/login.html?next=${back}`, id: "login-link" }, t("nav.log_in"));
  header.replaceChildren(h("nav", { "aria-label": t("nav.site") }, ...links),
                         h("span", { class: "header-end" }, account, languageSwitcher()));
  return user;
}

/**
 * The header's inbox (inbox.js, loaded only for a logged-in user), its panel open if `open`.
 * If the module does not load (network error, 404, 500), a short message stands in its
 * place and the page goes on; opening the inbox again loads it again.
 */
async function inbox(open = false) {
  try {
    const { inboxControl } = await import("./inbox.js");
    return inboxControl({ open });
  } catch (err) {
    console.warn("the inbox did not load", err);
    const retry = async (event) => {
      event.currentTarget.disabled = true;
      slot.replaceWith(await inbox(true));
    };
    const slot = h("span", { class: "inbox" },
      h("button", { type: "button", class: "link", id: "inbox-button", "aria-describedby": "inbox-error", onclick: retry },
        t("inbox.notifications")),
      " ", h("span", { class: "hint", id: "inbox-error", role: "status" }, t("inbox.unavailable")));
    return slot;
  }
}

/**
 * Where to send a buyer for an order: its checkout URL, and for the test-mode checkout of
 * this server, with `return` so it comes back to `returnPath` (a same-origin path).
 */
export function checkoutUrl(order, returnPath) {
  const url = new URL(order.checkout_url, location.href);
  if (url.origin === location.origin && url.pathname.startsWith("/pay/dev/")) {
    url.searchParams.set("return", returnPath);
  }
  return url.href;
}
