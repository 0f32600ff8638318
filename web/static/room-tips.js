// Tips: paying one (in a checkout popup; announced to the room once paid) and the tips
// the room sees.
import { $, ack, clearError, newKey, setStatusText, showError, slug, state, toMinor } from "./room-context.js";
import { payInPopup, whenPaid } from "./room-orders.js";
import { api, formatMoney, h } from "./ui.js";
import { errorText, t } from "./i18n.js";

export function addTip(tip) {
  const text = [`${tip.user.name} tipped ${formatMoney(tip.amount, tip.currency)}`];
  const item = h("li", { class: tip.pin_seconds ? "tip pinned" : "tip" }, h("strong", {}, text[0]),
    tip.message ? h("span", { class: "message" }, `: ${tip.message}`) : null);
  const list = $("tips");
  list.prepend(item);
  while (list.children.length > 20) list.lastElementChild.remove();
}

async function sendTip(event) {
  event.preventDefault();
  clearError($("tip-error"));
  const amount = toMinor($("tip-amount").value, state.room.currency);
  if (!amount) return showError($("tip-error"), t("room.enter_amount"));
  const button = $("tip-button");
  button.disabled = true;
  try {
    const { order } = await api("/api/orders", { method: "POST",
      body: { room: slug, product: "tip", amount, message: $("tip-message").value.trim(), idempotency_key: newKey() } });
    $("tip-message").value = "";
    payInPopup(order);
    setStatusText($("tip-error"), t("room.tip_after_payment"));
  } catch (err) {
    showError($("tip-error"), err);
  } finally {
    button.disabled = false;
  }
}

whenPaid("tip", $("tip-error"), async (order) => {
  const res = await ack("tip:announce", { order_id: order.id });
  if (res.ok || res.error.code === "already_announced") clearError($("tip-error"));
  else showError($("tip-error"), errorText(res.error.code, res.error.message));
});

export function wireTips() {
  $("tip-form").addEventListener("submit", sendTip);
}
