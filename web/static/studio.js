// The creator's studio: my rooms (create/edit), broadcasting from the browser (WHIP),
// the OBS settings, and the live panels (studio-live.js). `studio.html?room=<slug>`
// selects a room. Without a login, publishing with a stream key still works.
import { api, currencyDigits, describe, formatMoney, fromMinor, h, param, parseMinor, setStatus, siteHeader } from "./ui.js";
import { accessToken } from "./whip.js";
import { Broadcaster, describeQuality } from "./studio-broadcast.js";
import { LivePanels } from "./studio-live.js";
import { CoursesPanel, PlansForm, SalesPanel } from "./studio-sales.js";
import { formatDateTime, plural, t } from "./i18n.js";

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
let sales = null; // SalesPanel of the selected room
let courses = null; // CoursesPanel of the creator
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
  if (err && err.name === "NotAllowedError") return t("studio.media_denied");
  if (err && err.name === "NotFoundError") return t("studio.media_missing");
  if (err && err.name === "NotReadableError") return t("studio.media_busy");
  return describe(err);
}

function note(el, text, state = "ok") {
  el.dataset.state = state;
  el.textContent = text;
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
    $("key-hint").textContent = t("studio.key_hint_viewer");
  }
  if (!user) {
    const next = encodeURIComponent(location.pathname + location.search);
    accountNote.replaceChildren(
      h("a", { href: `/static/login.html?next=${next}`, id: "studio-login" }, t("studio.log_in_as_creator")),
      t("studio.log_in_to_manage"), t("studio.publish_with_key"));
    accountNote.hidden = false;
  } else if (user.role !== "creator" && user.role !== "admin") {
    accountNote.replaceChildren(
      t("studio.for_creators"), h("strong", {}, user.display_name || user.email),
      t("studio.viewer_account"), h("a", { href: "/" }, t("studio.catalog")), t("studio.or_publish_with_key"));
    accountNote.dataset.state = "error";
    accountNote.hidden = false;
  } else {
    $("rooms-panel").hidden = false;
    $("plans-panel").hidden = false;
    $("courses-panel").hidden = false;
    new PlansForm(user.id).load();
    courses = new CoursesPanel(user.id, () => myRooms);
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
    note($("room-form-error"), t("studio.rooms_not_loaded", { error: describe(err) }), "error");
  }
  renderRooms();
  if (courses) courses.load();
}

function renderRooms() {
  $("rooms-empty").hidden = myRooms.length > 0;
  $("room-list").replaceChildren(...myRooms.map((room) => {
    const price = room.free ? t("common.free") : formatMoney(room.ticket_price, room.currency);
    const current = selected && selected.slug === room.slug;
    return h("li", { dataset: { room: room.slug } },
      h("a", { href: `/static/studio.html?room=${encodeURIComponent(room.slug)}`, "aria-current": current ? "page" : false,
        onclick: (event) => {
          if (event.metaKey || event.ctrlKey || event.shiftKey) return; // new tab: let the browser do it
          event.preventDefault();
          if (selectRoom(room.slug)) history.pushState(null, "", `?room=${encodeURIComponent(room.slug)}`);
        } }, h("strong", {}, room.title), " ", h("span", { class: "hint" }, room.slug)),
      " ", h("span", { class: "badge" }, price),
      room.starts_at ? h("span", { class: "hint" }, ` · ${formatDateTime(room.starts_at)}`) : null);
  }));
}

/** Select one of my rooms (or a room typed by hand); false if a broadcast is running elsewhere. */
function selectRoom(slug) {
  if (broadcaster.live && liveRoom !== slug) {
    note($("account-note"), t("studio.stop_before_switching", { room: liveRoom }), "error");
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
  document.title = room ? t("studio.page_title", { title: room.title }) : t("studio.stagepass_studio");
  renderRooms();
  if (user && (user.role === "creator" || user.role === "admin") && !room) {
    note($("account-note"), t("studio.not_your_room", { slug }), "error");
    $("account-note").hidden = false;
  } else if (room) {
    $("account-note").hidden = true;
  }
  fillRoomForm(room);
  if (sales) sales.close();
  sales = room ? new SalesPanel(room) : null;
  if (sales) sales.load();
  $("obs-panel").hidden = !room;
  $("sales-panel").hidden = !room;
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

function toMinor(text, currency, name, label) {
  const minor = parseMinor(text, currency);
  if (minor === null) {
    const digits = currencyDigits(currency);
    throw new FieldError(name, t("studio.number_like", { label, example: digits ? "9." + "9".repeat(digits) : "990", currency }));
  }
  return minor;
}

function integer(text) {
  const n = Number(text);
  return text.trim() !== "" && Number.isInteger(n) ? n : text; // let the server explain what is wrong
}

function fillRoomForm(room) {
  $("room-form").dataset.mode = room ? "edit" : "create";
  $("room-form-title").textContent = room ? t("studio.edit_room", { title: room.title }) : t("studio.create_a_room");
  $("room-save").textContent = room ? t("studio.save_changes") : t("studio.create_room");
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
    if (Number.isNaN(d.getTime())) throw new FieldError("starts_at", t("studio.starts_at_invalid"));
    body.starts_at = d.toISOString();
  } else if (!creating) {
    body.starts_at = null;
  }
  body.currency = currency;
  body.ticket_price = toMinor(field("ticket_price").value || "0", currency, "ticket_price", t("studio.ticket_price"));
  const replay = field("replay_price").value.trim();
  body.replay_price = replay ? toMinor(replay, currency, "replay_price", t("studio.replay_price")) : null;
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
  note($("room-form-error"), err.field ? err.message : t("studio.not_saved", { error: describe(err) }), "error");
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
      note($("obs-status"), t("studio.room_created", { title: room.title }));
      goLiveButton.focus();
    } else {
      const { room } = await api(`/api/rooms/${encodeURIComponent(selected.slug)}`, { method: "PATCH", body });
      myRooms = myRooms.map((r) => (r.slug === room.slug ? room : r));
      selected = room;
      renderRooms();
      fillRoomForm(room);
      $("room-heading").textContent = `· ${room.title}`;
      note($("room-form-error"), t("studio.saved"));
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
    note($("obs-status"), t("studio.key_not_loaded", { error: describe(err) }), "error");
  }
}

