// The creator's studio: my rooms (create/edit), broadcasting from the browser (WHIP),
// the OBS settings, and the live panels (studio-live.js). `studio.html?room=<slug>`
// selects a room. Without a login, publishing with a stream key still works.
import { api, describe, formatMoney, h, param, setStatus, siteHeader } from "./ui.js";
import { accessToken } from "./whip.js";
import { Broadcaster, describeQuality } from "./studio-broadcast.js";
import { LivePanels } from "./studio-live.js";

const $ = (id) => document.getElementById(id);
const publishForm = $("publish-form");
const roomInput = $("room");
const keyInput = $("key");
const goLiveButton = $("golive");
const stopButton = $("stop");
const shareButton = $("share");
const statusLine = $("status");
const qualityLine = $("quality");

const STATS_EVERY_MS = 2000;
const EARNINGS_EVERY_MS = 15000;
const TOKEN_REFRESH_MS = 4 * 60 * 1000; // minted access tokens live 5 minutes by default
const LIVE_PANELS = ["live-panel", "qa-panel", "hands-panel", "polls-panel", "mod-panel", "replays-panel"];
const REPLAYS_EVERY_POLLS = 2; // the recordings list is refreshed every other stats poll

const broadcaster = new Broadcaster($("preview"));
let user = null;
let myRooms = [];
let selected = null; // RoomView of the selected room (one of mine)
let panels = null; // LivePanels of the selected room
let liveRoom = null; // the room being published to
let withLogin = false; // publishing with a minted publish token (not a stream key)
let freshToken = null; // a recent publish token for the WHIP DELETE on pagehide
let timers = { quality: null, stats: null, earnings: null, token: null };

// For debugging and tests, read-only.
window.stagepass = {
  get session() { return broadcaster.session; },
  get broadcaster() { return broadcaster; },
  get panels() { return panels; },
};

// ===================================================================== helpers
function mediaError(err) {
  if (err && err.name === "NotAllowedError") return "access was denied (check the browser's permissions)";
  if (err && err.name === "NotFoundError") return "no camera or microphone found";
  if (err && err.name === "NotReadableError") return "the device is in use by another program";
  return describe(err);
}

function note(el, text, state = "ok") {
  el.dataset.state = state;
  el.textContent = text;
}

function currencyDigits(currency) {
  try {
    return new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits;
  } catch {
    return 2; // unknown code: the server says which ones it takes
  }
}

function duration(ms) {
  const s = Math.floor((ms || 0) / 1000);
  const hh = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(hh ? 2 : 1, "0");
  return `${hh ? `${hh}:` : ""}${mm}:${String(s % 60).padStart(2, "0")}`;
}

function megabytes(bytes) {
  return `${((bytes || 0) / 1e6).toFixed(1)} MB`;
}

// ===================================================================== account + rooms
async function start() {
  user = await siteHeader();
  const accountNote = $("account-note");
  const requested = param("room");
  if (requested) roomInput.value = requested;
  if (!user || (user.role !== "creator" && user.role !== "admin")) {
    $("key-hint").textContent = "The room's stream key, from its creator's OBS settings.";
  }
  if (!user) {
    const next = encodeURIComponent(location.pathname + location.search);
    accountNote.replaceChildren(
      h("a", { href: `/static/login.html?next=${next}`, id: "studio-login" }, "Log in as a creator"),
      " to manage your rooms, publish without a stream key and see the live panels. ",
      "You can still publish to a room with its stream key below.");
    accountNote.hidden = false;
  } else if (user.role !== "creator" && user.role !== "admin") {
    accountNote.replaceChildren(
      "The studio is for creators. You are logged in as ", h("strong", {}, user.display_name || user.email),
      ", a viewer account: you can watch rooms from the ", h("a", { href: "/" }, "catalog"),
      ", or publish to a room whose stream key a creator gave you.");
    accountNote.dataset.state = "error";
    accountNote.hidden = false;
  } else {
    $("rooms-panel").hidden = false;
    await loadRooms();
    if (requested) selectRoom(requested);
    else if (!myRooms.length) $("room-editor").open = true;
  }
}

async function loadRooms() {
  try {
    myRooms = (await api("/api/creator/rooms")).rooms;
  } catch (err) {
    myRooms = [];
    note($("room-form-error"), `Could not load your rooms: ${describe(err)}`, "error");
  }
  renderRooms();
}

