// The notification inbox of the site header: a bell with the unread count that opens the
// newest notifications (GET /api/me/notifications); opening one marks it read, and "Mark all
// read" marks every one. Notification texts go through ui.h (text nodes). Refreshed every
// minute while the page is open.
import { api, h } from "./ui.js";
import { formatDateTime, lang, t } from "./i18n.js";

const REFRESH_MS = 60_000;

function entry(n, refresh) {
  const open = async (event) => {
    event.preventDefault();
    if (!n.read) await api("/api/me/notifications/read", { method: "POST", body: { ids: [n.id] } }).catch(() => null);
    await refresh();
    location.href = n.link;
  };
  const time = formatDateTime(n.created_at);
  // the server's sentence is English; other languages say it from its kind and room
  const text = lang !== "en" && n.room_title
    ? t(`inbox.${n.kind}`, { title: n.room_title, time: n.starts_at ? formatDateTime(n.starts_at) : "" }) : n.text;
  return h("li", { class: n.read ? "read" : "unread", dataset: { kind: n.kind } },
    h("a", { href: n.link, onclick: open }, text), " ", h("time", { datetime: n.created_at, class: "hint" }, time));
}

/** The inbox control for the header (a logged-in user's): a button and its panel, open if `open`. */
export function inboxControl({ open = false } = {}) {
  const count = h("span", { class: "count", id: "inbox-count" });
  const button = h("button", { type: "button", class: "link", id: "inbox-button", "aria-expanded": String(open),
                               "aria-controls": "inbox-panel" }, t("inbox.notifications"), count);
  const list = h("ul", { id: "inbox-list" });
  const panel = h("div", { id: "inbox-panel", class: "inbox-panel", hidden: !open },
    h("button", { type: "button", class: "link", id: "inbox-read-all", onclick: async () => {
      await api("/api/me/notifications/read", { method: "POST", body: { ids: "all" } }).catch(() => null);
      await refresh();
    } }, t("inbox.mark_all_read")),
    list, h("a", { href: "/static/notifications.html", class: "hint" }, t("inbox.settings")));

  async function refresh() {
    const box = await api("/api/me/notifications").catch(() => null);
    if (!box) return;
    count.textContent = box.unread ? String(box.unread) : "";
    button.dataset.unread = String(box.unread);
    list.replaceChildren(...(box.notifications.length
      ? box.notifications.map((n) => entry(n, refresh))
      : [h("li", { class: "hint" }, t("inbox.empty"))]));
  }

  button.addEventListener("click", () => {
    panel.hidden = !panel.hidden;
    button.setAttribute("aria-expanded", String(!panel.hidden));
  });
  refresh();
  setInterval(refresh, REFRESH_MS);
  return h("span", { class: "inbox" }, button, panel);
}
