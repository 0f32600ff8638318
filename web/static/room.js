// The viewer's room page: about/price/buy without a ticket; with one (or a free room, the
// creator, a free preview) the live player over WHEP with a danmaku overlay (the `danmaku`
// package, DOM engine), and Q&A, tips, likes, polls, hand-raise and presence over Socket.IO
// (docs/protocol.md). Every text from users goes in as text (ui.h / textContent).
//
// The status line's data-state says where the viewer is: loading, needs-login,
// needs-ticket, idle (not live yet), connecting, playing, reconnecting (the creator's
// connection dropped), ended (replay processing / ready), seat-taken (the ticket is in
// use on another device), preview-over, refunded, error.
import { accessToken, play } from "./whip.js";
import { api, checkoutUrl, describe, formatMoney, h, param, setStatus, siteHeader } from "./ui.js";

const STATUS_POLL_MS = 2000;
const ORDER_POLL_MS = 2000;
const KICK_GRACE_MS = 2000;
const DENSITY = { low: 3, normal: 10, high: Infinity }; // danmaku shown per second
const STORE = "stagepass.danmaku.";

const $ = (id) => document.getElementById(id);
const el = {
  title: $("title"), schedule: $("schedule"), status: $("status"), actions: $("status-actions"),
  takeSeat: $("take-seat"), reconnect: $("reconnect"), replayLink: $("replay-link"),
  stage: $("stage"), video: $("video"), layer: $("danmaku-layer"), previewLeft: $("preview-left"),
  controls: $("live-controls"), side: $("side"), buy: $("buy"), buyForm: $("buy-form"),
  buyButton: $("buy-button"), coupon: $("coupon"), buyError: $("buy-error"), previewButton: $("preview-button"),
  loginNeeded: $("login-needed"), loginToBuy: $("login-to-buy"),
};

const slug = param("room", "");
const state = {
  user: null, room: null, owned: [], testMode: false, access: null, previewUntil: null,
  socket: null, session: null, phase: null, seatTaken: false, kicked: null, stopped: false,
  recording: null, endedBroadcast: null, likes: 0, handRaised: false, polls: new Map(), questions: new Map(),
};
window.stagepass = { state, get session() { return state.session; }, get socket() { return state.socket; } };

// ---------------------------------------------------------------- helpers
function status(kind, text) {
  setStatus(el.status, kind, text);
}

function showError(target, err) {
  target.hidden = false;
  setStatus(target, "error", typeof err === "string" ? err : describe(err));
}

function clearError(target) {
  target.hidden = true;
  target.textContent = "";
}

function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

function fractionDigits(currency) {
  return new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits;
}

/** "5.00" in the room's currency -> 500 minor units, or null. */
function toMinor(text, currency) {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) return null;
  return Math.round(value * 10 ** fractionDigits(currency));
}

function ack(event, payload) {
  const socket = state.socket;
  if (!socket || !socket.connected) return Promise.resolve({ ok: false, error: { code: "not_connected", message: "not connected to the room yet" } });
  return socket.timeout(5000).emitWithAck(event, payload).catch(() => ({ ok: false, error: { code: "timeout", message: "the server did not answer; try again" } }));
}

function hasTicket() {
  const { user, room, owned } = state;
  return Boolean(user && room && (room.free || owned.includes("ticket") || user.id === room.creator_id || user.role === "admin"));
}

function countdown(iso) {
  const left = Math.floor((Date.parse(iso) - Date.now()) / 1000);
  if (!(left > 0)) return null;
  const d = Math.floor(left / 86400);
  const hms = [Math.floor(left / 3600) % 24, Math.floor(left / 60) % 60, left % 60].map((n) => String(n).padStart(2, "0")).join(":");
  return d ? `${d} d ${hms}` : hms;
}

