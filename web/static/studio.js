// The creator's page: camera preview, then WHIP publishing to /whip/<room>.
import { accessToken, publish } from "./whip.js";

const form = document.getElementById("publish-form");
const roomInput = document.getElementById("room");
const keyInput = document.getElementById("key");
const goLiveButton = document.getElementById("golive");
const stopButton = document.getElementById("stop");
const statusLine = document.getElementById("status");
const preview = document.getElementById("preview");

let camera = null; // MediaStream
let session = null; // whip.js Session

// For debugging and tests: the current session, read-only.
window.stagepass = { get session() { return session; } };

const params = new URLSearchParams(location.search);
if (params.get("room")) roomInput.value = params.get("room");

function setStatus(state, text) {
  statusLine.dataset.state = state;
  statusLine.textContent = text; // never innerHTML: the text may come from the server
}

function describe(err) {
  if (err && err.name === "NotAllowedError") return "camera or microphone access was denied";
  if (err && err.name === "NotFoundError") return "no camera or microphone found";
  const message = (err && err.message) || String(err);
  return err && err.status ? `${message} (HTTP ${err.status})` : message;
}

function setLive(on) {
  roomInput.disabled = on;
  keyInput.disabled = on;
  goLiveButton.disabled = on;
  stopButton.disabled = !on;
}

async function ensureCamera() {
  if (camera && camera.getTracks().some((t) => t.readyState === "live")) return camera;
  if (!navigator.mediaDevices?.getUserMedia) {
    throw new Error("this page needs a secure context (https or localhost) for the camera");
  }
  camera = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
  preview.srcObject = camera;
  return camera;
}

function watch(current) {
  const pc = current.pc;
  const update = () => {
    if (session !== current) return;
    switch (pc.connectionState) {
      case "connected":
        setStatus("live", "live");
        break;
      case "disconnected":
        setStatus("connecting", "Connection interrupted, reconnecting…");
        break;
      case "failed":
        setStatus("error", "The connection to the server failed. You are not live.");
        session = null;
        current.stop();
        setLive(false);
        break;
    }
  };
  pc.addEventListener("connectionstatechange", update);
  update();
}

async function goLive(event) {
  event.preventDefault();
  if (session) return;
  if (!form.reportValidity()) return;
  setLive(true);
  setStatus("connecting", "Connecting…");
  try {
    const stream = await ensureCamera();
    const room = roomInput.value.trim();
    const url = `/whip/${encodeURIComponent(room)}`;
    // A stream key (OBS-style), or else the logged-in creator's own publish token.
    const token = keyInput.value.trim() || (await accessToken(room, "publish"));
    const current = await publish(url, token, stream, { videoCodec: "H264" });
    session = current;
    watch(current);
  } catch (err) {
    session = null;
    setLive(false);
    setStatus("error", `Could not go live: ${describe(err)}`);
  }
}

async function stop() {
  const current = session;
  session = null;
  setLive(false);
  if (current) await current.stop();
  setStatus("stopped", "Stopped. You are not live.");
}

form.addEventListener("submit", goLive);
stopButton.addEventListener("click", stop);
// Leave the room cleanly when the tab closes or navigates away.
addEventListener("pagehide", () => {
  if (session) session.stop({ keepalive: true });
});

ensureCamera().catch((err) => setStatus("error", `Camera preview unavailable: ${describe(err)}`));
