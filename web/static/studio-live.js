// The studio's live panels over Socket.IO (docs/protocol.md): viewers, danmaku rate, likes,
// tips, the Q&A queue, raised hands, polls and moderation. The creator connects with a
// publish token, which gives moderator rights. User text only ever goes into text nodes.
import { formatMoney, h } from "./ui.js";
import { errorText, formatTime, plural, t } from "./i18n.js";

const ACK_TIMEOUT_MS = 8000;
const DANMAKU_KEPT = 100; // lines in the moderation list
const RATE_WINDOW_MS = 60_000;

const $ = (id) => document.getElementById(id);

function timeOf(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : formatTime(d);
}

/** Sum of amounts per currency, as text ("$5.00 + €2.00"). */
function moneyText(totals) {
  const parts = Object.entries(totals).map(([cur, minor]) => formatMoney(minor, cur));
  return parts.length ? parts.join(" + ") : t("studio.none");
}

export class LivePanels {
  /**
   * `room`: the room slug; `token()`: resolves to a publish (or view) token for it, asked
   * again on every (re)connection since tokens are short-lived. `onMoney()` is called
   * when a tip or a paid question arrives (the page refreshes its revenue figure).
   */
  constructor(room, token, { onMoney = () => {} } = {}) {
    this.room = room;
    this.token = token;
    this.onMoney = onMoney;
    this.socket = null;
    this.questions = new Map(); // id -> open question, in server order
    this.polls = new Map(); // id -> poll
    this.hands = [];
    this.danmaku = []; // newest first
    this.arrivals = []; // receive times (ms) of danmaku, for the per-minute rate
    this.tips = {}; // currency -> minor units, this page session
    this.tipCount = 0;
    this.banned = new Map(); // user id -> name
    this.names = new Map(); // user id -> last known display name
    this.blocked = [];
    this._ticker = null;
  }

  connect() {
    if (typeof io !== "function") {
      this._chatStatus("error", t("studio.chat_unavailable"));
      return;
    }
    this._chatStatus("connecting", t("studio.chat_connecting"));
    const socket = (this.socket = io(location.origin, {
      transports: ["websocket"],
      auth: (cb) => {
        Promise.resolve(this.token())
          .then((token) => cb({ room: this.room, token: token || "" }))
          .catch(() => cb({ room: this.room, token: "" }));
      },
    }));
    socket.on("connect", () => {
      this._chatStatus("live", t("studio.chat_connected"));
      // an empty blocklist call is a read (no audit entry); slow mode comes as an event
      this.call("mod:blocklist", {}).then((ack) => this._renderBlocklist(ack.words || []), () => null);
    });
    socket.on("disconnect", (reason) => this._chatStatus("connecting", `Chat: disconnected (${reason}), reconnecting…`));
    socket.on("connect_error", (err) => {
      const message = (err && err.data && errorText(err.data.code, err.data.message)) || (err && err.message) || t("studio.refused");
      this._chatStatus("error", t("room.chat_error", { error: message }));
    });
    socket.on("kicked", (data) => this._chatStatus("error", `Chat: ${data?.message || "disconnected by the server"}`));
    socket.on("presence", (d) => { $("stat-chat").textContent = String(d?.viewers ?? 0); });
    socket.on("likes", (d) => { $("stat-likes").textContent = String(d?.total ?? 0); });
    socket.on("danmaku:recent", (d) => {
      // Sent on every (re)connection: count in the rate only what was not seen before.
      const seen = new Set(this.danmaku.map((x) => x.id));
      this.danmaku = [];
      for (const item of d?.items || []) {
        this._addDanmaku(item, seen.has(item?.id) ? null : Date.parse(item.sent_at) || 0);
      }
      this._renderDanmaku();
    });
    socket.on("danmaku", (d) => {
      const now = Date.now();
      for (const item of d?.items || []) this._addDanmaku(item, now);
      this._renderDanmaku();
      this._renderRate();
    });
    socket.on("deleted", (d) => {
      if (d?.kind === "danmaku") {
        this.danmaku = this.danmaku.filter((x) => x.id !== d.id);
        this._renderDanmaku();
      } else if (d?.kind === "question") {
        this.questions.delete(d.id);
        this._renderQuestions();
      }
    });
    socket.on("muted", (d) => this._modStatus(`${this._name(d?.user)} is muted until ${timeOf(d?.until)}.`));
    socket.on("slow_mode", (d) => this._renderSlow(d?.seconds ?? 0));
    socket.on("questions", (d) => {
      this.questions = new Map((d?.items || []).map((q) => [q.id, q]));
      for (const q of d?.items || []) this.names.set(q.user.id, q.user.name);
      this._renderQuestions();
    });
    socket.on("question", (q) => this._upsertQuestion(q));
    socket.on("tip", (tip) => this._addTip(tip));
    socket.on("poll", (poll) => {
      this.polls.set(poll.id, poll);
      this._renderPolls();
    });
    socket.on("hands", (d) => {
      this.hands = d?.items || [];
      this._renderHands();
    });
    this._ticker = setInterval(() => this._renderRate(), 1000);
    this._wire();
  }

