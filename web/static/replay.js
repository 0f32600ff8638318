// The replay page: HLS playback (hls.js) of a recording with a short-lived replay token,
// the danmaku overlaid at the second they were sent (the `danmaku` package, media mode),
// chapter markers for answered questions and polls, and preview-then-buy.
import { api, checkoutUrl, describe, formatMoney, h, param, setStatus, siteHeader } from "./ui.js";
import { mountComments } from "./comments.js";
import { mountWatermark } from "./watermark.js";
import { formatDateTime, t } from "./i18n.js";
import { markDropOffs, resumePosition, suggest, trackReplay, visited } from "./insight.js";

const WINDOW_MS = 60_000; // danmaku are fetched a minute at a time, ahead of playback
const MODES = { scroll: "rtl", top: "top", bottom: "bottom" };

const recordingId = param("recording", "");
const statusLine = document.getElementById("status");
const video = document.getElementById("video");
const stage = document.getElementById("stage");

let grant = null; // {token, expires_at, preview_ms, download_url}
let renewTimer = null;
let hls = null;
let danmaku = null;
const loadedWindows = new Set();
const shownIds = new Set();

window.stagepass = {
  get hls() { return hls; },
  get danmaku() { return danmaku; },
  get grant() { return grant; },
  danmakuIds: shownIds,
};

function authHeaders() {
  return grant ? { Authorization: `Bearer ${grant.token}` } : {};
}

function clock(ms) {
  const s = Math.floor(ms / 1000);
  const hms = [Math.floor(s / 3600), Math.floor(s / 60) % 60, s % 60];
  return (hms[0] ? `${hms[0]}:` : "") + hms.slice(1).map((n) => String(n).padStart(2, "0")).join(":");
}

async function mint() {
  grant = await api(`/api/recordings/${recordingId}/token`, { method: "POST" });
  if (grant.download_url) {
    document.getElementById("download-link").href = grant.download_url;
    document.getElementById("download").hidden = false;
  }
  clearTimeout(renewTimer);
  // renew at half-life, so segment requests always carry a valid token
  const lifeMs = grant.expires_at * 1000 - Date.now();
  renewTimer = setTimeout(() => mint().catch((err) => setStatus(statusLine, "error", describe(err))),
                          Math.max(5_000, lifeMs / 2));
  return grant;
}

function showOffer(info, user) {
  const { offer, recording } = info;
  const box = document.getElementById("offer");
  const text = document.getElementById("offer-text");
  const buyButton = document.getElementById("buy");
  const roomLink = document.getElementById("room-link");
  const login = document.getElementById("login");
  box.hidden = false;
  roomLink.href = `/static/room.html?room=${encodeURIComponent(recording.room)}`;
  const parts = [];
  if (offer.preview_seconds > 0) parts.push(t("replay.first_free", { seconds: offer.preview_seconds }));
  if (offer.for_sale) parts.push(t("replay.costs", { price: formatMoney(offer.price, offer.currency) }));
  if (offer.replay_included) parts.push(t("replay.ticket_includes"));
  text.textContent = parts.join(" ") || t("replay.not_for_sale");
  buyButton.hidden = !offer.for_sale || !user;
  buyButton.textContent = offer.for_sale ? t("replay.buy_price", { price: formatMoney(offer.price, offer.currency) }) : t("replay.buy");
  roomLink.hidden = !offer.replay_included;
  login.hidden = Boolean(user);
  login.href = `/static/login.html?next=${encodeURIComponent(location.pathname + location.search)}`;
  buyButton.onclick = async () => {
    const error = document.getElementById("offer-error");
    error.hidden = true;
    buyButton.disabled = true;
    try {
      const { order } = await api("/api/orders", {
        method: "POST",
        body: { room: recording.room, product: "replay", idempotency_key: crypto.randomUUID() },
      });
      if (order.status === "paid") location.reload();
      else location.assign(checkoutUrl(order, location.pathname + location.search));
    } catch (err) {
      error.textContent = describe(err);
      error.hidden = false;
      buyButton.disabled = false;
    }
  };
}

