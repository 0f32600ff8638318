// Likes, the raised hand and the viewer count.
import { $, ack, showError, state } from "./room-context.js";
import { errorText, plural, t } from "./i18n.js";

export function showLikes(total) {
  state.likes = Math.max(state.likes, total);
  $("likes").textContent = plural("room.likes", state.likes);
}

async function like() {
  const res = await ack("like", { count: 1 });
  if (res.ok) showLikes(res.total);
  else showError($("danmaku-error"), errorText(res.error.code, res.error.message));
}

export function showHand(raised) {
  state.handRaised = raised;
  const button = $("hand");
  button.setAttribute("aria-pressed", String(raised));
  button.textContent = raised ? t("room.lower_hand") : t("room.raise_hand");
}

async function toggleHand() {
  const res = await ack(state.handRaised ? "hand:lower" : "hand:raise");
  if (res.ok) showHand(Boolean(res.raised));
  else showError($("danmaku-error"), errorText(res.error.code, res.error.message));
}

export function showPresence(viewers) {
  $("viewers").textContent = plural("room.watching", viewers);
}

export function wireReactions() {
  $("like").addEventListener("click", like);
  $("hand").addEventListener("click", toggleHand);
}