  close() {
    clearInterval(this._ticker);
    if (this.socket) {
      this.socket.removeAllListeners();
      this.socket.disconnect();
    }
    this.socket = null;
  }

  /** Emit with an ack; resolves to the ack, throws Error(message) with `.code` on refusal. */
  async call(event, payload) {
    if (!this.socket || !this.socket.connected) throw Object.assign(new Error(errorText("not_connected", t("studio.chat_not_connected_short"))), { code: "not_connected" });
    let ack;
    try {
      ack = payload === undefined
        ? await this.socket.timeout(ACK_TIMEOUT_MS).emitWithAck(event)
        : await this.socket.timeout(ACK_TIMEOUT_MS).emitWithAck(event, payload);
    } catch {
      throw Object.assign(new Error(errorText("timeout", t("studio.no_answer"))), { code: "timeout" });
    }
    if (!ack || !ack.ok) {
      const error = (ack && ack.error) || {};
      throw Object.assign(new Error(errorText(error.code, error.message) || t("studio.refused")), { code: error.code || "" });
    }
    return ack;
  }

  // ---------------------------------------------------------------- forms
  _wire() {
    if (this._wired) return;
    this._wired = true;
    $("poll-form").addEventListener("submit", (e) => this._openPoll(e));
    $("slow-form").addEventListener("submit", (e) => this._setSlow(e));
    $("block-form").addEventListener("submit", (e) => this._block(e));
    $("block-refresh").addEventListener("click", async () => {
      try {
        this._renderBlocklist((await this.call("mod:blocklist", {})).words || []);
        if (!this.blocked.length) this._modStatus(t("studio.no_blocked_words"));
      } catch (err) {
        this._modStatus(t("studio.list_not_read", { error: err.message }), true);
      }
    });
  }

  async _openPoll(event) {
    event.preventDefault();
    const question = $("poll-question").value.trim();
    const options = $("poll-options").value.split("\n").map((o) => o.trim()).filter(Boolean);
    const error = $("poll-error");
    error.textContent = "";
    try {
      await this.call("poll:open", { question, options });
      $("poll-question").value = "";
      $("poll-options").value = "";
    } catch (err) {
      error.textContent = t("studio.poll_not_opened", { error: err.message });
    }
  }

  async _setSlow(event) {
    event.preventDefault();
    const seconds = Number($("slow-seconds").value);
    try {
      await this.call("mod:slow_mode", { seconds: Number.isInteger(seconds) ? seconds : -1 });
      this._renderSlow(seconds);
    } catch (err) {
      this._modStatus(t("studio.slow_not_changed", { error: err.message }), true);
    }
  }

