// Danmaku: the overlay over the player (the `danmaku` package, DOM engine) with the
// viewer's on/off, density and blocked words kept in localStorage, the recent log, and
// sending one.
import { $, ack, clearError, el, showError, state } from "./room-context.js";
import { h } from "./ui.js";
import { errorText, t } from "./i18n.js";

const DENSITY = { low: 3, normal: 10, high: Infinity }; // danmaku shown per second
const STORE = "stagepass.danmaku.";

const prefs = {
  get enabled() { return localStorage.getItem(STORE + "enabled") !== "off"; },
  set enabled(on) { localStorage.setItem(STORE + "enabled", on ? "on" : "off"); },
  get density() { const d = localStorage.getItem(STORE + "density"); return d in DENSITY ? d : "normal"; },
  set density(d) { localStorage.setItem(STORE + "density", d); },
  get blocked() {
    try {
      const words = JSON.parse(localStorage.getItem(STORE + "blocked") || "[]");
      return Array.isArray(words) ? words.filter((w) => typeof w === "string") : [];
    } catch {
      return [];
    }
  },
  set blocked(words) { localStorage.setItem(STORE + "blocked", JSON.stringify(words)); },
};

let overlay = null;
const shownAt = []; // times of danmaku put on screen in the last second (density)

export function setupOverlay() {
  overlay = new window.Danmaku({ container: el.layer, engine: "dom", speed: 144 });
  new ResizeObserver(() => overlay && overlay.resize()).observe(el.stage);
  applyToggle();
  $("danmaku-density").value = prefs.density;
  renderBlocklist();
}

function applyToggle() {
  const on = prefs.enabled;
  const button = $("danmaku-toggle");
  button.setAttribute("aria-pressed", String(on));
  button.textContent = on ? t("room.danmaku_on") : t("room.danmaku_off");
  el.layer.hidden = !on;
  if (overlay) on ? overlay.show() : (overlay.clear(), overlay.hide());
}

function blockedText(text) {
  const lowered = text.toLowerCase();
  return prefs.blocked.some((w) => lowered.includes(w));
}

function renderBlocklist() {
  const list = $("block-list");
  list.replaceChildren(...prefs.blocked.map((word) => h("li", {},
    h("span", {}, word), " ",
    h("button", { type: "button", class: "link", "aria-label": t("room.unblock", { word }), onclick: () => {
      prefs.blocked = prefs.blocked.filter((w) => w !== word);
      renderBlocklist();
    } }, "×"))));
}

function logDanmaku(item) {
  const log = $("danmaku-log");
  log.append(h("li", { dataset: { id: item.id } }, h("strong", {}, item.user.name), ": ", item.text));
  while (log.children.length > 50) log.firstElementChild.remove();
}

function flyDanmaku(item) {
  if (!overlay || !prefs.enabled || blockedText(item.text)) return;
  const now = performance.now();
  while (shownAt.length && now - shownAt[0] > 1000) shownAt.shift();
  if (shownAt.length >= DENSITY[prefs.density]) return;
  shownAt.push(now);
  const mine = state.user && item.user.id === state.user.id;
  overlay.emit({
    text: item.text,
    mode: { scroll: "rtl", top: "top", bottom: "bottom" }[item.mode] || "rtl",
    style: {
      fontSize: innerWidth < 600 ? "16px" : "22px", color: item.color, fontWeight: "600",
      textShadow: "-1px -1px #000, -1px 1px #000, 1px -1px #000, 1px 1px #000",
      border: mine ? "1px solid #fff" : "none", padding: "0 2px", whiteSpace: "pre",
    },
  });
}

/** New danmaku from the room: into the log (unless blocked) and over the video. */
export function receiveDanmaku(items) {
  items.forEach((item) => {
    if (!blockedText(item.text)) logDanmaku(item);
    flyDanmaku(item);
  });
}

/** The recent danmaku a (re)connected viewer is sent: the log only. */
export function recentDanmaku(items) {
  $("danmaku-log").replaceChildren();
  items.filter((item) => !blockedText(item.text)).forEach(logDanmaku);
}

/** A moderator deleted one: out of the log. */
export function deleteDanmaku(id) {
  const item = $("danmaku-log").querySelector(`li[data-id="${CSS.escape(String(id))}"]`);
  if (item) item.remove();
}

async function sendDanmaku(event) {
  event.preventDefault();
  const input = $("danmaku-text");
  const text = input.value;
  if (!text.trim()) return;
  clearError($("danmaku-error"));
  input.value = ""; // at once: the viewer may type the next one while this one is sent
  const res = await ack("danmaku:send", { text, mode: $("danmaku-mode").value, color: $("danmaku-color").value.toUpperCase() });
  if (!res.ok) {
    if (!input.value) input.value = text; // back, to fix and resend
    showError($("danmaku-error"), errorText(res.error.code, res.error.message));
  }
  // stay in the danmaku field, unless the viewer moved to another one meanwhile
  const active = document.activeElement;
  if (!active || active === document.body || active.closest("#danmaku-form")) input.focus();
}

export function wireDanmaku() {
  $("danmaku-form").addEventListener("submit", sendDanmaku);
  $("danmaku-toggle").addEventListener("click", () => { prefs.enabled = !prefs.enabled; applyToggle(); });
  $("danmaku-density").addEventListener("change", (e) => { prefs.density = e.target.value; });
  $("block-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("block-word");
    const word = input.value.trim().toLowerCase();
    if (word && !prefs.blocked.includes(word)) prefs.blocked = [...prefs.blocked, word];
    input.value = "";
    renderBlocklist();
  });
}
