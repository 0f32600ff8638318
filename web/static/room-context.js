// What every part of the room page shares: its elements, the room slug, the page state
// (window.stagepass exposes it to tests), and small helpers for status lines, amounts
// and Socket.IO acknowledgements.
import { describe, param, setStatus } from "./ui.js";

export const $ = (id) => document.getElementById(id);
export const el = {
  title: $("title"), schedule: $("schedule"), status: $("status"), actions: $("status-actions"),
  takeSeat: $("take-seat"), reconnect: $("reconnect"), replayLink: $("replay-link"),
  stage: $("stage"), video: $("video"), layer: $("danmaku-layer"), previewLeft: $("preview-left"),
  rendition: $("rendition"),
  controls: $("live-controls"), side: $("side"), buy: $("buy"), buyForm: $("buy-form"),
  buyButton: $("buy-button"), coupon: $("coupon"), buyError: $("buy-error"), previewButton: $("preview-button"),
  loginNeeded: $("login-needed"), loginToBuy: $("login-to-buy"),
};

export const slug = param("room", "");
export const state = {
  user: null, room: null, owned: [], testMode: false, access: null, previewUntil: null,
  socket: null, session: null, starting: null, phase: null, seatTaken: false, kicked: null, stopped: false,
  recording: null, endedBroadcast: null, likes: 0, handRaised: false, polls: new Map(), questions: new Map(),
};
window.stagepass = { state, get session() { return state.session; }, get socket() { return state.socket; } };

export function status(kind, text) {
  setStatus(el.status, kind, text);
}

export function showError(target, err) {
  target.hidden = false;
  setStatus(target, "error", typeof err === "string" ? err : describe(err));
}

export function clearError(target) {
  target.hidden = true;
  target.textContent = "";
}

export function setStatusText(target, text) {
  target.hidden = false;
  setStatus(target, "info", text);
}

export function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

function fractionDigits(currency) {
  return new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits;
}

/** "5.00" in the room's currency -> 500 minor units, or null. */
export function toMinor(text, currency) {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) return null;
  return Math.round(value * 10 ** fractionDigits(currency));
}

/** Emit a Socket.IO event and wait for its ack ({ok, ...} or {ok: false, error}). */
export function ack(event, payload) {
  const socket = state.socket;
  if (!socket || !socket.connected) return Promise.resolve({ ok: false, error: { code: "not_connected", message: "not connected to the room yet" } });
  return socket.timeout(5000).emitWithAck(event, payload).catch(() => ({ ok: false, error: { code: "timeout", message: "the server did not answer; try again" } }));
}

export function hasTicket() {
  const { user, room, owned } = state;
  return Boolean(user && room && (room.free || owned.includes("ticket") || user.id === room.creator_id || user.role === "admin"));
}

export function countdown(iso) {
  const left = Math.floor((Date.parse(iso) - Date.now()) / 1000);
  if (!(left > 0)) return null;
  const d = Math.floor(left / 86400);
  const hms = [Math.floor(left / 3600) % 24, Math.floor(left / 60) % 60, left % 60].map((n) => String(n).padStart(2, "0")).join(":");
  return d ? `${d} d ${hms}` : hms;
}
