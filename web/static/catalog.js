// The catalog (home page): live now (with viewer counts), upcoming (with a countdown),
// replays, and the other rooms; search on the server (GET /api/catalog?q=: title, tags,
// description, ranked); price and "you own this" badges. Every text from the server goes
// through ui.h (text nodes).
import { api, describe, formatMoney, h, param, setStatus, siteHeader } from "./ui.js";
import { showTeasers } from "./teasers.js";
import { suggest, visited } from "./insight.js";
import { formatDateTime, formatDuration, plural, t } from "./i18n.js";

const LIVE_REFRESH_MS = 10_000;

const search = document.getElementById("search");
const statusLine = document.getElementById("status");
const sections = {
  live: document.getElementById("live"),
  upcoming: document.getElementById("upcoming"),
  replays: document.getElementById("replays"),
  others: document.getElementById("others"),
};
const empty = document.getElementById("empty");

const SEARCH_DELAY_MS = 200;

// matches: the server's ranked slugs for the search box's text, or null when it is empty
const state = { user: null, rooms: [], live: [], owned: {}, recordings: [], loaded: false, matches: null };

/** "2 d 03:04:05" / "03:04:05" until `iso`, or null once it has passed. */
export function countdown(iso, now = Date.now()) {
  const left = Math.floor((Date.parse(iso) - now) / 1000);
  if (!(left > 0)) return null;
  const d = Math.floor(left / 86400);
  const hms = [Math.floor(left / 3600) % 24, Math.floor(left / 60) % 60, left % 60]
    .map((n) => String(n).padStart(2, "0")).join(":");
  return d ? t("common.days_clock", { days: d, clock: hms }) : hms;
}

function when(iso) {
  const date = new Date(iso);
  return h("time", { datetime: iso }, formatDateTime(date));
}

function matches(query, ...texts) {
  if (!query) return true;
  return texts.flat().some((t) => typeof t === "string" && t.toLowerCase().includes(query));
}

function priceBadge(room) {
  return h("span", { class: "badge price" }, room.free ? t("common.free") : formatMoney(room.ticket_price, room.currency));
}

function ownedBadge(slug, room) {
  const kinds = state.owned[slug] || [];
  if (state.user && room && state.user.id === room.creator_id) return h("span", { class: "badge owned" }, t("catalog.your_room"));
  if (kinds.includes("ticket")) return h("span", { class: "badge owned" }, t("catalog.you_own_this"));
  if (kinds.includes("replay")) return h("span", { class: "badge owned" }, t("catalog.you_own_replay"));
  return null;
}

function tags(room) {
  return room.tags.length ? h("span", { class: "tags" }, ...room.tags.map((t) => h("span", { class: "tag" }, `#${t}`))) : null;
}

function roomCard(room, extra) {
  const href = `/static/room.html?room=${encodeURIComponent(room.slug)}`;
  const summary = room.description ? room.description.slice(0, 160) + (room.description.length > 160 ? "…" : "") : "";
  return h("li", { class: "card", dataset: { room: room.slug } },
    h("a", { class: "title", href }, room.title),
    h("div", { class: "meta" }, extra, priceBadge(room), ownedBadge(room.slug, room), tags(room)),
    summary ? h("p", { class: "summary" }, summary) : null);
}

function liveBadge(entry) {
  const n = entry.viewers;
  return [
    h("span", { class: "badge live" }, entry.phase === "reconnecting" ? t("catalog.reconnecting") : t("catalog.live")),
    h("span", { class: "viewers", "aria-label": plural("room.watching", n) }, plural("room.watching", n)),
  ];
}

function countdownBadge(iso) {
  return [h("span", { class: "countdown", dataset: { starts: iso } }, countdown(iso) ? t("catalog.starts_in", { left: countdown(iso) }) : t("catalog.starting_now")), " ", when(iso)];
}