function renderRooms() {
  $("rooms-empty").hidden = myRooms.length > 0;
  $("room-list").replaceChildren(...myRooms.map((room) => {
    const price = room.free ? "Free" : formatMoney(room.ticket_price, room.currency);
    const current = selected && selected.slug === room.slug;
    return h("li", { dataset: { room: room.slug } },
      h("a", { href: `/static/studio.html?room=${encodeURIComponent(room.slug)}`, "aria-current": current ? "page" : false,
        onclick: (event) => {
          if (event.metaKey || event.ctrlKey || event.shiftKey) return; // new tab: let the browser do it
          event.preventDefault();
          if (selectRoom(room.slug)) history.pushState(null, "", `?room=${encodeURIComponent(room.slug)}`);
        } }, h("strong", {}, room.title), " ", h("span", { class: "hint" }, room.slug)),
      " ", h("span", { class: "badge" }, price),
      room.starts_at ? h("span", { class: "hint" }, ` · ${new Date(room.starts_at).toLocaleString()}`) : null);
  }));
}

/** Select one of my rooms (or a room typed by hand); false if a broadcast is running elsewhere. */
function selectRoom(slug) {
  if (broadcaster.live && liveRoom !== slug) {
    note($("account-note"), `Stop the broadcast to ${liveRoom} before switching rooms.`, "error");
    $("account-note").hidden = false;
    return false;
  }
  const room = myRooms.find((r) => r.slug === slug) || null;
  if (panels && (!room || panels.room !== room.slug)) {
    panels.close();
    panels = null;
  }
  selected = room;
  roomInput.value = slug;
  $("room-heading").textContent = room ? `· ${room.title}` : "";
  document.title = room ? `Studio · ${room.title}` : "Stagepass studio";
  renderRooms();
  if (user && (user.role === "creator" || user.role === "admin") && !room) {
    note($("account-note"), `“${slug}” is not one of your rooms; you can publish to it with its stream key.`, "error");
    $("account-note").hidden = false;
  } else if (room) {
    $("account-note").hidden = true;
  }
  fillRoomForm(room);
  $("obs-panel").hidden = !room;
  for (const id of LIVE_PANELS) $(id).hidden = !room;
  if (room) {
    loadStreamKey(room.slug);
    if (!panels) {
      panels = new LivePanels(room.slug, () => accessToken(room.slug, "publish"), { onMoney: refreshEarningsSoon });
      panels.connect();
    }
    refreshEarnings();
  }
  pollStats();
  return true;
}

addEventListener("popstate", () => {
  const slug = param("room");
  if (slug) selectRoom(slug);
});

roomInput.addEventListener("change", () => {
  const slug = roomInput.value.trim();
  if (myRooms.some((r) => r.slug === slug)) {
    if (selectRoom(slug)) history.pushState(null, "", `?room=${encodeURIComponent(slug)}`);
  } else {
    pollStats();
  }
});

// ===================================================================== room form
const FIELDS = ["slug", "title", "description", "tags", "starts_at", "currency", "ticket_price", "replay_price",
  "preview_seconds", "max_devices", "replay_included", "allow_downloads", "watermark", "embed_origins"];
const CODE_FIELD = { invalid_slug: "slug", slug_taken: "slug", invalid_title: "title", invalid_description: "description",
  invalid_tags: "tags", invalid_time: "starts_at", unknown_currency: "currency", invalid_preview: "preview_seconds",
  invalid_devices: "max_devices", invalid_embed_origins: "embed_origins" };

class FieldError extends Error {
  constructor(field, message) {
    super(message);
    this.field = field;
  }
}

function field(name) {
  return $(`rf-${name}`);
}

