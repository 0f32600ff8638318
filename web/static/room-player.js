// The live player (WHEP) and the room's phase: polling the room, the status line, the
// replay link once the class ended, and the ways the live part ends for this page (seat
// taken on another device, refund, free preview over).
import { countdown, el, hasTicket, slug, state, status } from "./room-context.js";
import { followRendition } from "./rendition.js";
import { showBuy } from "./room-ticket.js";
import { api, describe } from "./ui.js";
import { accessToken, play } from "./whip.js";
import { t } from "./i18n.js";

const KICK_GRACE_MS = 2000;

/** Play the room over WHEP, unless a player is on or connecting, or the page stopped it.
 * stopPlayer() while this connects aborts it: play() then closes its peer connection and
 * deletes a session the server made meanwhile, and the stop has said what the page shows. */
export async function startPlayer() {
  if (state.session || state.seatTaken || state.stopped || state.starting) return;
  const starting = new AbortController();
  state.starting = starting;
  status("connecting", t("room.connecting"));
  try {
    const token = accessToken(slug, "view"); // awaited by play() at its POST, after the offer
    const session = await play(`/whep/${encodeURIComponent(slug)}`, el.video, { token, signal: starting.signal });
    if (starting.signal.aborted) return void session.stop(); // stopped in the moment play() resolved
    state.session = session;
    watchSession(session);
    // every 6 s: a room's viewers all ask, so a switch shows a few seconds late rather
    // than each viewer costing the media server a request every 2 s
    followRendition(session, el.rendition, () => state.session === session, 6000);
  } catch (err) {
    if (starting.signal.aborted) return; // stopped while connecting: no news for the viewer
    if (err.status === 402 || err.status === 403) return previewOver(err);
    status("error", t("room.could_not_play", { error: describe(err) }));
    showActions({ reconnect: true });
    state.stopped = true;
  } finally {
    if (state.starting === starting) state.starting = null;
  }
}

function watchSession(session) {
  const pc = session.pc;
  const update = () => {
    if (state.session !== session) return;
    if (pc.connectionState === "failed" || pc.connectionState === "closed") sessionEnded(session);
    else showPhase();
  };
  pc.addEventListener("connectionstatechange", update);
  pc.addEventListener("iceconnectionstatechange", () => {
    if (pc.iceConnectionState === "closed" || pc.iceConnectionState === "failed") update();
  });
}

/** End the player: the session playing, or the one being connected. */
function stopPlayer() {
  if (state.starting) state.starting.abort();
  state.starting = null;
  const session = state.session;
  state.session = null;
  if (session) session.stop();
  el.video.srcObject = null;
}

/** The server ended our WHEP session: the seat went to another device, the preview ended,
 * a refund, or the network. The Socket.IO `kicked` event tells which (it may come a
 * moment later than the WebRTC close). */
