// A creator's public page (/static/creator.html?id=N): bio, followers, follow/unfollow,
// upcoming rooms and past rooms (GET /api/creators/{id}). Texts go through ui.h.
import { api, describe, formatMoney, h, param, setStatus, siteHeader } from "./ui.js";
import { formatDateTime, plural, t } from "./i18n.js";

const id = param("id", "");
const statusLine = document.getElementById("status");
const followButton = document.getElementById("follow");
let user = null;

function card(room) {
  const when = room.starts_at
    ? h("time", { datetime: room.starts_at },
        formatDateTime(room.starts_at))
    : null;
  return h("li", { class: "card" },
    h("a", { href: `/static/room.html?room=${encodeURIComponent(room.slug)}` }, room.title), " ",
    h("span", { class: "badge price" }, room.free ? t("common.free") : formatMoney(room.ticket_price, room.currency)), " ", when);
}

function render(page) {
  document.title = `Stagepass — ${page.creator.display_name}`;
  document.getElementById("name").textContent = page.creator.display_name;
  document.getElementById("bio").textContent = page.creator.bio;
  document.getElementById("followers").textContent =
    plural("creator.followers", page.followers);
  document.getElementById("upcoming-list").replaceChildren(...page.upcoming.map(card));
  document.getElementById("past-list").replaceChildren(...page.past.map(card));
  followButton.hidden = !user || user.id === page.creator.id;
  followButton.textContent = page.following ? t("creator.unfollow") : t("creator.follow");
  followButton.dataset.following = String(Boolean(page.following));
}

async function load() {
  try {
    render(await api(`/api/creators/${encodeURIComponent(id)}`));
    setStatus(statusLine, "ready", "");
    statusLine.hidden = true;
  } catch (err) {
    statusLine.hidden = false;
    setStatus(statusLine, "error", describe(err));
  }
}

followButton.addEventListener("click", async () => {
  const method = followButton.dataset.following === "true" ? "DELETE" : "POST";
  try {
    await api(`/api/creators/${encodeURIComponent(id)}/follow`, { method });
    await load();
  } catch (err) {
    statusLine.hidden = false;
    setStatus(statusLine, "error", describe(err));
  }
});

user = await siteHeader();
await load();