function toLocalInput(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function fromMinor(minor, currency) {
  if (minor === null || minor === undefined) return "";
  const digits = currencyDigits(currency);
  return (minor / 10 ** digits).toFixed(digits);
}

function toMinor(text, currency, name, label) {
  const value = text.trim().replace(",", ".");
  const digits = currencyDigits(currency);
  const match = /^(\d+)(?:\.(\d*))?$/.exec(value);
  if (!match || (match[2] || "").length > digits) {
    throw new FieldError(name, `${label}: a number like ${digits ? "9." + "9".repeat(digits) : "990"} in ${currency}`);
  }
  return Number(match[1]) * 10 ** digits + Number((match[2] || "").padEnd(digits, "0") || 0);
}

function integer(text) {
  const n = Number(text);
  return text.trim() !== "" && Number.isInteger(n) ? n : text; // let the server explain what is wrong
}

function fillRoomForm(room) {
  $("room-form").dataset.mode = room ? "edit" : "create";
  $("room-form-title").textContent = room ? `Edit “${room.title}”` : "Create a room";
  $("room-save").textContent = room ? "Save changes" : "Create room";
  $("room-new").hidden = !room;
  field("slug").disabled = !!room;
  clearFormErrors();
  const v = room || { slug: "", title: "", description: "", tags: [], starts_at: null, currency: "USD", ticket_price: 0,
    replay_price: null, preview_seconds: 0, max_devices: 1, replay_included: false, allow_downloads: false,
    watermark: true, embed_origins: [] };
  field("slug").value = v.slug;
  field("title").value = v.title;
  field("description").value = v.description;
  field("tags").value = v.tags.join(", ");
  field("starts_at").value = toLocalInput(v.starts_at);
  field("currency").value = v.currency;
  field("ticket_price").value = fromMinor(v.ticket_price, v.currency) || "0";
  field("replay_price").value = fromMinor(v.replay_price, v.currency);
  field("preview_seconds").value = String(v.preview_seconds);
  field("max_devices").value = String(v.max_devices);
  field("replay_included").checked = v.replay_included;
  field("allow_downloads").checked = v.allow_downloads;
  field("watermark").checked = v.watermark !== false;
  field("embed_origins").value = (v.embed_origins || []).join(", ");
}

function roomBody(creating) {
  const currency = field("currency").value.trim().toUpperCase();
  const body = {};
  if (creating) body.slug = field("slug").value.trim();
  body.title = field("title").value;
  body.description = field("description").value;
  body.tags = field("tags").value.split(",").map((t) => t.trim()).filter(Boolean);
  const starts = field("starts_at").value;
  if (starts) {
    const d = new Date(starts);
    if (Number.isNaN(d.getTime())) throw new FieldError("starts_at", "Starts at: a date and time");
    body.starts_at = d.toISOString();
  } else if (!creating) {
    body.starts_at = null;
  }
  body.currency = currency;
  body.ticket_price = toMinor(field("ticket_price").value || "0", currency, "ticket_price", "Ticket price");
  const replay = field("replay_price").value.trim();
  body.replay_price = replay ? toMinor(replay, currency, "replay_price", "Replay price") : null;
  body.preview_seconds = integer(field("preview_seconds").value);
  body.max_devices = integer(field("max_devices").value);
  body.replay_included = field("replay_included").checked;
  body.allow_downloads = field("allow_downloads").checked;
  body.watermark = field("watermark").checked;
  body.embed_origins = field("embed_origins").value.split(/[\s,]+/).filter(Boolean);
  return body;
}

function clearFormErrors() {
  note($("room-form-error"), "");
  for (const name of FIELDS) field(name)?.removeAttribute("aria-invalid");
}

function showFormError(err) {
  let name = err.field || CODE_FIELD[err.code];
  const prefix = /^(\w+):/.exec(err.message || "");
  if (!name && prefix && FIELDS.includes(prefix[1])) name = prefix[1];
  note($("room-form-error"), err.field ? err.message : `Not saved: ${describe(err)}`, "error");
  const input = name && field(name);
  if (input) {
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-errormessage", "room-form-error");
    input.focus();
  }
}

$("room-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  clearFormErrors();
  const creating = !selected;
  const button = $("room-save");
  button.disabled = true;
  try {
    const body = roomBody(creating);
    if (creating) {
      const { room } = await api("/api/rooms", { method: "POST", body });
      myRooms.push(room);
      history.pushState(null, "", `?room=${encodeURIComponent(room.slug)}`);
      selectRoom(room.slug);
      $("room-editor").open = false;
      note($("obs-status"), `Room “${room.title}” created. Go live from the browser, or from OBS with these settings.`);
      goLiveButton.focus();
    } else {
      const { room } = await api(`/api/rooms/${encodeURIComponent(selected.slug)}`, { method: "PATCH", body });
      myRooms = myRooms.map((r) => (r.slug === room.slug ? room : r));
      selected = room;
      renderRooms();
      fillRoomForm(room);
      $("room-heading").textContent = `· ${room.title}`;
      note($("room-form-error"), "Saved.");
    }
  } catch (err) {
    showFormError(err);
  } finally {
    button.disabled = false;
  }
});

