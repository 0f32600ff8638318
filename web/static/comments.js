// The discussion under a replay or a room (apart from the time-stamped danmaku): threads one
// level deep, reply, delete (own, or as a moderator), report, and review for moderators.
// User text always goes through textContent (ui.js `h`).
import { api, describe, h, me, setStatus } from "./ui.js";
import { formatDateTime, plural, t } from "./i18n.js";

/** Fill `section` with the discussion of `room` (and of one replay when `recording` is set). */
export async function mountComments(section, { room, recording = "" }) {
  const user = await me().catch(() => null);
  const list = h("ol", { class: "comments", "aria-live": "polite" });
  const status = h("p", { class: "status", role: "status" });
  const query = `/api/rooms/${encodeURIComponent(room)}/comments${recording ? `?recording=${recording}` : ""}`;

  async function post(text, parent, input) {
    try {
      await api(`/api/rooms/${encodeURIComponent(room)}/comments`,
                { method: "POST", body: { text, ...(recording ? { recording } : {}), ...(parent ? { parent } : {}) } });
      input.value = "";
      setStatus(status, "done", "");
      await refresh();
    } catch (err) {
      setStatus(status, "error", describe(err));
    }
  }

  async function act(path, body, method = "POST") {
    try {
      await api(path, { method, body });
      await refresh();
    } catch (err) {
      setStatus(status, "error", describe(err));
    }
  }

  function form(parent = null) {
    const input = h("textarea", { maxlength: 1000, rows: parent ? 2 : 3, required: true,
                                  "aria-label": parent ? t("comments.your_reply") : t("comments.your_comment") });
    return h("form", { class: "comment-form", onsubmit: (e) => { e.preventDefault(); post(input.value, parent, input); } },
      input, h("button", { type: "submit" }, parent ? t("comments.reply") : t("comments.comment")));
  }

  function item(c, moderator, top) {
    const actions = [];
    if (user && !c.deleted) {
      if (top) {
        actions.push(h("button", { type: "button", class: "link", onclick: (e) => {
          e.target.closest("li").append(form(c.id)); e.target.remove(); } }, t("comments.reply")));
      }
      if (c.mine || moderator) {
        actions.push(h("button", { type: "button", class: "link", onclick: () => act(`/api/comments/${c.id}`, undefined, "DELETE") }, t("studio.delete")));
      }
      if (!c.mine) {
        actions.push(c.reported ? h("span", { class: "hint" }, t("comments.reported"))
          : h("button", { type: "button", class: "link", onclick: () => act(`/api/comments/${c.id}/report`, {}) }, t("comments.report")));
      }
      if (moderator && c.hidden) {
        actions.push(h("span", { class: "error" }, ` ${plural("comments.hidden_after", c.reports)} `),
          h("button", { type: "button", onclick: () => act(`/api/comments/${c.id}/review`, { action: "keep" }) }, t("comments.keep")),
          h("button", { type: "button", onclick: () => act(`/api/comments/${c.id}/review`, { action: "delete" }) }, t("studio.delete")));
      }
    }
    return h("li", { class: "comment", dataset: { comment: c.id } },
      c.deleted ? h("p", { class: "hint" }, t("comments.deleted"))
        : h("p", {}, h("strong", {}, c.user.name), " ", h("time", { datetime: c.created_at },
          formatDateTime(c.created_at)), h("br"), c.text),
      h("div", { class: "comment-actions" }, actions),
      top && c.replies.length ? h("ol", { class: "replies" }, c.replies.map((r) => item(r, moderator, false))) : null);
  }

  async function refresh() {
    try {
      const body = await api(query);
      list.replaceChildren(...body.comments.map((c) => item(c, body.moderator, true)));
      section.dataset.count = String(body.comments.length);
    } catch (err) {
      setStatus(status, "error", describe(err));
    }
  }

  section.replaceChildren(h("h2", {}, recording ? t("comments.replay_discussion") : t("comments.discussion")),
    user ? form() : h("p", { class: "hint" }, h("a", { href: `/static/login.html?next=${encodeURIComponent(location.pathname + location.search)}` }, t("common.log_in")), t("comments.to_join")),
    status, list);
  section.hidden = false;
  await refresh();
  return { refresh };
}