  async _block(event) {
    event.preventDefault();
    const input = $("block-word");
    const word = input.value.trim();
    if (!word) return;
    try {
      const ack = await this.call("mod:blocklist", { add: [word] });
      input.value = "";
      this._renderBlocklist(ack.words || []);
      this._modStatus(t("studio.blocked_word", { word }));
    } catch (err) {
      this._modStatus(t("studio.word_not_blocked", { error: err.message }), true);
    }
  }

  async _unblock(word) {
    try {
      const ack = await this.call("mod:blocklist", { remove: [word] });
      this._renderBlocklist(ack.words || []);
      this._modStatus(t("studio.word_allowed", { word }));
    } catch (err) {
      this._modStatus(t("studio.word_not_removed", { error: err.message }), true);
    }
  }

  // ---------------------------------------------------------------- danmaku
  _addDanmaku(item, receivedAt) {
    if (!item || typeof item.id !== "number") return;
    this.names.set(item.user.id, item.user.name);
    if (this.danmaku.some((x) => x.id === item.id)) return;
    this.danmaku.unshift(item);
    if (this.danmaku.length > DANMAKU_KEPT) this.danmaku.length = DANMAKU_KEPT;
    if (receivedAt !== null) this.arrivals.push(receivedAt);
  }

  _renderRate() {
    const since = Date.now() - RATE_WINDOW_MS;
    this.arrivals = this.arrivals.filter((t) => t >= since);
    $("stat-danmaku-rate").textContent = t("studio.per_minute", { n: this.arrivals.length });
  }

  _renderDanmaku() {
    const items = this.danmaku.map((d) => {
      const who = d.user.name;
      return h("li", { dataset: { id: String(d.id), user: String(d.user.id) }, class: "danmaku-line" },
        h("span", { class: "line" },
          h("span", { class: "swatch", style: `background:${/^#[0-9a-fA-F]{6}$/.test(d.color) ? d.color : "#ffffff"}`, "aria-hidden": "true" }),
          h("strong", { class: "who" }, who), ": ", h("span", { class: "text" }, d.text),
          " ", h("time", { class: "hint", datetime: d.sent_at }, timeOf(d.sent_at))),
        h("span", { class: "actions" },
          h("button", { type: "button", class: "small", "data-action": "delete", "aria-label": t("studio.delete_danmaku_by", { who }),
            onclick: () => this._delete("danmaku", d.id) }, t("studio.delete")),
          h("button", { type: "button", class: "small secondary", "data-action": "mute", "aria-label": t("studio.mute_who", { who }),
            onclick: () => this._mute(d.user) }, t("studio.mute")),
          h("button", { type: "button", class: "small danger", "data-action": "ban", "aria-label": t("studio.ban_who", { who }),
            onclick: () => this._ban(d.user) }, t("studio.ban"))));
    });
    $("danmaku-list").replaceChildren(...items);
  }

  async _delete(kind, id) {
    try {
      await this.call("mod:delete", { kind, id });
      this._modStatus(t(`studio.deleted_${kind}`));
    } catch (err) {
      this._modStatus(t("studio.not_deleted", { error: err.message }), true);
    }
  }

  async _mute(user) {
    const seconds = Number($("mute-seconds").value);
    try {
      const ack = await this.call("mod:mute", { user_id: user.id, seconds });
      this._modStatus(t("studio.muted_until", { name: user.name, time: timeOf(ack.until) }));
    } catch (err) {
      this._modStatus(t("studio.not_muted", { name: user.name, error: err.message }), true);
    }
  }

  async _ban(user) {
    try {
      await this.call("mod:ban", { user_id: user.id });
      this.banned.set(user.id, user.name);
      this._renderBanned();
      this._modStatus(t("studio.banned", { name: user.name }));
    } catch (err) {
      this._modStatus(t("studio.not_banned", { name: user.name, error: err.message }), true);
    }
  }

