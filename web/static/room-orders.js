// Orders paid during the live class (tips, paid questions): the checkout opens in a popup,
// and once an order is paid the part that made it announces it over Socket.IO
// (whenPaid). Coming back from a checkout with ?order= says what happened.
import { el, showError, slug, state } from "./room-context.js";
import { api, checkoutUrl, param } from "./ui.js";
import { t } from "./i18n.js";

const ORDER_POLL_MS = 2000;
const pending = new Set(); // order ids of tips/questions waiting for payment
const handlers = new Map(); // product -> {errorTarget, announce(order)}

/** Who announces a paid order of ``product`` (and where its payment errors go). */
export function whenPaid(product, errorTarget, announce) {
  handlers.set(product, { errorTarget, announce });
}

/** Watch ``order`` until it is paid, then announce it. */
export function awaitPayment(order) {
  pending.add(order.id);
}

/** Back from a checkout with ?order=: say what happened; tips/questions get sent. */
export async function orderFromUrl() {
  const id = param("order");
  if (!id || !state.user) return;
  const url = new URL(location.href);
  for (const name of ["order", "paid", "cancelled"]) url.searchParams.delete(name);
  history.replaceState(null, "", url);
  try {
    const { order } = await api(`/api/orders/${encodeURIComponent(id)}`);
    if (order.room !== slug) return;
    if (order.status === "declined") showError(el.buyError, t("room.payment_declined"));
    else if (handlers.has(order.product)) pending.add(order.id);
  } catch (err) {
    showError(el.buyError, err);
  }
}

/** The order's checkout; the dev checkout is told to come back to this room (in the
 * popup: to a page that only says "done"). */
function orderCheckout(order, popup) {
  const back = `/static/room.html?room=${encodeURIComponent(slug)}&order=${encodeURIComponent(order.id)}`;
  return checkoutUrl(order, popup ? `${back}&popup=1` : back);
}

/** Pay a tip/question order without leaving the live room: the checkout opens in a popup
 * (or, if popups are blocked, this tab, coming back with ?order=). */
export function payInPopup(order) {
  pending.add(order.id);
  const popup = window.open(orderCheckout(order, true), `checkout-${order.id}`, "popup,width=480,height=640");
  if (!popup) location.assign(orderCheckout(order, false));
}

export async function settlePending() {
  for (const id of [...pending]) {
    let order;
    try {
      ({ order } = await api(`/api/orders/${encodeURIComponent(id)}`));
    } catch {
      continue;
    }
    if (order.status === "pending") continue;
    const handler = handlers.get(order.product);
    if (order.status !== "paid") {
      pending.delete(id);
      if (handler) showError(handler.errorTarget, t("room.payment_status", { status: order.status }));
      continue;
    }
    if (!state.socket || !state.socket.connected) continue;
    pending.delete(id);
    if (handler) await handler.announce(order);
  }
}

export function wireOrders() {
  setInterval(() => { if (pending.size) settlePending(); }, ORDER_POLL_MS);
}
