// The room's Socket.IO connection (docs/protocol.md): its events go to the parts of the
// page they concern; being kicked (seat taken, preview over, refund) ends the live part.
import { $, clearError, showError, slug, state } from "./room-context.js";
import { deleteDanmaku, receiveDanmaku, recentDanmaku } from "./room-danmaku.js";
import { settlePending } from "./room-orders.js";
import { previewOver, refunded, seatTaken } from "./room-player.js";
import { upsertPoll } from "./room-polls.js";
import { deleteQuestion, setQuestions, upsertQuestion } from "./room-questions.js";
import { showHand, showLikes, showPresence } from "./room-reactions.js";
import { addTip } from "./room-tips.js";
import { accessToken } from "./whip.js";
import { errorText, formatTime, t } from "./i18n.js";

/** The door's refusals of a chat connection that trying again cannot change (docs/protocol.md). */
const FINAL_CHAT_REFUSALS = new Set(["banned", "wrong_scope", "ticket_required", "preview_over", "unknown_user"]);

export function connectSocket() {
  const socket = window.io({
    path: "/socket.io",
    transports: ["websocket"],
    auth: (cb) => accessToken(slug, "view").then((token) => cb({ room: slug, token }), () => cb({ room: slug, token: "" })),
  });
  state.socket = socket;
  socket.on("connect", () => {
    clearError($("danmaku-error"));
    settlePending();
  });
  socket.on("connect_error", (err) => {
    const data = err.data || {};
    showError($("danmaku-error"), t("room.chat_error", { error: errorText(data.code, data.message || err.message) }));
    if (FINAL_CHAT_REFUSALS.has(data.code)) socket.disconnect();
  });
  socket.on("kicked", (data) => {
    state.kicked = data;
    if (data.code === "seat_taken") seatTaken();
    else if (data.code === "preview_over") previewOver();
    else if (data.code === "refunded") refunded();
    else showError($("danmaku-error"), errorText(data.code, data.message));
  });
  socket.on("danmaku", ({ items }) => receiveDanmaku(items));
  socket.on("danmaku:recent", ({ items }) => recentDanmaku(items));
  socket.on("deleted", ({ kind, id }) => (kind === "question" ? deleteQuestion(id) : deleteDanmaku(id)));
  socket.on("questions", ({ items }) => setQuestions(items));
  socket.on("question", upsertQuestion);
  socket.on("poll", upsertPoll);
  socket.on("likes", ({ total }) => showLikes(total));
  socket.on("presence", ({ viewers }) => showPresence(viewers));
  socket.on("tip", addTip);
  socket.on("hand", ({ raised }) => showHand(raised));
  socket.on("muted", ({ user, until }) => {
    if (state.user && user === state.user.id) showError($("danmaku-error"), t("room.muted_until", { time: formatTime(until) }));
  });
  socket.on("slow_mode", ({ seconds }) => {
    $("danmaku-text").placeholder = seconds ? t("room.slow_mode", { seconds }) : t("room.say_something_on_screen");
  });
}
