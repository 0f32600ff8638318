// Behaviour events of the pages (POST /api/events): page visits and the replay heartbeat.
// Fire and forget: `keepalive` lets the last heartbeat leave with the page; a failure never
// reaches the viewer. The server joins them to the visitor cookie and the login.
// Also the recommendations ("for you", "viewers also bought") the pages show.
import { formatMoney, h } from "./ui.js";
import { t } from "./i18n.js";

export function report(event) {
  return fetch("/api/events", {
    method: "POST", credentials: "same-origin", keepalive: true,
    headers: { "Content-Type": "application/json" }, body: JSON.stringify(event),
  }).catch(() => null);
}

export function visited(page, room) {
  return report(room ? { kind: "page_visit", page, room } : { kind: "page_visit", page });
}

const HEARTBEAT_MS = 10_000;

// Reports the position in the replay every ~10 s while it plays, and when it pauses, ends
// or the page goes away; `resume` seeks to where this viewer left it last time.
export function trackReplay(video, room, recording) {
  const beat = () => report({ kind: "replay_progress", room, recording, t_ms: Math.floor(video.currentTime * 1000) });
  let timer = null;
  video.addEventListener("playing", () => { clearInterval(timer); timer = setInterval(beat, HEARTBEAT_MS); });
  for (const type of ["pause", "ended"]) {
    video.addEventListener(type, () => { clearInterval(timer); timer = null; beat(); });
  }
  addEventListener("pagehide", () => { if (timer) beat(); });
}

export async function resumePosition(recording) {
  try {
    const r = await fetch(`/api/me/replay-position/${recording}`, { credentials: "same-origin" });
    if (!r.ok) return null;
    return (await r.json()).t_ms;
  } catch {
    return null;
  }
}

// Fills the list of section `sectionId` with the rooms of `path` (GET /api/recommendations/...)
// and shows it; leaves it hidden when there is nothing to suggest or the request fails.
export async function suggest(sectionId, path) {
  const section = document.getElementById(sectionId);
  if (!section) return;
  try {
    const r = await fetch(path, { credentials: "same-origin" });
    if (!r.ok) return;
    const { rooms } = await r.json();
    if (!rooms.length) return;
    section.querySelector("ul").replaceChildren(...rooms.map((room) => h("li", { class: "suggestion", dataset: { suggested: room.slug } },
      h("a", { href: `/static/room.html?room=${encodeURIComponent(room.slug)}` }, room.title), " ",
      h("span", { class: "sub" }, room.ticket_price ? formatMoney(room.ticket_price, room.currency) : t("common.free_lower")))));
    section.hidden = false;
  } catch {
    // suggestions are optional: the page works without them
  }
}

// For the room's creator: the retention drop-offs of this session (live and replay) as
// marks on the replay's timeline (#drop-offs). Anyone else's request is refused: nothing shown.
export async function markDropOffs(room, recording, durationMs) {
  const strip = document.getElementById("drop-offs");
  try {
    const r = await fetch(`/api/creator/insight/rooms/${encodeURIComponent(room)}/sessions/${recording}`,
                          { credentials: "same-origin" });
    if (!r.ok) return;
    const one = await r.json();
    const drops = [...one.live.drop_offs.map((d) => ({ ...d, where: "live" })),
                   ...one.replay.drop_offs.map((d) => ({ ...d, where: "replay" }))];
    if (!drops.length) return;
    strip.replaceChildren(...drops.map((d) => h("span", {
      class: "drop-off", dataset: { t: d.t_ms }, title: t(d.where === "live" ? "insight.drop_live" : "insight.drop_replay", { percent: Math.round(d.drop * 100), minute: d.minute }),
      style: `left: ${Math.min(100, (100 * d.t_ms) / Math.max(1, durationMs))}%`,
    })));
    strip.hidden = false;
  } catch {
    // the marks are an extra for the creator
  }
}
