// A clip's page: the clip (HLS through hls.js) with its danmaku overlaid on the clip's own
// clock, a link to the room, and for a free teaser the share link and the embed code.
import { api, describe, param, setStatus, siteHeader } from "./ui.js";
import { formatDuration, t } from "./i18n.js";

const MODES = { scroll: "rtl", top: "top", bottom: "bottom" };
const clipId = param("clip", "");
const statusLine = document.getElementById("status");
const video = document.getElementById("video");
const stage = document.getElementById("stage");
let hls = null;
let danmaku = null;
let danmakuCount = 0;
window.stagepass = { get hls() { return hls; }, get danmaku() { return danmaku; }, get danmakuCount() { return danmakuCount; } };

async function main() {
  siteHeader();
  let clip;
  try {
    clip = await api(`/api/clips/${encodeURIComponent(clipId)}`);
  } catch (err) {
    setStatus(statusLine, "error", err.status === 404 ? t("clip.not_found") : describe(err));
    return;
  }
  document.title = `Stagepass — ${clip.title || clip.room_title}`;
  document.getElementById("title").textContent = clip.title || `A clip of ${clip.room_title}`;
  document.getElementById("meta").textContent =
    `${clip.room_title} · ${formatDuration(clip.duration_ms / 1000)}${clip.teaser ? ` · ${t("common.free_lower")}` : ""}`;
  document.getElementById("room-link").href = `/static/room.html?room=${encodeURIComponent(clip.room)}`;
  if (clip.teaser) {
    const share = document.getElementById("share-link");
    share.href = `/share/clip/${clip.id}`;
    share.hidden = false;
    document.getElementById("embed-code").value =
      `<iframe src="${location.origin}/embed/clip/${clip.id}" width="640" height="400" allowfullscreen></iframe>`;
    document.getElementById("embed").hidden = false;
  }
  stage.hidden = false;
  document.getElementById("controls").hidden = false;
  danmaku = new Danmaku({ container: stage, media: video, comments: [], engine: "dom" });
  const toggle = document.getElementById("danmaku-toggle");
  toggle.addEventListener("change", () => (toggle.checked ? danmaku.show() : danmaku.hide()));
  new ResizeObserver(() => danmaku && danmaku.resize()).observe(stage);
  try {
    const { items } = await api(`/api/clips/${clip.id}/danmaku`);
    for (const item of items) {
      danmaku.emit({ text: item.text, mode: MODES[item.mode] || "rtl", time: item.t_ms / 1000,
                     style: { fontSize: "22px", color: item.color, textShadow: "0 0 3px #000", fontWeight: "600" } });
    }
    danmakuCount = items.length;
    document.getElementById("danmaku-count").textContent = `${items.length} danmaku`;
  } catch (err) {
    console.warn("danmaku", describe(err));
  }
  if (window.Hls && Hls.isSupported()) {
    hls = new Hls();
    hls.on(Hls.Events.ERROR, (_, data) => {
      if (data.fatal) setStatus(statusLine, "error", t("common.playback_failed", { details: data.details }));
    });
    hls.loadSource(clip.playlist_url);
    hls.attachMedia(video);
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = clip.playlist_url;
  } else {
    setStatus(statusLine, "error", t("common.no_hls"));
    return;
  }
  video.addEventListener("loadedmetadata", () => setStatus(statusLine, "ready", "Ready"), { once: true });
  video.addEventListener("playing", () => setStatus(statusLine, "playing", "Playing"));
}

main();
