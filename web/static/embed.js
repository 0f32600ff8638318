// The embeddable player (/embed/clip/{id}, /embed/room/{room}): a free clip (HLS through
// hls.js) or the room's poster, its title, and the buy button that opens the room page.
const config = JSON.parse(document.body.dataset.config || "{}");
const video = document.getElementById("video");
const poster = document.getElementById("poster");
const buy = document.getElementById("buy");

document.getElementById("title").textContent = config.title || "";
buy.textContent = config.buy_label || "Watch";
buy.href = config.buy_url || "/";

if (config.playlist) {
  if (config.poster) video.poster = config.poster;
  if (window.Hls && Hls.isSupported()) {
    const hls = new Hls();
    hls.loadSource(config.playlist);
    hls.attachMedia(video);
    window.stagepass = { hls };
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = config.playlist;
  }
} else {
  video.hidden = true;
  if (config.poster) {
    poster.src = config.poster;
    poster.hidden = false;
  }
}