// ---------------------------------------------------------------- about / buy
function renderAbout() {
  const room = state.room;
  document.title = `${room.title} — Stagepass`;
  el.title.textContent = room.title;
  $("description").textContent = room.description || "";
  $("tags").textContent = room.tags.map((t) => `#${t}`).join(" ");
  if (room.starts_at) {
    el.schedule.hidden = false;
    el.schedule.replaceChildren("Scheduled for ", h("time", { datetime: room.starts_at },
      new Date(room.starts_at).toLocaleString(undefined, { dateStyle: "full", timeStyle: "short" })));
  }
  const price = room.free ? "Free for everyone with an account" : `Ticket: ${formatMoney(room.ticket_price, room.currency)}`;
  const replay = room.replay_included ? " · replay included"
    : room.replay_price != null ? ` · replay ${formatMoney(room.replay_price, room.currency)}` : "";
  $("price-info").textContent = price + replay;
  if (room.preview_seconds > 0 && !room.free) {
    $("preview-info").hidden = false;
    $("preview-info").textContent = `Free preview: ${Math.round(room.preview_seconds / 60 * 10) / 10} min of the live class, once.`;
  }
  el.buyButton.textContent = room.free ? "Free" : `Buy ticket — ${formatMoney(room.ticket_price, room.currency)}`;
}