async function sessionEnded(session) {
  if (state.session !== session) return;
  state.session = null;
  session.stop();
  el.video.srcObject = null;
  const deadline = Date.now() + KICK_GRACE_MS;
  while (!state.kicked && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (state.seatTaken || state.stopped) return;
  if (state.previewUntil && Date.now() / 1000 >= state.previewUntil - 1) return previewOver();
  state.stopped = true;
  status("error", t("room.video_stopped"));
  showActions({ reconnect: true });
}

export function refunded() {
  state.stopped = true;
  state.owned = state.owned.filter((kind) => kind !== "ticket");
  stopPlayer();
  if (state.socket) state.socket.disconnect();
  leaveLive();
  status("refunded", t("room.refunded"));
  showBuy();
}

export async function seatTaken() {
  if (state.seatTaken) return;
  state.seatTaken = true;
  stopPlayer();
  if (state.socket) state.socket.disconnect();
  // An older server says seat_taken for a refund too: check what we own now.
  try {
    const body = await api(`/api/catalog/${encodeURIComponent(slug)}`);
    state.owned = body.owned || [];
  } catch {
    /* keep what we knew */
  }
  leaveLive();
  if (!hasTicket() && !state.previewUntil) {
    status("refunded", t("room.refunded"));
    showBuy();
    return;
  }
  status("seat-taken", t("room.seat_taken"));
  showActions({ takeSeat: true });
  el.takeSeat.focus();
}

export function previewOver(err) {
  if (state.stopped && el.status.dataset.state === "preview-over") return;
  state.stopped = true;
  stopPlayer();
  if (state.socket) state.socket.disconnect();
  status("preview-over", err && err.status === 403 && hasTicket() ? describe(err) : t("room.preview_over"));
  el.previewLeft.hidden = true;
  leaveLive();
  showBuy("preview-over");
}

/** The live part is over for this page (seat taken, refund, preview over): hide it and
 * bring the status line and its action into view. */
function leaveLive() {
  el.stage.hidden = true;
  el.controls.hidden = true;
  el.side.hidden = true;
  el.status.scrollIntoView({ block: "nearest" });
}

export function showActions({ takeSeat = false, reconnect = false } = {}) {
  el.takeSeat.hidden = !takeSeat;
  el.reconnect.hidden = !reconnect;
  el.actions.hidden = !(takeSeat || reconnect || !el.replayLink.hidden);
}

function playing() {
  return state.session && el.video.videoWidth > 0 && state.session.pc.connectionState === "connected";
}

/** Put the status line in line with the room's phase and our player. */
export function showPhase() {
  if (state.seatTaken || state.stopped) return;
  switch (state.phase) {
    case "live":
      if (playing()) status("playing", t("room.live"));
      else status("connecting", t("room.connecting"));
      break;
    case "reconnecting":
      status("reconnecting", t("room.creator_reconnecting"));
      break;
    case "ended":
      status("ended", state.recording ? t("room.ended_replay_ready") : t("room.ended_replay_processing"));
      break;
    default: {
      const left = state.room.starts_at && countdown(state.room.starts_at);
      status("idle", left ? t("room.starts_in", { left }) : t("room.not_live_yet"));
    }
  }
}

export async function findReplay() {
  try {
    const { recordings } = await api(`/api/recordings?room=${encodeURIComponent(slug)}`);
    // the replay of the broadcast that just ended, else the newest ready one
    const wanted = state.endedBroadcast;
    const ready = (recordings || []).find((r) => r.status === "ready" && (!wanted || r.id === wanted));
    state.recording = ready || null;
  } catch {
    state.recording = null; // no recordings API on this server (404), or not allowed
  }
  el.replayLink.hidden = !state.recording;
  if (state.recording) {
    el.replayLink.href = state.recording.replay_url || `/static/replay.html?recording=${encodeURIComponent(state.recording.id)}`;
    el.actions.hidden = false;
  }
}

let lastReplayCheck = 0;

export async function pollRoom() {
  if (state.seatTaken || state.stopped) return;
  try {
    const stats = await api(`/api/rooms/${encodeURIComponent(slug)}`);
    const phase = stats.phase || (stats.live ? "live" : "idle");
    state.endedBroadcast = stats.ended_broadcast || null;
    const changed = phase !== state.phase;
    state.phase = phase;
    if (phase === "live" || phase === "reconnecting") startPlayer();
    if (phase === "ended" || phase === "idle") stopPlayer();
    // while the replay of the broadcast that just ended is being prepared, look often
    const every = phase === "ended" && !state.recording ? 3000 : 15000;
    if ((changed && phase === "ended") || (phase !== "live" && Date.now() - lastReplayCheck > every)) {
      lastReplayCheck = Date.now();
      await findReplay();
    }
  } catch (err) {
    if (!state.session) status("error", t("room.server_unreachable", { error: describe(err) }));
    return;
  }
  showPhase();
}

export function previewTick() {
  if (!state.previewUntil || state.stopped || state.seatTaken) return;
  const left = Math.max(0, Math.ceil(state.previewUntil - Date.now() / 1000));
  el.previewLeft.hidden = false;
  el.previewLeft.textContent = t("room.preview_left", { left: `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}` });
}
