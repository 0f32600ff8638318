// Q&A: the room's questions (open first, pinned, paid, most voted), upvotes, and asking
// one, free or paid (a paid question is asked once its order is paid).
import { $, ack, clearError, newKey, setStatusText, showError, slug, state, toMinor } from "./room-context.js";
import { awaitPayment, payInPopup, whenPaid } from "./room-orders.js";
import { api, formatMoney, h } from "./ui.js";
import { errorText, plural, t } from "./i18n.js";

export function upsertQuestion(q) {
  if (q.status === "open" || q.status === "answered") state.questions.set(q.id, q);
  else state.questions.delete(q.id);
  renderQuestions();
}

/** The whole list, as the server sends it on (re)connect. */
export function setQuestions(items) {
  state.questions.clear();
  items.forEach((q) => state.questions.set(q.id, q));
  renderQuestions();
}

export function deleteQuestion(id) {
  state.questions.delete(id);
  renderQuestions();
}

function renderQuestions() {
  const items = [...state.questions.values()].sort((a, b) =>
    (a.status === "open" ? 0 : 1) - (b.status === "open" ? 0 : 1) || Number(b.pinned) - Number(a.pinned)
    || b.paid_amount - a.paid_amount || b.votes - a.votes || a.id - b.id);
  $("questions").replaceChildren(...items.map((q) => {
    const own = state.user && q.user.id === state.user.id;
    return h("li", { class: `question ${q.status}${q.pinned ? " pinned" : ""}`, dataset: { id: q.id } },
      h("p", { class: "text" }, q.text),
      h("div", { class: "meta" },
        h("span", { class: "who" }, q.user.name),
        q.paid ? h("span", { class: "badge paid" }, t("room.paid_badge", { amount: formatMoney(q.paid_amount, q.currency) })) : null,
        q.pinned ? h("span", { class: "badge" }, t("room.pinned")) : null,
        q.status === "answered" ? h("span", { class: "badge answered" }, t("room.answered")) : null,
        h("button", { type: "button", class: "vote secondary", disabled: own || q.status !== "open",
          "aria-label": plural("room.upvote", q.votes), onclick: () => vote(q.id) }, `▲ ${q.votes}`)));
  }));
}

async function vote(id) {
  const res = await ack("question:vote", { id });
  if (res.ok) upsertQuestion(res.question);
  else showError($("ask-error"), errorText(res.error.code, res.error.message));
}

async function ask(event) {
  event.preventDefault();
  const textarea = $("question-text");
  const text = textarea.value.trim();
  if (!text) return;
  clearError($("ask-error"));
  const button = $("ask-button");
  button.disabled = true;
  try {
    if ($("question-paid").checked) {
      const amount = toMinor($("question-amount").value, state.room.currency);
      if (!amount) throw new Error(t("room.enter_question_amount"));
      const { order } = await api("/api/orders", { method: "POST",
        body: { room: slug, product: "question", amount, message: text, idempotency_key: newKey() } });
      textarea.value = "";
      if (order.status === "paid") awaitPayment(order);
      else payInPopup(order);
      setStatusText($("ask-error"), t("room.question_after_payment"));
      return;
    }
    const res = await ack("question:ask", { text });
    if (!res.ok) throw new Error(errorText(res.error.code, res.error.message));
    textarea.value = "";
    upsertQuestion(res.question);
  } catch (err) {
    showError($("ask-error"), err);
  } finally {
    button.disabled = false;
  }
}

whenPaid("question", $("ask-error"), async (order) => {
  const res = await ack("question:ask", { text: order.message, order_id: order.id });
  if (res.ok) upsertQuestion(res.question);
  if (res.ok || res.error.code === "order_used") clearError($("ask-error"));
  else showError($("ask-error"), errorText(res.error.code, res.error.message));
});

export function wireQuestions() {
  $("ask-form").addEventListener("submit", ask);
  $("question-paid").addEventListener("change", (e) => { $("question-amount").disabled = !e.target.checked; });
}