function showBuy(reason) {
  el.buy.hidden = false;
  $("test-mode").hidden = !state.testMode;
  const loggedIn = Boolean(state.user);
  el.loginNeeded.hidden = loggedIn;
  el.buyForm.hidden = !loggedIn;
  el.loginToBuy.href = `/static/login.html?next=${encodeURIComponent(location.pathname + location.search)}`;
  el.previewButton.hidden = !(loggedIn && state.room.preview_seconds > 0 && reason !== "preview-over");
  el.previewButton.textContent = `Watch the free preview (${Math.round(state.room.preview_seconds / 60 * 10) / 10} min)`;
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

// ---------------------------------------------------------------- orders coming back
const pending = new Set(); // order ids of tips/questions waiting for payment

/** Back from a checkout with ?order=: say what happened; tips/questions get sent. */
async function orderFromUrl() {
  const id = param("order");
  if (!id || !state.user) return;
  const url = new URL(location.href);
  for (const name of ["order", "paid", "cancelled"]) url.searchParams.delete(name);
  history.replaceState(null, "", url);
  try {
    const { order } = await api(`/api/orders/${encodeURIComponent(id)}`);
    if (order.room !== slug) return;
    if (order.status === "declined") showError(el.buyError, "The payment was declined; nothing was charged.");
    else if (order.product === "tip" || order.product === "question") pending.add(order.id);
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
function payInPopup(order) {
  pending.add(order.id);
  const popup = window.open(orderCheckout(order, true), `checkout-${order.id}`, "popup,width=480,height=640");
  if (!popup) location.assign(orderCheckout(order, false));
}

async function settlePending() {
  for (const id of [...pending]) {
    let order;
    try {
      ({ order } = await api(`/api/orders/${encodeURIComponent(id)}`));
    } catch {
      continue;
    }
    if (order.status === "pending") continue;
    if (order.status !== "paid") {
      pending.delete(id);
      showError(order.product === "tip" ? $("tip-error") : $("ask-error"), `The payment was ${order.status}.`);
      continue;
    }
    if (!state.socket || !state.socket.connected) continue;
    pending.delete(id);
    if (order.product === "tip") {
      const res = await ack("tip:announce", { order_id: order.id });
      if (res.ok || res.error.code === "already_announced") clearError($("tip-error"));
      else showError($("tip-error"), res.error.message);
    } else if (order.product === "question") {
      const res = await ack("question:ask", { text: order.message, order_id: order.id });
      if (res.ok) upsertQuestion(res.question);
      if (res.ok || res.error.code === "order_used") clearError($("ask-error"));
      else showError($("ask-error"), res.error.message);
    }
  }
}

// ---------------------------------------------------------------- danmaku overlay
const prefs = {
  get enabled() { return localStorage.getItem(STORE + "enabled") !== "off"; },
  set enabled(on) { localStorage.setItem(STORE + "enabled", on ? "on" : "off"); },
  get density() { const d = localStorage.getItem(STORE + "density"); return d in DENSITY ? d : "normal"; },
  set density(d) { localStorage.setItem(STORE + "density", d); },
  get blocked() {
    try {
      const words = JSON.parse(localStorage.getItem(STORE + "blocked") || "[]");
      return Array.isArray(words) ? words.filter((w) => typeof w === "string") : [];
    } catch {
      return [];
    }
  },
  set blocked(words) { localStorage.setItem(STORE + "blocked", JSON.stringify(words)); },
};

let overlay = null;
const shownAt = []; // times of danmaku put on screen in the last second (density)

function setupOverlay() {
  overlay = new window.Danmaku({ container: el.layer, engine: "dom", speed: 144 });
  new ResizeObserver(() => overlay && overlay.resize()).observe(el.stage);
  applyToggle();
  $("danmaku-density").value = prefs.density;
  renderBlocklist();
}

function applyToggle() {
  const on = prefs.enabled;
  const button = $("danmaku-toggle");
  button.setAttribute("aria-pressed", String(on));
  button.textContent = `Danmaku: ${on ? "on" : "off"}`;
  el.layer.hidden = !on;
  if (overlay) on ? overlay.show() : (overlay.clear(), overlay.hide());
}

function blockedText(text) {
  const lowered = text.toLowerCase();
  return prefs.blocked.some((w) => lowered.includes(w));
}

function renderBlocklist() {
  const list = $("block-list");
  list.replaceChildren(...prefs.blocked.map((word) => h("li", {},
    h("span", {}, word), " ",
    h("button", { type: "button", class: "link", "aria-label": `Unblock ${word}`, onclick: () => {
      prefs.blocked = prefs.blocked.filter((w) => w !== word);
      renderBlocklist();
    } }, "×"))));
}

function logDanmaku(item) {
  const log = $("danmaku-log");
  log.append(h("li", { dataset: { id: item.id } }, h("strong", {}, item.user.name), ": ", item.text));
  while (log.children.length > 50) log.firstElementChild.remove();
}

function flyDanmaku(item) {
  if (!overlay || !prefs.enabled || blockedText(item.text)) return;
  const now = performance.now();
  while (shownAt.length && now - shownAt[0] > 1000) shownAt.shift();
  if (shownAt.length >= DENSITY[prefs.density]) return;
  shownAt.push(now);
  const mine = state.user && item.user.id === state.user.id;
  overlay.emit({
    text: item.text,
    mode: { scroll: "rtl", top: "top", bottom: "bottom" }[item.mode] || "rtl",
    style: {
      fontSize: innerWidth < 600 ? "16px" : "22px", color: item.color, fontWeight: "600",
      textShadow: "-1px -1px #000, -1px 1px #000, 1px -1px #000, 1px 1px #000",
      border: mine ? "1px solid #fff" : "none", padding: "0 2px", whiteSpace: "pre",
    },
  });
}

async function sendDanmaku(event) {
  event.preventDefault();
  const input = $("danmaku-text");
  const text = input.value;
  if (!text.trim()) return;
  clearError($("danmaku-error"));
  input.value = ""; // at once: the viewer may type the next one while this one is sent
  const res = await ack("danmaku:send", { text, mode: $("danmaku-mode").value, color: $("danmaku-color").value.toUpperCase() });
  if (!res.ok) {
    if (!input.value) input.value = text; // back, to fix and resend
    showError($("danmaku-error"), res.error.message);
  }
  // stay in the danmaku field, unless the viewer moved to another one meanwhile
  const active = document.activeElement;
  if (!active || active === document.body || active.closest("#danmaku-form")) input.focus();
}

// ---------------------------------------------------------------- Q&A
function upsertQuestion(q) {
  if (q.status === "open" || q.status === "answered") state.questions.set(q.id, q);
  else state.questions.delete(q.id);
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
        q.paid ? h("span", { class: "badge paid" }, `Paid ${formatMoney(q.paid_amount, q.currency)}`) : null,
        q.pinned ? h("span", { class: "badge" }, "Pinned") : null,
        q.status === "answered" ? h("span", { class: "badge answered" }, "Answered") : null,
        h("button", { type: "button", class: "vote secondary", disabled: own || q.status !== "open",
          "aria-label": `Upvote (${q.votes} votes)`, onclick: () => vote(q.id) }, `▲ ${q.votes}`)));
  }));
}