$("room-new").addEventListener("click", () => {
  if (broadcaster.live) return;
  if (panels) panels.close();
  panels = null;
  selected = null;
  history.pushState(null, "", location.pathname);
  fillRoomForm(null);
  for (const id of [...LIVE_PANELS, "obs-panel"]) $(id).hidden = true;
  $("room-heading").textContent = "";
  renderRooms();
  $("room-editor").open = true;
  field("slug").focus();
});

// ===================================================================== OBS settings
async function loadStreamKey(slug) {
  $("whip-url").value = `${location.origin}/whip/${slug}`;
  const keyField = $("stream-key");
  keyField.value = "";
  try {
    keyField.value = (await api(`/api/rooms/${encodeURIComponent(slug)}/stream-key`)).stream_key;
  } catch (err) {
    note($("obs-status"), `Could not load the stream key: ${describe(err)}`, "error");
  }
}

async function copy(text, what) {
  try {
    await navigator.clipboard.writeText(text);
    note($("obs-status"), `${what} copied.`);
  } catch {
    note($("obs-status"), `Copying is blocked here: select the ${what.toLowerCase()} and copy it by hand.`, "error");
  }
}

$("copy-url").addEventListener("click", () => copy($("whip-url").value, "WHIP URL"));
$("copy-key").addEventListener("click", () => copy($("stream-key").value, "Stream key"));
$("reveal-key").addEventListener("click", () => {
  const keyField = $("stream-key");
  const show = keyField.type === "password";
  keyField.type = show ? "text" : "password";
  $("reveal-key").textContent = show ? "Hide" : "Show";
  $("reveal-key").setAttribute("aria-pressed", String(show));
});
$("rotate-key").addEventListener("click", async () => {
  if (!selected) return;
  const ok = confirm("Make a new stream key? The current key stops working: update it in OBS before the next broadcast.");
  if (!ok) return;
  try {
    const { stream_key: key } = await api(`/api/rooms/${encodeURIComponent(selected.slug)}/stream-key`, { method: "POST" });
    $("stream-key").value = key;
    note($("obs-status"), "New stream key made; the old one no longer works.");
  } catch (err) {
    note($("obs-status"), `Key not rotated: ${describe(err)}`, "error");
  }
});

// ===================================================================== room stats, earnings
function statsRoom() {
  return liveRoom || (selected && selected.slug) || null;
}

let statsPolls = 0;

async function pollStats() {
  clearTimeout(timers.stats);
  const room = statsRoom();
  if (room) {
    try {
      const stats = await api(`/api/rooms/${encodeURIComponent(room)}`);
      renderStats(stats);
      if (selected && selected.slug === room) {
        renderViewerQuality(stats.viewers ? (await api(`/api/rooms/${encodeURIComponent(room)}/viewers`)).viewers : []);
      }
      if (selected && statsPolls++ % REPLAYS_EVERY_POLLS === 0) {
        const { recordings } = await api(`/api/recordings?room=${encodeURIComponent(selected.slug)}`);
        renderReplays(recordings);
      }
    } catch {
      // transient; the next poll tries again
    }
  }
  timers.stats = setTimeout(pollStats, STATS_EVERY_MS);
}

/** Ask the server to upload an upload_failed replay to the object store again. */
async function retryUpload(id, button) {
  button.disabled = true;
  try {
    await api(`/api/recordings/${encodeURIComponent(id)}/upload`, { method: "POST" });
    button.textContent = "Retrying…";
  } catch (err) {
    button.disabled = false;
    button.textContent = `Retry upload (${err.message})`;
  }
}

/** The room's recordings as the creator sees them: recording, processing (percent), uploading
 * (object storage), ready, failed, upload failed (with a retry button). */