function recordingCard(rec) {
  const room = state.rooms.find((r) => r.slug === rec.room);
  const seconds = Math.round((rec.duration_ms || 0) / 1000);
  const length = `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
  const href = rec.replay_url || `/static/replay.html?recording=${encodeURIComponent(rec.id)}`;
  return h("li", { class: "card replay", dataset: { recording: rec.id, room: rec.room } },
    rec.poster_url ? h("img", { class: "poster", src: rec.poster_url, alt: "", loading: "lazy" }) : null,
    h("a", { class: "title", href }, rec.title || (room && room.title) || rec.room),
    h("div", { class: "meta" },
      rec.started_at ? when(rec.started_at) : null,
      h("span", { class: "duration", "aria-label": formatDuration(seconds) }, length),
      room && room.replay_price != null && !room.replay_included
        ? h("span", { class: "badge price" }, formatMoney(room.replay_price, room.currency)) : null,
      ownedBadge(rec.room, room)));
}

function fill(name, items) {
  const list = sections[name].querySelector("ul");
  list.replaceChildren(...items);
  sections[name].hidden = items.length === 0;
  return items.length;
}

function render() {
  const query = search.value.trim().toLowerCase();
  const rank = state.matches && new Map(state.matches.map((slug, i) => [slug, i]));
  const hit = (room) => !rank || rank.has(room.slug);
  const byRank = (a, b) => (rank ? rank.get(a.slug) - rank.get(b.slug) : 0);
  const bySlug = new Map(state.rooms.map((r) => [r.slug, r]));
  const onAir = new Map(state.live.map((e) => [e.room, e]));
  const now = Date.now();
  const live = [];
  const upcoming = [];
  const others = [];
  const onAirNow = rank ? [...state.live].sort((a, b) => (rank.get(a.room) ?? 1e9) - (rank.get(b.room) ?? 1e9)) : state.live;
  for (const entry of onAirNow) {
    const room = bySlug.get(entry.room);
    if (room) {
      if (hit(room)) live.push(roomCard(room, liveBadge(entry)));
    } else if (matches(query, entry.room)) {
      // an open room from the server's configuration: the plain player
      live.push(h("li", { class: "card", dataset: { room: entry.room } },
        h("a", { class: "title", href: `/static/watch.html?room=${encodeURIComponent(entry.room)}&autoplay=1` }, entry.room),
        h("div", { class: "meta" }, liveBadge(entry), h("span", { class: "badge price" }, t("catalog.open")))));
    }
  }
  const scheduled = state.rooms.filter((r) => !onAir.has(r.slug) && r.starts_at && Date.parse(r.starts_at) > now)
    .sort((a, b) => Date.parse(a.starts_at) - Date.parse(b.starts_at));
  for (const room of scheduled) {
    if (hit(room)) upcoming.push(roomCard(room, countdownBadge(room.starts_at)));
  }
  for (const room of [...state.rooms].sort(byRank)) {
    if (onAir.has(room.slug) || scheduled.includes(room)) continue;
    if (hit(room)) {
      others.push(roomCard(room, room.starts_at ? [h("span", { class: "hint" }, t("catalog.started")), when(room.starts_at)] : null));
    }
  }
  const replays = state.recordings.filter((rec) => {
    const room = bySlug.get(rec.room);
    return room ? hit(room) : matches(query, rec.title, rec.room);
  }).map(recordingCard);
  const shown = fill("live", live) + fill("upcoming", upcoming) + fill("replays", replays) + fill("others", others);
  empty.hidden = !(state.loaded && shown === 0);
  empty.textContent = query ? t("index.nothing_matches_your_search") : t("catalog.no_rooms");
}

function tick() {
  const now = Date.now();
  let passed = false;
  for (const el of document.querySelectorAll(".countdown[data-starts]")) {
    const left = countdown(el.dataset.starts, now);
    el.textContent = left ? t("catalog.starts_in", { left }) : t("catalog.starting_now");
    if (!left) passed = true;
  }
  if (passed) refreshLive();
}

async function recordings() {
  try {
    return (await api("/api/recordings")).recordings || [];
  } catch (err) {
    if (err.status === 404) return []; // replays not available on this server
    throw err;
  }
}

async function refreshLive() {
  try {
    state.live = (await api("/api/live")).rooms;
    render();
  } catch (err) {
    setStatus(statusLine, "error", t("catalog.refresh_failed", { error: describe(err) }));
  }
}

async function load() {
  state.user = await siteHeader();
  const [catalog, live, owned, recs] = await Promise.all([
    api("/api/catalog"),
    api("/api/live"),
    state.user ? api("/api/me/entitlements") : Promise.resolve({ entitlements: {} }),
    recordings().catch(() => []),
  ]);
  Object.assign(state, { rooms: catalog.rooms, live: live.rooms, owned: owned.entitlements, recordings: recs, loaded: true });
  if (search.value.trim()) await runSearch();
  else render();
  setStatus(statusLine, "ready", "");
  statusLine.hidden = true;
  showTeasers(document.getElementById("teasers"), document.getElementById("teaser-list"));
}

let searchSeq = 0;
let searchTimer = null;

/** Ask the server for the rooms matching the search box; the latest answer wins. */
async function runSearch() {
  const q = search.value.trim();
  const seq = ++searchSeq;
  if (!q) {
    state.matches = null;
    render();
    return;
  }
  try {
    const body = await api(`/api/catalog?q=${encodeURIComponent(q)}`);
    if (seq !== searchSeq) return;
    state.matches = body.rooms.map((r) => r.slug);
    render();
  } catch (err) {
    if (seq !== searchSeq) return;
    statusLine.hidden = false;
    setStatus(statusLine, "error", t("catalog.search_failed", { error: describe(err) }));
  }
}

search.value = param("q", "");
search.addEventListener("input", () => {
  const url = new URL(location.href);
  if (search.value.trim()) url.searchParams.set("q", search.value.trim());
  else url.searchParams.delete("q");
  history.replaceState(null, "", url);
  clearTimeout(searchTimer);
  searchTimer = setTimeout(runSearch, SEARCH_DELAY_MS);
});
document.getElementById("search-form").addEventListener("submit", (e) => e.preventDefault());

load().catch((err) => setStatus(statusLine, "error", t("catalog.load_failed", { error: describe(err) })));
visited("catalog");
suggest("for-you", "/api/recommendations/for-you?limit=6");
setInterval(tick, 1000);
setInterval(refreshLive, LIVE_REFRESH_MS);
