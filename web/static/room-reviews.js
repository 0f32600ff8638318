// The room's ratings and reviews: the approved ones with the creator's replies, the average,
// and the viewer's own review (any status) with a form to write or change it. The server
// decides who may review (buyers of a class that took place) and says why not.
import { slug, state } from "./room-context.js";
import { api, describe, h, setStatus } from "./ui.js";
import { t } from "./i18n.js";

const stars = (n) => "★".repeat(n) + "☆".repeat(5 - n);

function item(review) {
  return h("li", { class: "review" },
    h("strong", {}, review.author), " ", h("span", { class: "stars", "aria-label": `${review.rating} of 5` }, stars(review.rating)),
    review.text ? h("p", {}, review.text) : null,
    review.reply ? h("p", { class: "hint reply" }, t("room.creator_reply"), review.reply) : null);
}

export async function loadReviews() {
  const section = document.getElementById("reviews");
  const path = `/api/rooms/${encodeURIComponent(slug)}/reviews`;
  const data = await api(path).catch(() => null);
  if (!section || !data) return;
  section.hidden = false;
  document.getElementById("rating").textContent = data.rating.count
    ? `${data.rating.average.toFixed(1)} / 5 (${data.rating.count} ${data.rating.count === 1 ? "review" : "reviews"})`
    : t("room.no_reviews");
  document.getElementById("review-list").replaceChildren(...data.reviews.map(item));
  const form = document.getElementById("review-form");
  const line = document.getElementById("review-status");
  form.hidden = !state.user || state.user.id === state.room.creator_id;
  if (data.mine) {
    form.elements.rating.value = String(data.mine.rating);
    form.elements.text.value = data.mine.text;
    setStatus(line, "idle", data.mine.status === "approved" ? t("room.review_published")
      : data.mine.status === "pending" ? t("room.review_pending") : t("room.review_rejected"));
  }
  form.onsubmit = async (event) => {
    event.preventDefault();
    try {
      await api(path, { method: "POST", body: { rating: Number(form.elements.rating.value), text: form.elements.text.value } });
      setStatus(line, "ready", t("room.review_thanks"));
    } catch (err) {
      setStatus(line, "error", describe(err));
    }
  };
}