function renderReplays(recordings) {
  renderClipChoices(recordings.filter((rec) => rec.status === "ready"));
  $("replays-empty").hidden = recordings.length > 0;
  $("replay-list").replaceChildren(...recordings.map((rec) => {
    const when = new Date(rec.started_at).toLocaleString();
    const state = rec.status === "ready" ? h("a", { href: rec.replay_url }, "Watch the replay")
      : rec.status === "processing" ? `processing ${rec.progress} %`
        : rec.status === "failed" ? h("span", { class: "error" }, `failed: ${rec.error || "unknown error"}`)
          : rec.status === "packaged" || rec.status === "uploading" ? "uploading to storage"
            : rec.status === "upload_failed" ? h("span", {},
              h("span", { class: "error" }, `upload failed: ${rec.error || "unknown error"} `),
              h("button", { type: "button", onclick: (event) => retryUpload(rec.id, event.target) }, "Retry upload"))
              : rec.status;
    return h("li", { dataset: { recording: rec.id, status: rec.status } },
      `${when} · ${duration(rec.duration_ms)} · `, state,
      rec.status === "ready" && rec.error ? h("span", { class: "hint" }, ` (recording stopped early: ${rec.error})`) : null);
  }));
}

// ===================================================================== clips
/** The ready replays a clip can be cut from, keeping the creator's choice across polls. */
function renderClipChoices(ready) {
  const select = $("clip-recording");
  const chosen = select.value;
  const ids = ready.map((rec) => rec.id).join(",");
  $("clip-form").hidden = ready.length === 0;
  if (select.dataset.ids === ids) return;
  select.dataset.ids = ids;
  select.replaceChildren(...ready.map((rec) => h("option", { value: rec.id, selected: rec.id === chosen },
    `${new Date(rec.started_at).toLocaleString()} · ${duration(rec.duration_ms)}`)));
  loadClips();
}

async function cutClip(event) {
  event.preventDefault();
  const status = $("clip-status");
  const body = {
    start_ms: Math.round(Number($("clip-start").value) * 1000),
    end_ms: Math.round(Number($("clip-end").value) * 1000),
    title: $("clip-title").value,
    teaser: $("clip-teaser").checked,
  };
  $("clip-cut").disabled = true;
  setStatus(status, "working", "Cutting…");
  try {
    const clip = await api(`/api/recordings/${encodeURIComponent($("clip-recording").value)}/clips`,
                           { method: "POST", body });
    setStatus(status, "done", clip.reencoded_ms ? `Clip ready (${(clip.reencoded_ms / 1000).toFixed(1)} s `
      + "re-encoded up to the first keyframe, the rest copied)." : "Clip ready (copied, nothing re-encoded).");
    await loadClips();
  } catch (err) {
    setStatus(status, "error", describe(err));
  } finally {
    $("clip-cut").disabled = false;
  }
}

async function clipAction(clip, action) {
  try {
    if (action === "delete") await api(`/api/clips/${clip.id}`, { method: "DELETE" });
    else await api(`/api/clips/${clip.id}`, { method: "PATCH", body: { teaser: !clip.teaser } });
    await loadClips();
  } catch (err) {
    setStatus($("clip-status"), "error", describe(err));
  }
}

async function loadClips() {
  if (!selected) return;
  let clips;
  try {
    ({ clips } = await api(`/api/clips?room=${encodeURIComponent(selected.slug)}`));
  } catch {
    return;
  }
  $("clip-list").replaceChildren(...clips.map((clip) => h("li", { dataset: { clip: clip.id } },
    h("a", { href: clip.page_url }, clip.title || "Untitled clip"),
    ` · ${duration(clip.duration_ms)} · ${clip.teaser ? "free teaser" : "for replay owners"} `,
    h("button", { type: "button", class: "secondary", onclick: () => clipAction(clip, "teaser") },
      clip.teaser ? "Make it for owners" : "Make it a free teaser"),
    h("button", { type: "button", class: "secondary", onclick: () => clipAction(clip, "delete") }, "Delete"),
    clip.teaser ? h("input", { readonly: true, class: "embed-code", "aria-label": "Embed code",
      value: `<iframe src="${location.origin}/embed/clip/${clip.id}" width="640" height="400" allowfullscreen></iframe>` })
      : null)));
}

$("clip-form").addEventListener("submit", cutClip);

/** A viewer's connection is poor above 5% loss (mean of its last receiver reports, which
 * are noisy one by one) or 300 ms round trip. */
const POOR_LOSS = 0.05;
const POOR_RTT_MS = 300;
const LOSS_SAMPLES = 5;
const lossHistory = new Map(); // viewer id -> its video's last fraction_lost readings

