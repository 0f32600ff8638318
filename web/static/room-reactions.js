// Likes, the raised hand and the viewer count.
import { $, ack, showError, state } from "./room-context.js";

export function showLikes(total) {
  state.likes = Math.max(state.likes, total);
  $("likes").textContent = `${state.likes} like${state.likes === 1 ? "" : "s"}`;
}

async function like() {
  const res = await ack("like", { count: 1 });
  if (res.ok) showLikes(res.total);
  else showError($("danmaku-error"), res.error.message);
}

export function showHand(raised) {
  state.handRaised = raised;
  const button = $("hand");
  button.setAttribute("aria-pressed", String(raised));
  button.textContent = raised ? "Lower hand" : "Raise hand";
}

async function toggleHand() {
  const res = await ack(state.handRaised ? "hand:lower" : "hand:raise");
  if (res.ok) showHand(Boolean(res.raised));
  else showError($("danmaku-error"), res.error.message);
}

export function showPresence(viewers) {
  $("viewers").textContent = `${viewers} watching`;
}

export function wireReactions() {
  $("like").addEventListener("click", like);
  $("hand").addEventListener("click", toggleHand);
}
