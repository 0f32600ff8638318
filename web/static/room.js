// The viewer's room page: about/price/buy without a ticket; with one (or a free room, the
// creator, a free preview) the live player over WHEP with a danmaku overlay (the `danmaku`
// package, DOM engine), and Q&A, tips, likes, polls, hand-raise and presence over Socket.IO
// (docs/protocol.md). Every text from users goes in as text (ui.h / textContent).
//
// The status line's data-state says where the viewer is: loading, needs-login,
// needs-ticket, idle (not live yet), connecting, playing, reconnecting (the creator's
// connection dropped), ended (replay processing / ready), seat-taken (the ticket is in
// use on another device), preview-over, refunded, error.
//
// One module per part: room-context (elements, state, helpers), room-ticket (about, buy),
// room-orders (orders paid during the class), room-player (WHEP player, phase, replay
// link), room-socket (Socket.IO events), room-danmaku, room-questions, room-polls,
// room-tips, room-reactions (likes, hand, presence). This one starts the page.
import { el, hasTicket, showError, slug, state, status } from "./room-context.js";
import { setupOverlay, wireDanmaku } from "./room-danmaku.js";
import { orderFromUrl, wireOrders } from "./room-orders.js";
import { findReplay, pollRoom, previewTick, showActions, showPhase } from "./room-player.js";
import { wireQuestions } from "./room-questions.js";
import { wireReactions } from "./room-reactions.js";
import { connectSocket } from "./room-socket.js";
import { loadReviews } from "./room-reviews.js";
import { renderAbout, showBuy, wireTicket } from "./room-ticket.js";
import { wireTips } from "./room-tips.js";
import { api, describe, param, siteHeader } from "./ui.js";
import { mountComments } from "./comments.js";
import { showTeasers } from "./teasers.js";
import { suggest, visited } from "./insight.js";
import { mountWatermark } from "./watermark.js";
import { t } from "./i18n.js";

const STATUS_POLL_MS = 2000;

/** With a ticket (or free room, creator, preview): the player and the interaction panels. */
async function enterLive({ preview = false } = {}) {
  if (preview) {
    const minted = await api(`/api/rooms/${encodeURIComponent(slug)}/tokens`, { method: "POST", body: { scope: "view" } });
    state.previewUntil = minted.preview_until;
  }
  el.buy.hidden = !preview;
  el.previewButton.hidden = true;
  el.stage.hidden = false;
  if (state.watermark) mountWatermark(el.stage, state.watermark.label, el.video);
  el.controls.hidden = false;
  el.side.hidden = false;
  setupOverlay();
  connectSocket();
  await pollRoom();
  setInterval(pollRoom, STATUS_POLL_MS);
  setInterval(() => { if (state.phase === "idle") showPhase(); previewTick(); }, 1000);
}

function wire() {
  wireTicket();
  wireOrders();
  wireDanmaku();
  wireQuestions();
  wireTips();
  wireReactions();
  el.previewButton.addEventListener("click", async () => {
    el.previewButton.disabled = true;
    try {
      await enterLive({ preview: true });
    } catch (err) {
      showError(el.buyError, err);
      el.previewButton.disabled = false;
    }
  });
  el.takeSeat.addEventListener("click", () => location.reload());
  el.reconnect.addEventListener("click", () => {
    state.stopped = false;
    showActions();
    pollRoom();
  });
  el.video.addEventListener("resize", showPhase);
  el.video.addEventListener("playing", showPhase);
  addEventListener("pagehide", () => { if (state.session) state.session.stop({ keepalive: true }); });
}

async function main() {
  wire();
  state.user = await siteHeader();
  if (!/^[a-z0-9][a-z0-9_-]{0,63}$/.test(slug)) {
    status("error", t("room.no_such_room"));
    return;
  }
  let body;
  try {
    body = await api(`/api/catalog/${encodeURIComponent(slug)}`);
  } catch (err) {
    status("error", err.status === 404 ? t("room.no_such_room") : t("room.could_not_load", { error: describe(err) }));
    return;
  }
  state.room = body.room;
  visited("room", state.room.slug);
  suggest("also-bought", `/api/recommendations/also-bought/${encodeURIComponent(state.room.slug)}`);
  state.owned = body.owned || [];
  state.watermark = body.watermark || null;
  state.testMode = body.test_mode === true;
  renderAbout();
  loadReviews();
  showTeasers(document.getElementById("teasers"), document.getElementById("teaser-list"), slug);
  mountComments(document.getElementById("comments"), { room: slug }).catch((err) => console.warn("comments", describe(err)));
  if (param("popup") === "1") { // the checkout popup came back here: nothing to watch in it
    status("ready", t("room.payment_done"));
    if (window.opener) setTimeout(() => window.close(), 500);
    return;
  }
  await orderFromUrl();
  if (!state.user) {
    status("needs-login", t("room.log_in_to_watch"));
    showBuy();
    findReplay();
    return;
  }
  if (!hasTicket()) {
    status("needs-ticket", t("room.ticket_needed"));
    showBuy();
    findReplay();
    return;
  }
  await enterLive();
}

main().catch((err) => status("error", describe(err)));