function meanLoss(id, fraction) {
  const history = lossHistory.get(id) || [];
  if (fraction !== null && fraction !== undefined) history.push(fraction);
  history.splice(0, Math.max(0, history.length - LOSS_SAMPLES));
  lossHistory.set(id, history);
  return history.length ? history.reduce((a, b) => a + b, 0) / history.length : null;
}

/** Each viewer's connection from its RTCP receiver reports, poorest first. */
function renderViewerQuality(viewers) {
  $("viewers-empty").hidden = viewers.length > 0;
  for (const id of lossHistory.keys()) if (!viewers.some((v) => v.id === id)) lossHistory.delete(id);
  const rows = viewers.map((v) => {
    const video = v.video || v.audio || {};
    const loss = meanLoss(v.id, video.fraction_lost);
    const poor = (loss ?? 0) > POOR_LOSS || (video.rtt_ms ?? 0) > POOR_RTT_MS;
    return { v, video, loss, poor };
  }).sort((a, b) => (b.loss ?? 0) - (a.loss ?? 0));
  $("viewer-quality").replaceChildren(...rows.map(({ v, video, loss, poor }) => h("li",
    { dataset: { viewer: v.id, poor: String(poor) }, class: poor ? "poor" : null },
    h("strong", {}, poor ? "Poor connection" : "Good"), " ", `viewer ${v.id}`,
    v.user_id ? ` (user ${v.user_id})` : "",
    ` · loss ${loss === null ? "—" : `${(loss * 100).toFixed(1)}%`}`,
    ` · round trip ${video.rtt_ms == null ? "—" : `${Math.round(video.rtt_ms)} ms`}`,
    ` · resent ${video.retransmitted ?? 0}`)));
}

function renderStats(stats) {
  $("stat-watching").textContent = String(stats.viewers ?? 0);
  const line = $("recording");
  const rec = stats.recording;
  if (!rec) {
    setStatus(line, "idle", stats.live ? "Recording: off for this broadcast." : "Recording: not live.");
  } else if (rec.status === "failed" || rec.error) {
    setStatus(line, "error", `Recording failed: ${rec.error || "unknown error"} (kept ${duration(rec.duration_ms)}). The broadcast goes on.`);
  } else if (rec.status === "recording") {
    setStatus(line, "live", `Recording ● ${duration(rec.duration_ms)} · ${megabytes(rec.bytes)}${rec.gaps ? ` · ${rec.gaps} gap(s)` : ""}`);
  } else {
    setStatus(line, "idle", `Recording ${rec.status}: ${duration(rec.duration_ms)} · ${megabytes(rec.bytes)}`);
  }
}

async function refreshEarnings() {
  clearTimeout(timers.earnings);
  if (!selected) return;
  try {
    const rows = (await api("/api/creator/earnings")).earnings.filter((r) => r.room === selected.slug);
    const orders = rows.reduce((n, r) => n + r.orders, 0);
    $("stat-revenue").textContent = rows.length
      ? `${rows.map((r) => formatMoney(r.earned, r.currency)).join(" + ")} (${orders} order${orders === 1 ? "" : "s"})`
      : "none yet";
  } catch (err) {
    $("stat-revenue").textContent = `unavailable (${describe(err)})`;
  }
  timers.earnings = setTimeout(refreshEarnings, EARNINGS_EVERY_MS);
}

let earningsSoon = null;
function refreshEarningsSoon() {
  clearTimeout(earningsSoon);
  earningsSoon = setTimeout(refreshEarnings, 1000);
}

// ===================================================================== broadcast
function setLive(on) {
  roomInput.disabled = on;
  keyInput.disabled = on;
  goLiveButton.disabled = on;
  stopButton.disabled = !on;
}

async function fillDevices() {
  try {
    const { cameras, microphones } = await broadcaster.devices();
    const fill = (select, devices, current, fallback) => {
      select.replaceChildren(...(devices.length ? devices : [{ deviceId: "", label: fallback }])
        .map((d) => h("option", { value: d.deviceId, selected: d.deviceId === current }, d.label)));
    };
    fill($("camera"), cameras, broadcaster.currentDevice("video"), "Default camera");
    fill($("microphone"), microphones, broadcaster.currentDevice("audio"), "Default microphone");
  } catch (err) {
    note($("quality"), `Devices unavailable: ${mediaError(err)}`, "error");
  }
}

