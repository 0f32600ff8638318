// English and Chinese on every page. The catalogue (flat keys -> text with {name}
// placeholders) comes from /i18n/catalogue.json before any page module runs (top-level
// await), so `t()` is synchronous. The language: the user's choice (localStorage and the
// `stagepass_lang` cookie, which the server also reads for its error messages), else the
// server's pick from Accept-Language. Static text in the pages carries a `data-i18n` key
// (and `data-i18n-placeholder`, `-aria-label`, `-title` for attributes); server errors are
// translated by their stable `code` (`error.<code>`). Money, dates and durations go
// through Intl in the page's language.

const STORE = "stagepass_lang";
const ATTRIBUTES = ["placeholder", "aria-label", "title"];

function stored() {
  try {
    return localStorage.getItem(STORE);
  } catch {
    return null;
  }
}

async function fetchCatalogue(url) {
  try {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (response.ok) return await response.json();
  } catch (err) {
    console.warn("i18n: catalogue not loaded", err);
  }
  return null;
}

/** The chosen language's catalogue, else the server's pick; without either the page stays English. */
async function load() {
  const choice = stored();
  return (choice && await fetchCatalogue(`/i18n/catalogue.json?lang=${encodeURIComponent(choice)}`))
    || await fetchCatalogue("/i18n/catalogue.json")
    || { lang: "en", supported: ["en", "zh-CN"], messages: {} };
}

const loaded = await load();
/** The page's language: "en" or "zh-CN". */
export const lang = loaded.lang;
export const supported = loaded.supported;
const messages = loaded.messages;
if (stored() && !document.cookie.split("; ").includes(`${STORE}=${lang}`)) rememberCookie(lang);
document.documentElement.lang = lang;

function rememberCookie(value) {
  document.cookie = `${STORE}=${encodeURIComponent(value)}; path=/; max-age=${365 * 86400}; samesite=lax`;
}

/** Does the catalogue have `key`? */
export function has(key) {
  return Object.prototype.hasOwnProperty.call(messages, key);
}

/** The text of `key` with `{name}` filled from `params` (the key itself when missing). */
export function t(key, params = {}) {
  const text = has(key) ? messages[key] : key;
  return text.replace(/\{([a-z_][a-z0-9_]*)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}

/** A server error for people: the catalogue's `error.<code>` outside English, else the server's message. */
export function errorText(code, message) {
  if (lang !== "en" && code && has(`error.${code}`)) return t(`error.${code}`);
  return message || (code && has(`error.${code}`) ? t(`error.${code}`) : "");
}

/** Translate `[data-i18n]` texts and `[data-i18n-<attribute>]` attributes under `root`
 * (a key the catalogue lacks leaves the page's English as it is). */
export function translatePage(root = document) {
  for (const node of root.querySelectorAll("[data-i18n]")) {
    if (has(node.dataset.i18n)) node.textContent = t(node.dataset.i18n);
  }
  for (const attribute of ATTRIBUTES) {
    for (const node of root.querySelectorAll(`[data-i18n-${attribute}]`)) {
      const key = node.getAttribute(`data-i18n-${attribute}`);
      if (has(key)) node.setAttribute(attribute, t(key));
    }
  }
}

/** Switch to `value` ("en" or "zh-CN"), remembered in localStorage and a cookie, and reload. */
export function setLanguage(value) {
  if (!supported.includes(value)) return;
  try {
    localStorage.setItem(STORE, value);
  } catch {
    /* private mode: the cookie still remembers */
  }
  rememberCookie(value);
  location.reload();
}

/** The header's language switcher: a <select> of the supported languages. */
export function languageSwitcher() {
  const select = document.createElement("select");
  select.id = "language";
  select.className = "language";
  select.setAttribute("aria-label", t("common.language"));
  for (const value of supported) {
    const option = document.createElement("option");
    option.value = value;
    option.textContent = t(`language.${value}`);
    option.selected = value === lang;
    select.append(option);
  }
  select.addEventListener("change", () => setLanguage(select.value));
  return select;
}

/** 1999, "EUR" -> "€19.99" (or "19.99 €", "€19.99" by locale); 0 -> "Free". */
export function formatMoney(minor, currency) {
  if (!minor) return t("common.free");
  const digits = new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits;
  return new Intl.NumberFormat(lang, { style: "currency", currency }).format(minor / 10 ** digits);
}

/** A date and time (a Date, ISO string or epoch ms) in the page's language. */
export function formatDateTime(value, options = { dateStyle: "medium", timeStyle: "short" }) {
  return new Intl.DateTimeFormat(lang, options).format(new Date(value));
}

/** A date without the time. */
export function formatDate(value) {
  return formatDateTime(value, { dateStyle: "medium" });
}

/** A time of day with seconds (the watermark's clock). */
export function formatTime(value) {
  return formatDateTime(value, { timeStyle: "medium" });
}

/** A duration in seconds -> "1 hr, 5 min" / "1小时5分钟" (Intl.DurationFormat where there is one). */
export function formatDuration(seconds) {
  const total = Math.max(0, Math.round(seconds));
  const parts = { hours: Math.floor(total / 3600), minutes: Math.floor((total % 3600) / 60), seconds: total % 60 };
  if (!parts.hours) delete parts.hours;
  if (!parts.hours && !parts.minutes) delete parts.minutes;
  if (typeof Intl.DurationFormat === "function") return new Intl.DurationFormat(lang, { style: "short" }).format(parts);
  return Object.entries(parts).map(([unit, n]) => new Intl.NumberFormat(lang, { style: "unit", unit: unit.slice(0, -1), unitDisplay: "short" }).format(n)).join(" ");
}

/** A count with its noun: `<key>.one` / `<key>.other` (Intl.PluralRules of the page's language) with {n}. */
export function plural(key, n) {
  const rule = new Intl.PluralRules(lang).select(n);
  const exact = `${key}.${rule}`;
  return t(has(exact) ? exact : `${key}.other`, { n: new Intl.NumberFormat(lang).format(n) });
}

translatePage();