async function copy(text, what) {
  try {
    await navigator.clipboard.writeText(text);
    note($("obs-status"), t("studio.copied", { what }));
  } catch {
    note($("obs-status"), t("studio.copy_blocked", { what }), "error");
  }
}

$("copy-url").addEventListener("click", () => copy($("whip-url").value, "WHIP URL"));
$("copy-key").addEventListener("click", () => copy($("stream-key").value, t("studio.stream_key")));
$("reveal-key").addEventListener("click", () => {
  const keyField = $("stream-key");
  const show = keyField.type === "password";
  keyField.type = show ? "text" : "password";
  $("reveal-key").textContent = show ? t("studio.hide") : t("studio.show");
  $("reveal-key").setAttribute("aria-pressed", String(show));
});
$("rotate-key").addEventListener("click", async () => {
  if (!selected) return;
  const ok = confirm(t("studio.rotate_confirm"));
  if (!ok) return;
  try {
    const { stream_key: key } = await api(`/api/rooms/${encodeURIComponent(selected.slug)}/stream-key`, { method: "POST" });
    $("stream-key").value = key;
    note($("obs-status"), t("studio.key_rotated"));
  } catch (err) {
    note($("obs-status"), t("studio.key_not_rotated", { error: describe(err) }), "error");
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
    button.textContent = t("studio.retrying");
  } catch (err) {
    button.disabled = false;
    button.textContent = t("studio.retry_upload_error", { error: err.message });
  }
}

/** The room's recordings as the creator sees them: recording, processing (percent), uploading
 * (object storage), ready, failed, upload failed (with a retry button). */
function renderReplays(recordings) {
  renderClipChoices(recordings.filter((rec) => rec.status === "ready"));
  $("replays-empty").hidden = recordings.length > 0;
  $("replay-list").replaceChildren(...recordings.map((rec) => {
    const when = new Date(rec.started_at).toLocaleString();
    const state = rec.status === "ready" ? h("a", { href: rec.replay_url }, t("room.watch_the_replay"))
      : rec.status === "processing" ? t("studio.processing", { progress: rec.progress })
        : rec.status === "failed" ? h("span", { class: "error" }, t("studio.failed", { error: rec.error || t("studio.unknown_error") }))
          : rec.status === "packaged" || rec.status === "uploading" ? t("studio.uploading")
            : rec.status === "upload_failed" ? h("span", {},
              h("span", { class: "error" }, t("studio.upload_failed", { error: rec.error || t("studio.unknown_error") })),
              h("button", { type: "button", onclick: (event) => retryUpload(rec.id, event.target) }, t("studio.retry_upload")))
              : rec.status;
    return h("li", { dataset: { recording: rec.id, status: rec.status } },
      `${when} · ${duration(rec.duration_ms)} · `, state,
      rec.status === "ready" && rec.error ? h("span", { class: "hint" }, t("studio.stopped_early", { error: rec.error })) : null);
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
    `${formatDateTime(rec.started_at)} · ${duration(rec.duration_ms)}`)));
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
  setStatus(status, "working", t("studio.cutting"));
  try {
    const clip = await api(`/api/recordings/${encodeURIComponent($("clip-recording").value)}/clips`,
                           { method: "POST", body });
    setStatus(status, "done", clip.reencoded_ms ? t("studio.clip_reencoded", { seconds: (clip.reencoded_ms / 1000).toFixed(1) })
      : t("studio.clip_copied"));
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
    h("a", { href: clip.page_url }, clip.title || t("studio.untitled_clip")),
    ` · ${duration(clip.duration_ms)} · ${clip.teaser ? t("studio.free_teaser") : t("studio.for_owners")} `,
    h("button", { type: "button", class: "secondary", onclick: () => clipAction(clip, "teaser") },
      clip.teaser ? t("studio.make_for_owners") : t("studio.make_teaser")),
    h("button", { type: "button", class: "secondary", onclick: () => clipAction(clip, "delete") }, t("studio.delete")),
    clip.teaser ? h("input", { readonly: true, class: "embed-code", "aria-label": t("studio.embed_code"),
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
    h("strong", {}, poor ? t("studio.poor_connection") : t("studio.good")), " ", t("studio.viewer_id", { id: v.id }),
    v.user_id ? t("studio.user_id", { id: v.user_id }) : "",
    t("studio.loss", { loss: loss === null ? "—" : `${(loss * 100).toFixed(1)}%` }),
    t("studio.rtt", { rtt: video.rtt_ms == null ? "—" : `${Math.round(video.rtt_ms)} ms` }),
    t("studio.resent", { n: video.retransmitted ?? 0 }))));
}

function renderStats(stats) {
  $("stat-watching").textContent = String(stats.viewers ?? 0);
  const line = $("recording");
  const rec = stats.recording;
  if (!rec) {
    setStatus(line, "idle", stats.live ? t("studio.recording_off") : t("studio.recording_not_live"));
  } else if (rec.status === "failed" || rec.error) {
    setStatus(line, "error", t("studio.recording_failed", { error: rec.error || t("studio.unknown_error"), kept: duration(rec.duration_ms) }));
  } else if (rec.status === "recording") {
    setStatus(line, "live", t("studio.recording", { duration: duration(rec.duration_ms), size: megabytes(rec.bytes), gaps: rec.gaps ? t("studio.gaps", { n: rec.gaps }) : "" }));
  } else {
    setStatus(line, "idle", t("studio.recording_status", { status: rec.status, duration: duration(rec.duration_ms), size: megabytes(rec.bytes) }));
  }
}

async function refreshEarnings() {
  clearTimeout(timers.earnings);
  if (!selected) return;
  try {
    const rows = (await api("/api/creator/earnings")).earnings.filter((r) => r.room === selected.slug);
    const orders = rows.reduce((n, r) => n + r.orders, 0);
    $("stat-revenue").textContent = rows.length
      ? `${rows.map((r) => formatMoney(r.earned, r.currency)).join(" + ")} (${plural("studio.orders", orders)})`
      : t("studio.none_yet");
  } catch (err) {
    $("stat-revenue").textContent = t("studio.unavailable", { error: describe(err) });
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
    fill($("camera"), cameras, broadcaster.currentDevice("video"), t("studio.default_camera"));
    fill($("microphone"), microphones, broadcaster.currentDevice("audio"), t("studio.default_microphone"));
  } catch (err) {
    note($("quality"), t("studio.devices_unavailable", { error: mediaError(err) }), "error");
  }
}

for (const [id, kind, what] of [["camera", "video", t("studio.camera")], ["microphone", "audio", t("studio.microphone")]]) {
  $(id).addEventListener("change", async (event) => {
    try {
      await broadcaster.useDevice(kind, event.target.value);
      setStatusIfIdle(t("studio.switched", { what }));
    } catch (err) {
      setStatus(statusLine, "error", t("studio.not_switched", { what, error: mediaError(err) }));
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
        setStatus(statusLine, "live", t("studio.live_status"));
        break;
      case "disconnected":
        setStatus(statusLine, "connecting", t("watch.reconnecting"));
        break;
      case "failed":
        setStatus(statusLine, "error", t("studio.connection_failed"));
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
  setStatus(statusLine, "connecting", t("watch.connecting"));
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
    setStatus(statusLine, "error", t("studio.could_not_go_live", { error: mediaError(err) }));
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
  setStatus(statusLine, "stopped", t("studio.stopped"));
});

shareButton.addEventListener("click", async () => {
  try {
    if (broadcaster.screen) await broadcaster.stopScreenShare();
    else await broadcaster.startScreenShare();
  } catch (err) {
    setStatus(statusLine, broadcaster.live ? "live" : "error", broadcaster.live ? t("studio.live_status") : t("studio.screen_not_shared", { error: mediaError(err) }));
    if (broadcaster.live) qualityLine.textContent = t("studio.screen_not_shared", { error: mediaError(err) });
  }
  renderShare();
});
broadcaster.onScreenEnded = renderShare;

function renderShare() {
  const sharing = !!broadcaster.screen;
  shareButton.textContent = sharing ? t("studio.stop_sharing") : t("studio.share_screen");
  shareButton.setAttribute("aria-pressed", String(sharing));
  $("preview").setAttribute("aria-label", sharing ? t("studio.screen_preview") : t("studio.camera_preview"));
}

// Leave the room cleanly when the tab closes or navigates away.
addEventListener("pagehide", () => {
  if (broadcaster.live) broadcaster.stop({ keepalive: true, token: freshToken });
});

broadcaster.open()
  .then(fillDevices)
  .catch((err) => setStatus(statusLine, "error", t("studio.preview_unavailable", { error: mediaError(err) })));
start().catch((err) => setStatus(statusLine, "error", t("studio.could_not_start", { error: describe(err) })));