async function vote(id) {
  const res = await ack("question:vote", { id });
  if (res.ok) upsertQuestion(res.question);
  else showError($("ask-error"), res.error.message);
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
      if (!amount) throw new Error("Enter the amount for your paid question.");
      const { order } = await api("/api/orders", { method: "POST",
        body: { room: slug, product: "question", amount, message: text, idempotency_key: newKey() } });
      textarea.value = "";
      if (order.status === "paid") pending.add(order.id);
      else payInPopup(order);
      setStatusText($("ask-error"), "Your question is sent once the payment is confirmed.");
      return;
    }
    const res = await ack("question:ask", { text });
    if (!res.ok) throw new Error(res.error.message);
    textarea.value = "";
    upsertQuestion(res.question);
  } catch (err) {
    showError($("ask-error"), err);
  } finally {
    button.disabled = false;
  }
}

function setStatusText(target, text) {
  target.hidden = false;
  setStatus(target, "info", text);
}

// ---------------------------------------------------------------- polls, tips, likes, hands
function upsertPoll(poll) {
  const known = state.polls.get(poll.id);
  if (known && known.voted != null && poll.voted == null) poll.voted = known.voted;
  state.polls.set(poll.id, poll);
  renderPolls();
}

function renderPolls() {
  const polls = [...state.polls.values()].sort((a, b) => Number(b.open) - Number(a.open) || b.id - a.id).slice(0, 3);
  $("poll-panel").hidden = polls.length === 0;
  $("polls").replaceChildren(...polls.map((poll) => {
    const canVote = poll.open && poll.voted == null;
    const options = poll.options.map((option, i) => {
      const count = poll.counts[i] || 0;
      const pct = poll.total ? Math.round((count / poll.total) * 100) : 0;
      if (canVote) {
        return h("li", {}, h("button", { type: "button", class: "option", dataset: { option: i },
          onclick: () => votePoll(poll.id, i) }, option));
      }
      return h("li", { class: poll.voted === i ? "result mine" : "result" },
        h("span", { class: "label" }, option), " ", h("span", { class: "count" }, `${count} (${pct}%)`),
        h("span", { class: "bar", style: `width:${pct}%` }));
    });
    return h("div", { class: "poll", dataset: { id: poll.id, open: String(poll.open) } },
      h("p", { class: "question-text" }, poll.question),
      h("ol", { class: "options" }, ...options),
      h("p", { class: "hint" }, poll.open ? `${poll.total} votes · open` : `Final results · ${poll.total} votes`));
  }));
}

async function votePoll(id, option) {
  const res = await ack("poll:vote", { id, option });
  const poll = state.polls.get(id);
  if (res.ok || (res.error && res.error.code === "already_voted")) {
    if (poll) {
      if (res.ok) {
        poll.voted = option;
        poll.counts[option] = (poll.counts[option] || 0) + 1;
        poll.total += 1;
      } else {
        poll.voted = poll.voted ?? option;
      }
      renderPolls();
    }
  } else {
    showError($("ask-error"), res.error.message);
  }
}

function addTip(tip) {
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
  if (!amount) return showError($("tip-error"), "Enter an amount.");
  const button = $("tip-button");
  button.disabled = true;
  try {
    const { order } = await api("/api/orders", { method: "POST",
      body: { room: slug, product: "tip", amount, message: $("tip-message").value.trim(), idempotency_key: newKey() } });
    $("tip-message").value = "";
    payInPopup(order);
    setStatusText($("tip-error"), "Your tip is announced once the payment is confirmed.");
  } catch (err) {
    showError($("tip-error"), err);
  } finally {
    button.disabled = false;
  }
}

function showLikes(total) {
  state.likes = Math.max(state.likes, total);
  $("likes").textContent = `${state.likes} like${state.likes === 1 ? "" : "s"}`;
}

async function like() {
  const res = await ack("like", { count: 1 });
  if (res.ok) showLikes(res.total);
  else showError($("danmaku-error"), res.error.message);
}