  async _unban(id, name) {
    try {
      await this.call("mod:unban", { user_id: id });
      this.banned.delete(id);
      this._renderBanned();
      this._modStatus(t("studio.unbanned", { name }));
    } catch (err) {
      this._modStatus(t("studio.not_unbanned", { name, error: err.message }), true);
    }
  }

  _renderBanned() {
    const items = [...this.banned].map(([id, name]) => h("li", { dataset: { user: String(id) } },
      h("span", { class: "line" }, name),
      h("span", { class: "actions" }, h("button", { type: "button", class: "small secondary",
        "aria-label": t("studio.unban_who", { name }), onclick: () => this._unban(id, name) }, t("studio.unban")))));
    $("banned").replaceChildren(...items);
    $("banned-empty").hidden = items.length > 0;
  }

  _renderBlocklist(words) {
    this.blocked = words;
    $("blocklist").replaceChildren(...words.map((w) => h("li", {},
      h("span", {}, w), " ",
      h("button", { type: "button", class: "link", "aria-label": t("studio.allow_again", { word: w }), onclick: () => this._unblock(w) }, t("studio.remove")))));
  }

  _renderSlow(seconds) {
    $("slow-state").textContent = seconds > 0 ? t("studio.slow_mode_on", { seconds }) : t("studio.slow_mode_off");
  }

  // ---------------------------------------------------------------- questions
  _upsertQuestion(q) {
    if (!q || typeof q.id !== "number") return;
    this.names.set(q.user.id, q.user.name);
    if (q.status === "open") {
      this.questions.set(q.id, q);
      if (q.paid) this.onMoney();
    } else {
      this.questions.delete(q.id);
    }
    // The server's queue order: paid amount, then votes, then oldest first.
    const sorted = [...this.questions.values()].sort((a, b) =>
      (b.paid_amount - a.paid_amount) || (b.votes - a.votes) || a.asked_at.localeCompare(b.asked_at) || a.id - b.id);
    this.questions = new Map(sorted.map((x) => [x.id, x]));
    this._renderQuestions();
  }

  _renderQuestions() {
    const items = [...this.questions.values()].map((q) => {
      const who = q.user.name;
      return h("li", { dataset: { id: String(q.id) }, class: `question${q.pinned ? " pinned" : ""}${q.paid ? " paid" : ""}` },
        h("span", { class: "line" },
          q.paid ? h("span", { class: "badge paid" }, formatMoney(q.paid_amount, q.currency || "USD")) : null,
          q.pinned ? h("span", { class: "badge" }, t("room.pinned")) : null,
          h("strong", { class: "who" }, who), ": ", h("span", { class: "text" }, q.text),
          " ", h("span", { class: "hint" }, `▲ ${q.votes}`)),
        h("span", { class: "actions" },
          h("button", { type: "button", class: "small", "data-action": "answer", "aria-label": t("studio.mark_answered", { who }),
            onclick: () => this._question("question:answer", { id: q.id }, t("studio.answered_done")) }, t("studio.answer")),
          h("button", { type: "button", class: "small secondary", "data-action": "pin", "aria-pressed": q.pinned ? "true" : "false",
            "aria-label": t(q.pinned ? "studio.unpin_question" : "studio.pin_question", { who }),
            onclick: () => this._question("question:pin", { id: q.id, pinned: !q.pinned }, q.pinned ? t("studio.unpinned") : t("studio.pinned")) },
            q.pinned ? t("studio.unpin") : t("studio.pin")),
          h("button", { type: "button", class: "small danger", "data-action": "dismiss",
            "aria-label": t(q.paid ? "studio.dismiss_refund_question" : "studio.dismiss_question", { who }),
            onclick: () => this._question("question:dismiss", { id: q.id }, q.paid ? t("studio.dismissed_refunded") : t("studio.dismissed")) },
            q.paid ? t("studio.dismiss_refund") : t("studio.dismiss"))));
    });
    $("questions").replaceChildren(...items);
    $("qa-count").textContent = String(items.length);
  }

