// The viewer's page: WHEP playback of /whep/<room>.
import { followRendition } from "./rendition.js";
import { accessToken, play } from "./whip.js";
import { t } from "./i18n.js";
import { mountWatermark } from "./watermark.js";

const form = document.getElementById("play-form");
const roomInput = document.getElementById("room");
const playButton = document.getElementById("play");
const stopButton = document.getElementById("stop");
const statusLine = document.getElementById("status");
const video = document.getElementById("video");

let session = null;
let watermark = null; // { stop() } of the paid room's watermark while playing
let starting = null; // the AbortController of the play() under way; stop() aborts it

window.stagepass = { get session() { return session; } };

const params = new URLSearchParams(location.search);
roomInput.value = params.get("room") || "demo";

function setStatus(state, text) {
  statusLine.dataset.state = state;
  statusLine.textContent = text; // never innerHTML: the text may come from the server
}

function setPlaying(on) {
  roomInput.disabled = on;
  playButton.disabled = on;
  stopButton.disabled = !on;
}

function describe(err) {
  const message = (err && err.message) || String(err);
  return err && err.status ? `${message} (HTTP ${err.status})` : message;
}

function showPicture() {
  if (session && video.videoWidth > 0 && session.pc.connectionState === "connected") {
    setStatus("playing", "playing");
  }
}
video.addEventListener("resize", showPicture);
video.addEventListener("playing", showPicture);

function watch(current) {
  const pc = current.pc;
  const update = () => {
    if (session !== current) return;
    switch (pc.connectionState) {
      case "connected":
        setStatus("connected", t("watch.connected_waiting"));
        showPicture();
        break;
      case "disconnected":
        setStatus("connecting", t("watch.reconnecting"));
        break;
      case "failed":
        setStatus("error", t("watch.connection_failed"));
        session = null;
        current.stop();
        setPlaying(false);
        break;
    }
  };
  pc.addEventListener("connectionstatechange", update);
  update();
}

async function start(event) {
  if (event) event.preventDefault();
  if (session) return;
  if (!form.reportValidity()) return;
  setPlaying(true);
  setStatus("connecting", t("watch.connecting"));
  const mine = new AbortController();
  starting = mine;
  try {
    const room = roomInput.value.trim();
    const url = `/whep/${encodeURIComponent(room)}`;
    // Paid rooms need a view token minted with the viewer's login; open rooms need none.
    // Not awaited here: play() makes its offer meanwhile and waits for the token at the POST.
    const token = accessToken(room, "view");
    // Stop pressed while this connects aborts it: play() closes the peer connection and
    // deletes a session the server made meanwhile.
    const current = await play(url, video, { token, signal: mine.signal });
    if (mine.signal.aborted) return void current.stop(); // stopped in the moment play() resolved
    session = current;
    watch(current);
    followRendition(current, document.getElementById("rendition"), () => session === current);
    watermarkFor(room, current);
  } catch (err) {
    if (mine.signal.aborted) return; // stopped meanwhile: its failure is no news
    session = null;
    setPlaying(false);
    setStatus("error", t("room.could_not_play", { error: describe(err) }));
  } finally {
    if (starting === mine) starting = null;
  }
}

/** A paid room's per-viewer watermark over the player, while `current` plays. */
async function watermarkFor(room, current) {
  let body = null; // open rooms are not in the catalog
  try {
    const response = await fetch(`/api/catalog/${encodeURIComponent(room)}`, { credentials: "same-origin" });
    if (response.ok) body = await response.json();
  } catch {
    // unreachable, or the body was cut off (the page is going away): no watermark to show
  }
  if (!body || !body.watermark || session !== current) return;
  watermark = mountWatermark(document.getElementById("stage"), body.watermark.label, video);
}

async function stop() {
  if (starting) starting.abort();
  starting = null;
  const current = session;
  session = null;
  if (watermark) watermark.stop();
  watermark = null;
  setPlaying(false);
  if (current) await current.stop();
  video.srcObject = null;
  setStatus("stopped", t("watch.stopped"));
}

form.addEventListener("submit", start);
stopButton.addEventListener("click", stop);
addEventListener("pagehide", () => {
  if (session) session.stop({ keepalive: true });
});

if (params.get("room") && params.get("autoplay") === "1") start();