async function loadDanmakuWindow(index) {
  if (loadedWindows.has(index) || (grant.preview_ms !== null && index * WINDOW_MS >= grant.preview_ms)) return;
  loadedWindows.add(index);
  const from = index * WINDOW_MS;
  try {
    const body = await api(`/api/recordings/${recordingId}/danmaku?from_ms=${from}&to_ms=${from + WINDOW_MS}`,
                           { headers: authHeaders() });
    for (const item of body.items) {
      if (shownIds.has(item.id)) continue;
      shownIds.add(item.id);
      // the DOM engine renders `text` with textContent: user text stays text
      danmaku.emit({
        text: item.text,
        mode: MODES[item.mode] || "rtl",
        time: item.t_ms / 1000,
        style: { fontSize: "22px", color: item.color, textShadow: "0 0 3px #000", fontWeight: "600" },
      });
    }
    document.getElementById("danmaku-count").textContent = `${shownIds.size} danmaku loaded`;
  } catch (err) {
    loadedWindows.delete(index);
    console.warn("danmaku window", index, describe(err));
  }
}

function danmakuAhead() {
  const now = video.currentTime * 1000;
  loadDanmakuWindow(Math.floor(now / WINDOW_MS));
  if (now % WINDOW_MS > WINDOW_MS / 2) loadDanmakuWindow(Math.floor(now / WINDOW_MS) + 1);
}

async function loadChapters(durationMs) {
  let chapters;
  try {
    chapters = (await api(`/api/recordings/${recordingId}/chapters.vtt?format=json`, { headers: authHeaders() })).chapters;
  } catch (err) {
    console.warn("chapters", describe(err));
    return;
  }
  if (!chapters.length) return;
  const list = document.getElementById("chapters");
  const markers = document.getElementById("markers");
  list.replaceChildren(...chapters.map((c) => h("li", {},
    h("button", { type: "button", class: "chapter", dataset: { t: c.t_ms, kind: c.kind },
                  onclick: () => { video.currentTime = c.t_ms / 1000; video.play().catch(() => null); } },
      `${clock(c.t_ms)} ${c.title}`))));
  markers.replaceChildren(...chapters.map((c) => h("span", {
    class: c.kind, title: c.title, style: `left: ${Math.min(100, (100 * c.t_ms) / Math.max(1, durationMs))}%`,
  })));
  document.getElementById("chapters-section").hidden = false;
  markers.hidden = false;
}

async function loadStrip() {
  let index;
  try {
    const response = await fetch(`/replay/${recordingId}/thumbs.json`);
    if (!response.ok) return; // an audio-only replay has no thumbnails
    index = await response.json();
  } catch {
    return;
  }
  const sprite = `url("/replay/${recordingId}/${index.image}")`;
  const tiles = index.tiles.filter((t) => grant.preview_ms === null || t.t_ms < grant.preview_ms);
  document.getElementById("strip").replaceChildren(...tiles.map((tile) => h("li", {},
    h("button", { type: "button", class: "thumb", dataset: { t: tile.t_ms }, "aria-label": t("replay.jump_to_time", { time: clock(tile.t_ms) }),
                  onclick: () => { video.currentTime = tile.t_ms / 1000; video.play().catch(() => null); } },
      h("span", { class: "tile", style: `width: ${index.width}px; height: ${index.height}px; `
        + `background-image: ${sprite}; background-position: -${tile.x}px -${tile.y}px` }),
      clock(tile.t_ms)))));
  document.getElementById("strip-section").hidden = tiles.length < 2;
}