function showHand(raised) {
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

// ---------------------------------------------------------------- Socket.IO
/** The door's refusals of a chat connection that trying again cannot change (docs/protocol.md). */
const FINAL_CHAT_REFUSALS = new Set(["banned", "wrong_scope", "ticket_required", "preview_over", "unknown_user"]);

function connectSocket() {
  const socket = window.io({
    path: "/socket.io",
    transports: ["websocket"],
    auth: (cb) => accessToken(slug, "view").then((token) => cb({ room: slug, token }), () => cb({ room: slug, token: "" })),
  });
  state.socket = socket;
  socket.on("connect", () => {
    clearError($("danmaku-error"));
    settlePending();
  });
  socket.on("connect_error", (err) => {
    const data = err.data || {};
    showError($("danmaku-error"), `Chat: ${data.message || err.message}`);
    if (FINAL_CHAT_REFUSALS.has(data.code)) socket.disconnect();
  });
  socket.on("kicked", (data) => {
    state.kicked = data;
    if (data.code === "seat_taken") seatTaken();
    else if (data.code === "preview_over") previewOver();
    else if (data.code === "refunded") refunded();
    else showError($("danmaku-error"), data.message);
  });
  socket.on("danmaku", ({ items }) => items.forEach((item) => {
    if (!blockedText(item.text)) logDanmaku(item);
    flyDanmaku(item);
  }));
  socket.on("danmaku:recent", ({ items }) => {
    $("danmaku-log").replaceChildren();
    items.filter((item) => !blockedText(item.text)).forEach(logDanmaku);
  });
  socket.on("deleted", ({ kind, id }) => {
    if (kind === "question") {
      state.questions.delete(id);
      renderQuestions();
    } else {
      const item = $("danmaku-log").querySelector(`li[data-id="${CSS.escape(String(id))}"]`);
      if (item) item.remove();
    }
  });
  socket.on("questions", ({ items }) => {
    state.questions.clear();
    items.forEach((q) => state.questions.set(q.id, q));
    renderQuestions();
  });
  socket.on("question", upsertQuestion);
  socket.on("poll", upsertPoll);
  socket.on("likes", ({ total }) => showLikes(total));
  socket.on("presence", ({ viewers }) => { $("viewers").textContent = `${viewers} watching`; });
  socket.on("tip", addTip);
  socket.on("hand", ({ raised }) => showHand(raised));
  socket.on("muted", ({ user, until }) => {
    if (state.user && user === state.user.id) showError($("danmaku-error"), `You are muted until ${new Date(until).toLocaleTimeString()}.`);
  });
  socket.on("slow_mode", ({ seconds }) => {
    $("danmaku-text").placeholder = seconds ? `Slow mode: one message every ${seconds} s` : "Say something on screen";
  });
}

// ---------------------------------------------------------------- player and room state
async function startPlayer() {
  if (state.session || state.seatTaken || state.stopped || state.starting) return;
  state.starting = true;
  status("connecting", "Connecting to the live class…");
  try {
    const token = await accessToken(slug, "view");
    const session = await play(`/whep/${encodeURIComponent(slug)}`, el.video, { token });
    state.session = session;
    watchSession(session);
  } catch (err) {
    if (err.status === 402 || err.status === 403) return previewOver(err);
    status("error", `Could not play: ${describe(err)}`);
    showActions({ reconnect: true });
    state.stopped = true;
  } finally {
    state.starting = false;
  }
}

function watchSession(session) {
  const pc = session.pc;
  const update = () => {
    if (state.session !== session) return;
    if (pc.connectionState === "failed" || pc.connectionState === "closed") sessionEnded(session);
    else showPhase();
  };
  pc.addEventListener("connectionstatechange", update);
  pc.addEventListener("iceconnectionstatechange", () => {
    if (pc.iceConnectionState === "closed" || pc.iceConnectionState === "failed") update();
  });
}

function stopPlayer() {
  const session = state.session;
  state.session = null;
  if (session) session.stop();
  el.video.srcObject = null;
}

/** The server ended our WHEP session: the seat went to another device, the preview ended,
 * a refund, or the network. The Socket.IO `kicked` event tells which (it may come a
 * moment later than the WebRTC close). */
async function sessionEnded(session) {
  if (state.session !== session) return;
  state.session = null;
  session.stop();
  el.video.srcObject = null;
  const deadline = Date.now() + KICK_GRACE_MS;
  while (!state.kicked && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (state.seatTaken || state.stopped) return;
  if (state.previewUntil && Date.now() / 1000 >= state.previewUntil - 1) return previewOver();
  state.stopped = true;
  status("error", "The video stopped.");
  showActions({ reconnect: true });
}

function refunded() {
  state.stopped = true;
  state.owned = state.owned.filter((kind) => kind !== "ticket");
  stopPlayer();
  if (state.socket) state.socket.disconnect();
  leaveLive();
  status("refunded", "Your ticket is no longer valid (refunded).");
  showBuy();
}

async function seatTaken() {
  if (state.seatTaken) return;
  state.seatTaken = true;
  stopPlayer();
  if (state.socket) state.socket.disconnect();
  // An older server says seat_taken for a refund too: check what we own now.
  try {
    const body = await api(`/api/catalog/${encodeURIComponent(slug)}`);
    state.owned = body.owned || [];
  } catch {
    /* keep what we knew */
  }
  leaveLive();
  if (!hasTicket() && !state.previewUntil) {
    status("refunded", "Your ticket is no longer valid (refunded).");
    showBuy();
    return;
  }
  status("seat-taken", "Your ticket is in use on another device.");
  showActions({ takeSeat: true });
  el.takeSeat.focus();
}

function previewOver(err) {
  if (state.stopped && el.status.dataset.state === "preview-over") return;
  state.stopped = true;
  stopPlayer();
  if (state.socket) state.socket.disconnect();
  status("preview-over", err && err.status === 403 && hasTicket() ? describe(err) : "Your free preview is over — buy a ticket to keep watching.");
  el.previewLeft.hidden = true;
  leaveLive();
  showBuy("preview-over");
}

/** The live part is over for this page (seat taken, refund, preview over): hide it and
 * bring the status line and its action into view. */
function leaveLive() {
  el.stage.hidden = true;
  el.controls.hidden = true;
  el.side.hidden = true;
  el.status.scrollIntoView({ block: "nearest" });
}

function showActions({ takeSeat = false, reconnect = false } = {}) {
  el.takeSeat.hidden = !takeSeat;
  el.reconnect.hidden = !reconnect;
  el.actions.hidden = !(takeSeat || reconnect || !el.replayLink.hidden);
}

function playing() {
  return state.session && el.video.videoWidth > 0 && state.session.pc.connectionState === "connected";
}

/** Put the status line in line with the room's phase and our player. */
function showPhase() {
  if (state.seatTaken || state.stopped) return;
  switch (state.phase) {
    case "live":
      if (playing()) status("playing", "Live");
      else status("connecting", "Connecting to the live class…");
      break;
    case "reconnecting":
      status("reconnecting", "The creator is reconnecting…");
      break;
    case "ended":
      status("ended", state.recording ? "Ended — the replay is ready." : "Ended — replay processing.");
      break;
    default: {
      const left = state.room.starts_at && countdown(state.room.starts_at);
      status("idle", left ? `Not live yet — starts in ${left}.` : "Not live yet.");
    }
  }
}

async function findReplay() {
  try {
    const { recordings } = await api(`/api/recordings?room=${encodeURIComponent(slug)}`);
    // the replay of the broadcast that just ended, else the newest ready one
    const wanted = state.endedBroadcast;
    const ready = (recordings || []).find((r) => r.status === "ready" && (!wanted || r.id === wanted));
    state.recording = ready || null;
  } catch {
    state.recording = null; // no recordings API on this server (404), or not allowed
  }
  el.replayLink.hidden = !state.recording;
  if (state.recording) {
    el.replayLink.href = state.recording.replay_url || `/static/replay.html?recording=${encodeURIComponent(state.recording.id)}`;
    el.actions.hidden = false;
  }
}

let lastReplayCheck = 0;

async function pollRoom() {
  if (state.seatTaken || state.stopped) return;
  try {
    const stats = await api(`/api/rooms/${encodeURIComponent(slug)}`);
    const phase = stats.phase || (stats.live ? "live" : "idle");
    state.endedBroadcast = stats.ended_broadcast || null;
    const changed = phase !== state.phase;
    state.phase = phase;
    if (phase === "live" || phase === "reconnecting") startPlayer();
    if (phase === "ended" || phase === "idle") stopPlayer();
    // while the replay of the broadcast that just ended is being prepared, look often
    const every = phase === "ended" && !state.recording ? 3000 : 15000;
    if ((changed && phase === "ended") || (phase !== "live" && Date.now() - lastReplayCheck > every)) {
      lastReplayCheck = Date.now();
      await findReplay();
    }
  } catch (err) {
    if (!state.session) status("error", `Could not reach the server: ${describe(err)}`);
    return;
  }
  showPhase();
}

function previewTick() {
  if (!state.previewUntil || state.stopped || state.seatTaken) return;
  const left = Math.max(0, Math.ceil(state.previewUntil - Date.now() / 1000));
  el.previewLeft.hidden = false;
  el.previewLeft.textContent = `Free preview: ${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")} left.`;
}

/** With a ticket (or free room, creator, preview): the player and the interaction panels. */
async function enterLive({ preview = false } = {}) {
  if (preview) {
    const minted = await api(`/api/rooms/${encodeURIComponent(slug)}/tokens`, { method: "POST", body: { scope: "view" } });
    state.previewUntil = minted.preview_until;
  }
  el.buy.hidden = !preview;
  el.previewButton.hidden = true;
  el.stage.hidden = false;
  el.controls.hidden = false;
  el.side.hidden = false;
  setupOverlay();
  connectSocket();
  await pollRoom();
  setInterval(pollRoom, STATUS_POLL_MS);
  setInterval(() => { if (state.phase === "idle") showPhase(); previewTick(); }, 1000);
}

// ---------------------------------------------------------------- start
function wire() {
  el.buyForm.addEventListener("submit", buyTicket);
  el.coupon.addEventListener("input", () => clearError(el.buyError));
  el.previewButton.addEventListener("click", async () => {
    el.previewButton.disabled = true;
    try {
      await enterLive({ preview: true });
    } catch (err) {
      showError(el.buyError, err);
      el.previewButton.disabled = false;
    }
  });
  el.takeSeat.addEventListener("click", () => location.reload());
  el.reconnect.addEventListener("click", () => {
    state.stopped = false;
    showActions();
    pollRoom();
  });
  $("danmaku-form").addEventListener("submit", sendDanmaku);
  $("danmaku-toggle").addEventListener("click", () => { prefs.enabled = !prefs.enabled; applyToggle(); });
  $("danmaku-density").addEventListener("change", (e) => { prefs.density = e.target.value; });
  $("block-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("block-word");
    const word = input.value.trim().toLowerCase();
    if (word && !prefs.blocked.includes(word)) prefs.blocked = [...prefs.blocked, word];
    input.value = "";
    renderBlocklist();
  });
  $("ask-form").addEventListener("submit", ask);
  $("question-paid").addEventListener("change", (e) => { $("question-amount").disabled = !e.target.checked; });
  $("tip-form").addEventListener("submit", sendTip);
  $("like").addEventListener("click", like);
  $("hand").addEventListener("click", toggleHand);
  el.video.addEventListener("resize", showPhase);
  el.video.addEventListener("playing", showPhase);
  addEventListener("pagehide", () => { if (state.session) state.session.stop({ keepalive: true }); });
  setInterval(() => { if (pending.size) settlePending(); }, ORDER_POLL_MS);
}

async function main() {
  wire();
  state.user = await siteHeader();
  if (!/^[a-z0-9][a-z0-9_-]{0,63}$/.test(slug)) {
    status("error", "No such room.");
    return;
  }
  let body;
  try {
    body = await api(`/api/catalog/${encodeURIComponent(slug)}`);
  } catch (err) {
    status("error", err.status === 404 ? "No such room." : `Could not load the room: ${describe(err)}`);
    return;
  }
  state.room = body.room;
  state.owned = body.owned || [];
  state.testMode = body.test_mode === true;
  renderAbout();
  if (param("popup") === "1") { // the checkout popup came back here: nothing to watch in it
    status("ready", "Payment done. You can close this window.");
    if (window.opener) setTimeout(() => window.close(), 500);
    return;
  }
  await orderFromUrl();
  if (!state.user) {
    status("needs-login", "Log in to watch this class.");
    showBuy();
    findReplay();
    return;
  }
  if (!hasTicket()) {
    status("needs-ticket", "A ticket is needed to watch this class.");
    showBuy();
    findReplay();
    return;
  }
  await enterLive();
}

main().catch((err) => status("error", describe(err)));
