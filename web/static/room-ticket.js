// The room's about box and buying its ticket (one idempotency key per purchase attempt).
import { $, clearError, el, newKey, showError, slug, state } from "./room-context.js";
import { api, formatMoney, h } from "./ui.js";
import { formatDateTime, formatDuration, t } from "./i18n.js";

export function renderAbout() {
  const room = state.room;
  document.title = `${room.title} — Stagepass`;
  el.title.textContent = room.title;
  $("description").textContent = room.description || "";
  $("tags").textContent = room.tags.map((t) => `#${t}`).join(" ");
  $("creator-link").href = `/static/creator.html?id=${encodeURIComponent(room.creator_id)}`;
  if (room.starts_at) {
    el.schedule.hidden = false;
    el.schedule.replaceChildren(t("room.scheduled_for"), h("time", { datetime: room.starts_at },
      formatDateTime(room.starts_at, { dateStyle: "full", timeStyle: "short" })));
  }
  const price = room.free ? t("room.free_for_all") : t("room.ticket_price", { price: formatMoney(room.ticket_price, room.currency) });
  const replay = room.replay_included ? t("room.replay_included")
    : room.replay_price != null ? t("room.replay_price", { price: formatMoney(room.replay_price, room.currency) }) : "";
  $("price-info").textContent = price + replay;
  if (room.preview_seconds > 0 && !room.free) {
    $("preview-info").hidden = false;
    $("preview-info").textContent = t("room.preview_info", { duration: formatDuration(room.preview_seconds) });
  }
  el.buyButton.textContent = room.free ? t("common.free") : t("room.buy_ticket_price", { price: formatMoney(room.ticket_price, room.currency) });
}

export function showBuy(reason) {
  el.buy.hidden = false;
  $("test-mode").hidden = !state.testMode;
  const loggedIn = Boolean(state.user);
  el.loginNeeded.hidden = loggedIn;
  el.buyForm.hidden = !loggedIn;
  el.loginToBuy.href = `/static/login.html?next=${encodeURIComponent(location.pathname + location.search)}`;
  el.previewButton.hidden = !(loggedIn && state.room.preview_seconds > 0 && reason !== "preview-over");
  el.previewButton.textContent = t("room.watch_preview_duration", { duration: formatDuration(state.room.preview_seconds) });
}

let attempt = null; // {key, coupon}: one idempotency key per purchase attempt

async function buyTicket(event) {
  event.preventDefault();
  clearError(el.buyError);
  const coupon = el.coupon.value.trim().toUpperCase();
  if (!attempt || attempt.coupon !== coupon) attempt = { key: newKey(), coupon };
  el.buyButton.disabled = true;
  try {
    const body = { room: slug, product: "ticket", idempotency_key: attempt.key };
    if (coupon) body.coupon = coupon;
    const { order } = await api("/api/orders", { method: "POST", body });
    if (order.status === "paid") { // fully discounted: nothing to pay
      location.assign(`/static/room.html?room=${encodeURIComponent(slug)}&order=${encodeURIComponent(order.id)}`);
    } else if (order.checkout_url) {
      location.assign(order.checkout_url); // the dev checkout (or Stripe) comes back to this page
    } else {
      throw new Error(`the order is ${order.status}`);
    }
  } catch (err) {
    if (err.status) attempt = null; // refused: the next try is a new attempt
    showError(el.buyError, err);
    el.buyButton.disabled = false;
  }
}

export function wireTicket() {
  el.buyForm.addEventListener("submit", buyTicket);
  el.coupon.addEventListener("input", () => clearError(el.buyError));
}