function startPlayer(durationMs, watermark) {
  stage.hidden = false;
  if (watermark) mountWatermark(stage, watermark.label, video); // before the danmaku's layer: under it
  document.getElementById("controls").hidden = false;
  danmaku = new Danmaku({ container: stage, media: video, comments: [], engine: "dom" });
  const toggle = document.getElementById("danmaku-toggle");
  toggle.checked = localStorage.getItem("stagepass.danmaku") !== "off";
  if (!toggle.checked) danmaku.hide();
  toggle.addEventListener("change", () => {
    localStorage.setItem("stagepass.danmaku", toggle.checked ? "on" : "off");
    if (toggle.checked) danmaku.show(); else danmaku.hide();
  });
  new ResizeObserver(() => danmaku && danmaku.resize()).observe(stage);
  video.addEventListener("timeupdate", danmakuAhead);
  video.addEventListener("seeked", danmakuAhead);
  danmakuAhead();

  const playlist = `/replay/${recordingId}/index.m3u8`;
  if (window.Hls && Hls.isSupported()) {
    hls = new Hls({
      // the freshest token on every request, in a header (no token in URLs)
      xhrSetup: (xhr, url) => {
        xhr.open("GET", url, true);
        xhr.setRequestHeader("Authorization", `Bearer ${grant.token}`);
      },
    });
    hls.on(Hls.Events.ERROR, (_, data) => {
      if (data.fatal) setStatus(statusLine, "error", t("replay.playback_failed", { details: data.details }));
    });
    hls.loadSource(playlist);
    hls.attachMedia(video);
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = grant.playlist_url; // Safari: native HLS, the token in the URLs
  } else {
    setStatus(statusLine, "error", t("replay.no_hls"));
    return;
  }
  // "ready" once the player holds the replay (a play() before that would be interrupted)
  video.addEventListener("loadedmetadata", () => {
    if (statusLine.dataset.state !== "loading") return;
    setStatus(statusLine, "ready", grant.preview_ms !== null
      ? t("replay.preview_ready", { seconds: grant.preview_ms / 1000 }) : t("replay.ready"));
  }, { once: true });
  video.addEventListener("playing", () => setStatus(statusLine, "playing",
    grant.preview_ms !== null ? t("replay.playing_preview", { seconds: grant.preview_ms / 1000 }) : t("replay.playing")));
  video.addEventListener("ended", () => {
    if (grant.preview_ms !== null) {
      setStatus(statusLine, "preview-over", t("replay.preview_over"));
      document.getElementById("offer").scrollIntoView({ behavior: "smooth" });
    } else {
      setStatus(statusLine, "ended", t("replay.the_end"));
    }
  });
  loadChapters(durationMs);
  loadStrip();
}

async function waitUntilReady() {
  for (;;) {
    const { recording } = await api(`/api/recordings/${recordingId}`);
    if (recording.status === "ready") return;
    if (recording.status === "failed") {
      throw new Error(recording.error ? t("replay.failed_because", { error: recording.error }) : t("replay.failed"));
    }
    const pct = recording.status === "processing" ? ` (${recording.progress} %)` : "";
    setStatus(statusLine, "processing", t("replay.preparing", { progress: pct }));
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

async function main() {
  const user = await siteHeader();
  if (!/^[0-9a-f]{16}$/.test(recordingId)) {
    setStatus(statusLine, "error", t("replay.no_such_recording"));
    return;
  }
  let info;
  try {
    info = await api(`/api/recordings/${recordingId}`);
  } catch (err) {
    setStatus(statusLine, "error", err.status === 404 ? t("replay.no_such_recording") : describe(err));
    return;
  }
  const { recording } = info;
  visited("replay", recording.room);
  suggest("also-bought", `/api/recommendations/also-bought/${encodeURIComponent(recording.room)}`);
  document.getElementById("title").textContent = recording.title;
  document.title = t("replay.page_title", { title: recording.title });
  const when = new Date(recording.started_at);
  document.getElementById("meta").textContent =
    `${formatDateTime(when)} · ${clock(recording.duration_ms)}`;
  if (recording.poster_url) video.poster = recording.poster_url;
  if (!info.offer.owned) showOffer(info, user);
  mountComments(document.getElementById("comments"), { room: recording.room, recording: recording.id })
    .catch((err) => console.warn("comments", describe(err)));
  try {
    await waitUntilReady();
    if (!info.offer.owned && !user) {
      setStatus(statusLine, "login", t("replay.log_in_to_watch"));
      return;
    }
    await mint();
  } catch (err) {
    setStatus(statusLine, err.status === 402 ? "locked" : "error",
              err.status === 402 ? t("replay.needs_purchase") : describe(err));
    return;
  }
  const { recording: ready } = await api(`/api/recordings/${recordingId}`);
  setStatus(statusLine, "loading", t("replay.loading_replay"));
  startPlayer(ready.duration_ms, info.offer.watermark);
  trackReplay(video, recording.room, recordingId);
  if (user && user.role !== "viewer") markDropOffs(recording.room, recordingId, ready.duration_ms);
  const linked = /^#t=(\d+)$/.exec(location.hash); // a chapter link of the creator's insight page
  const resumeAt = linked ? Number(linked[1]) * 1000
    : grant.preview_ms === null ? await resumePosition(recordingId) : null;
  if (resumeAt && resumeAt < ready.duration_ms - 5_000) {
    const seek = () => { video.currentTime = resumeAt / 1000; };
    if (video.readyState >= 1) seek(); else video.addEventListener("loadedmetadata", seek, { once: true });
    window.stagepass.resumedAt = resumeAt;
  }
}

main().catch((err) => setStatus(statusLine, "error", describe(err)));