  async _question(event, payload, done) {
    try {
      const ack = await this.call(event, payload);
      if (ack.question) this._upsertQuestion(ack.question);
      this._modStatus(done, false, "qa-status");
    } catch (err) {
      this._modStatus(t("studio.not_done", { error: err.message }), true, "qa-status");
    }
  }

  // ---------------------------------------------------------------- tips, hands, polls
  _addTip(tip) {
    if (!tip || typeof tip.amount !== "number") return;
    this.tips[tip.currency] = (this.tips[tip.currency] || 0) + tip.amount;
    this.tipCount += 1;
    $("stat-tips").textContent = `${this.tipCount} · ${moneyText(this.tips)}`;
    const message = tip.message_hidden ? t("studio.message_hidden") : tip.message;
    $("tip-list").prepend(h("li", {}, h("strong", {}, tip.user?.name || t("studio.someone")), t("studio.tipped", { amount: formatMoney(tip.amount, tip.currency) }),
      message ? ": " : "", message ? h("span", { class: "text" }, message) : null));
    this.onMoney();
  }

  _renderHands() {
    const items = this.hands.map((hand) => h("li", { dataset: { user: String(hand.user.id) } },
      h("span", { class: "line" }, h("strong", {}, hand.user.name), " ", h("span", { class: "hint" }, t("studio.since", { time: timeOf(hand.raised_at) }))),
      h("span", { class: "actions" }, h("button", { type: "button", class: "small secondary", "aria-label": t("studio.lower_hand_of", { name: hand.user.name }),
        onclick: async () => {
          try {
            await this.call("hand:lower", { user_id: hand.user.id });
          } catch (err) {
            this._modStatus(t("studio.hand_not_lowered", { error: err.message }), true);
          }
        } }, t("studio.lower")))));
    $("hands").replaceChildren(...items);
    $("hands-count").textContent = String(items.length);
  }

  _renderPolls() {
    const polls = [...this.polls.values()].sort((a, b) => (b.open - a.open) || b.id - a.id);
    $("polls").replaceChildren(...polls.map((p) => {
      const total = p.total || 0;
      return h("li", { dataset: { id: String(p.id), open: String(p.open) }, class: "poll" },
        h("p", { class: "poll-question" }, h("strong", {}, p.question), " ",
          h("span", { class: "badge" }, p.open ? t("studio.poll_open") : t("studio.poll_closed")), " ", h("span", { class: "hint" }, plural("studio.votes", total))),
        h("ul", { class: "results" }, ...p.options.map((option, i) => {
          const count = p.counts?.[i] || 0;
          const pct = total ? Math.round((100 * count) / total) : 0;
          return h("li", { dataset: { option: String(i) } },
            h("span", { class: "option" }, option), " ", h("span", { class: "votes" }, `${count} (${pct}%)`),
            h("progress", { max: String(Math.max(total, 1)), value: String(count), "aria-label": `${option}: ${plural("studio.votes", count)}` }));
        })),
        p.open ? h("button", { type: "button", class: "small secondary", "data-action": "close",
          "aria-label": t("studio.close_poll_named", { question: p.question }), onclick: async () => {
            try {
              const ack = await this.call("poll:close", { id: p.id });
              if (ack.poll) { this.polls.set(ack.poll.id, ack.poll); this._renderPolls(); }
            } catch (err) {
              this._modStatus(t("studio.poll_not_closed", { error: err.message }), true);
            }
          } }, t("studio.close_poll")) : null);
    }));
  }

  // ---------------------------------------------------------------- status lines
  _name(userId) {
    return this.names.get(userId) || t("studio.user", { id: userId });
  }

  _chatStatus(state, text) {
    const el = $("chat-status");
    el.dataset.state = state;
    el.textContent = text;
  }

  _modStatus(text, error = false, id = "mod-status") {
    const el = $(id);
    el.dataset.state = error ? "error" : "ok";
    el.textContent = text;
  }
}