for (const [id, kind, what] of [["camera", "video", "Camera"], ["microphone", "audio", "Microphone"]]) {
  $(id).addEventListener("change", async (event) => {
    try {
      await broadcaster.useDevice(kind, event.target.value);
      setStatusIfIdle(`${what} switched.`);
    } catch (err) {
      setStatus(statusLine, "error", `${what} not switched: ${mediaError(err)}`);
    }
  });
}

function setStatusIfIdle(text) {
  if (!broadcaster.live) setStatus(statusLine, "idle", text);
}

function watchConnection(session) {
  const pc = session.pc;
  const update = () => {
    if (broadcaster.session !== session) return;
    switch (pc.connectionState) {
      case "connected":
        setStatus(statusLine, "live", "live");
        break;
      case "disconnected":
        setStatus(statusLine, "connecting", "Connection interrupted, reconnecting…");
        break;
      case "failed":
        setStatus(statusLine, "error", "The connection to the server failed. You are not live.");
        endBroadcast();
        break;
    }
  };
  pc.addEventListener("connectionstatechange", update);
  update();
}

async function sampleQuality() {
  const q = await broadcaster.quality().catch(() => null);
  qualityLine.textContent = describeQuality(q);
  qualityLine.dataset.kbps = q && q.kbps !== null ? String(Math.round(q.kbps)) : "";
}

publishForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (broadcaster.live) return;
  if (!publishForm.reportValidity()) return;
  setLive(true);
  setStatus(statusLine, "connecting", "Connecting…");
  try {
    await broadcaster.open({ cameraId: $("camera").value, microphoneId: $("microphone").value });
    const room = roomInput.value.trim();
    const key = keyInput.value.trim();
    // A stream key (OBS-style), or else the logged-in creator's own publish token.
    withLogin = !key;
    const token = key || (await accessToken(room, "publish"));
    freshToken = withLogin ? token : null;
    const session = await broadcaster.goLive(`/whip/${encodeURIComponent(room)}`, token);
    liveRoom = room;
    watchConnection(session);
    timers.quality = setInterval(sampleQuality, 1000);
    if (withLogin) {
      timers.token = setInterval(async () => {
        freshToken = (await accessToken(room, "publish").catch(() => null)) || freshToken;
      }, TOKEN_REFRESH_MS);
    }
    pollStats();
  } catch (err) {
    setLive(false);
    setStatus(statusLine, "error", `Could not go live: ${mediaError(err)}`);
  }
});

/** Stop publishing: the WHIP DELETE that ends the broadcast, with a fresh token if needed. */
async function endBroadcast() {
  const room = liveRoom;
  clearInterval(timers.quality);
  clearInterval(timers.token);
  liveRoom = null;
  setLive(false);
  const token = withLogin && room ? await accessToken(room, "publish").catch(() => freshToken) : null;
  await broadcaster.stop({ token });
  qualityLine.textContent = describeQuality(null);
  qualityLine.dataset.kbps = "";
  pollStats();
}

stopButton.addEventListener("click", async () => {
  stopButton.disabled = true;
  await endBroadcast();
  setStatus(statusLine, "stopped", "Stopped. You are not live.");
});

shareButton.addEventListener("click", async () => {
  try {
    if (broadcaster.screen) await broadcaster.stopScreenShare();
    else await broadcaster.startScreenShare();
  } catch (err) {
    setStatus(statusLine, broadcaster.live ? "live" : "error", broadcaster.live ? "live" : `Screen not shared: ${mediaError(err)}`);
    if (broadcaster.live) qualityLine.textContent = `Screen not shared: ${mediaError(err)}`;
  }
  renderShare();
});
broadcaster.onScreenEnded = renderShare;

function renderShare() {
  const sharing = !!broadcaster.screen;
  shareButton.textContent = sharing ? "Stop sharing" : "Share screen";
  shareButton.setAttribute("aria-pressed", String(sharing));
  $("preview").setAttribute("aria-label", sharing ? "Screen preview" : "Camera preview");
}

// Leave the room cleanly when the tab closes or navigates away.
addEventListener("pagehide", () => {
  if (broadcaster.live) broadcaster.stop({ keepalive: true, token: freshToken });
});

broadcaster.open()
  .then(fillDevices)
  .catch((err) => setStatus(statusLine, "error", `Camera preview unavailable: ${mediaError(err)}`));
start().catch((err) => setStatus(statusLine, "error", `The studio could not start: ${describe(err)}`));
