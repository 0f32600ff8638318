// WHIP (publish) and WHEP (play) over RTCPeerConnection, no dependencies.
//
// The Stagepass server does not take trickled ICE candidates, so the offer is sent once
// ICE gathering has completed. Errors carry the server's message, HTTP status and code.
//
//   const session = await publish("/whip/demo", streamKey, mediaStream, {videoCodec: "H264"});
//   const session = await play("/whep/demo", videoElement);
//   session.pc.connectionState ...; await session.stop();

const GATHERING_TIMEOUT_MS = 5000;

/** An HTTP or negotiation failure; `status` is the HTTP status (0 if none), `code` the server's. */
export class WhipError extends Error {
  constructor(message, status = 0, code = "") {
    super(message);
    this.name = "WhipError";
    this.status = status;
    this.code = code;
  }
}

/** A WHIP/WHEP session: the peer connection, the session URL and `stop()`. */
export class Session {
  constructor(pc, location, token) {
    this.pc = pc;
    this.location = location;
    this._token = token;
    this._stopped = false;
  }

  get stopped() {
    return this._stopped;
  }

  /**
   * DELETE the session resource and close the peer connection; idempotent.
   * `keepalive: true` lets the request outlive the page (use it on pagehide).
   * `token`: a fresh token for the DELETE (the server checks it again, and a minted
   * access token expires after a few minutes); default: the one the session began with.
   */
  async stop({ keepalive = false, token = null } = {}) {
    if (this._stopped) return;
    this._stopped = true;
    const headers = {};
    const bearer = token || this._token;
    if (bearer) headers["Authorization"] = `Bearer ${bearer}`;
    const request = this.location
      ? fetch(this.location, { method: "DELETE", headers, keepalive }).catch(() => null)
      : Promise.resolve(null);
    this.pc.close();
    if (!keepalive) await request;
  }
}

function waitForIceGathering(pc, timeoutMs = GATHERING_TIMEOUT_MS) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    };
    const check = () => {
      if (pc.iceGatheringState === "complete") done();
    };
    // Send what has been gathered if gathering stalls (an unreachable STUN/TURN server).
    const timer = setTimeout(done, timeoutMs);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

async function errorFrom(response) {
  let message = `${response.status} ${response.statusText}`.trim();
  let code = "";
  try {
    const text = await response.text();
    try {
      const body = JSON.parse(text);
      if (body && body.error) {
        message = String(body.error.message ?? message);
        code = String(body.error.code ?? "");
      }
    } catch {
      if (text.trim()) message = text.trim().slice(0, 500);
    }
  } catch {
    // no body
  }
  return new WhipError(message, response.status, code);
}

async function negotiate(url, pc, token) {
  await pc.setLocalDescription(await pc.createOffer());
  await waitForIceGathering(pc);
  const headers = { "Content-Type": "application/sdp" };
  if (token) headers["Authorization"] = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(url, { method: "POST", headers, body: pc.localDescription.sdp });
  } catch (err) {
    throw new WhipError(`cannot reach the server: ${err.message}`);
  }
  if (response.status !== 201) throw await errorFrom(response);
  const header = response.headers.get("Location");
  const location = header ? new URL(header, response.url || url).href : null;
  const answer = await response.text();
  const session = new Session(pc, location, token);
  try {
    await pc.setRemoteDescription({ type: "answer", sdp: answer });
  } catch (err) {
    await session.stop();
    throw new WhipError(`unusable answer from the server: ${err.message}`);
  }
  return session;
}

function isCodec(codec, name) {
  return codec.mimeType.toLowerCase() === `video/${name.toLowerCase()}`;
}

/**
 * Sender codecs to offer, RTX last. "H264": H.264 (packetization-mode=1, the only mode
 * aiortc handles), then VP8 as a fallback. "VP8": VP8 only, since the server takes its own
 * first preference (H.264) among the codecs offered, whatever the offer's order.
 */
function videoCodecOrder(videoCodec) {
  const caps = (window.RTCRtpSender?.getCapabilities?.("video")?.codecs) ?? [];
  const h264 = caps.filter(
    (c) => isCodec(c, "H264") && /packetization-mode=1/.test(c.sdpFmtpLine ?? "")
  );
  const vp8 = caps.filter((c) => isCodec(c, "VP8"));
  const rtx = caps.filter((c) => isCodec(c, "rtx"));
  const ordered = videoCodec.toUpperCase() === "VP8" ? vp8 : [...h264, ...vp8];
  return ordered.length ? [...ordered, ...rtx] : [];
}

function preferCodec(transceiver, videoCodec) {
  if (typeof transceiver.setCodecPreferences !== "function") return;
  const codecs = videoCodecOrder(videoCodec);
  if (!codecs.length) return;
  try {
    transceiver.setCodecPreferences(codecs);
  } catch (err) {
    console.warn("setCodecPreferences failed; the browser's default codec order is used", err);
  }
}

/**
 * Publish `stream` (its first video and first audio track) to the WHIP endpoint `url`.
 * `videoCodec`: "H264" (default; VP8 when the browser has no H.264) or "VP8" (VP8 only).
 */
export async function publish(url, token, stream, { videoCodec = "H264", iceServers = [] } = {}) {
  const pc = new RTCPeerConnection({ iceServers, bundlePolicy: "max-bundle" });
  try {
    const video = stream.getVideoTracks()[0];
    const audio = stream.getAudioTracks()[0];
    if (!video && !audio) throw new WhipError("nothing to publish: the stream has no tracks");
    if (video) {
      const t = pc.addTransceiver(video, { direction: "sendonly", streams: [stream] });
      preferCodec(t, videoCodec);
    }
    if (audio) pc.addTransceiver(audio, { direction: "sendonly", streams: [stream] });
    return await negotiate(url, pc, token);
  } catch (err) {
    pc.close();
    throw err;
  }
}

/** Play the WHEP endpoint `url` into `videoElement` (video and audio). */
export async function play(url, videoElement, { iceServers = [], token = null } = {}) {
  const pc = new RTCPeerConnection({ iceServers, bundlePolicy: "max-bundle" });
  // Our own stream for both tracks: a <video> plays one MediaStream, and this does not
  // depend on how (or whether) the answer groups the tracks with a=msid.
  const media = new MediaStream();
  pc.addEventListener("track", (event) => {
    media.addTrack(event.track);
    if (videoElement.srcObject !== media) videoElement.srcObject = media;
    videoElement.play().catch(() => {
      // Autoplay refused (unmuted playback without a user gesture): the controls remain.
    });
  });
  try {
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addTransceiver("audio", { direction: "recvonly" });
    return await negotiate(url, pc, token);
  } catch (err) {
    pc.close();
    throw err;
  }
}

/**
 * Mint an access token for `room` with the logged-in user's session cookie
 * (`scope`: "view" or "publish"). Resolves to null when nobody is logged in, so open
 * rooms keep working without an account.
 */
export async function accessToken(room, scope) {
  const response = await fetch(`/api/rooms/${encodeURIComponent(room)}/tokens`, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ scope }),
  });
  if (response.status === 401 || response.status === 404) return null;
  let body = {};
  try {
    body = await response.json();
  } catch {
    /* not JSON */
  }
  if (!response.ok) {
    const error = body.error || {};
    throw new WhipError(error.message || `HTTP ${response.status}`, response.status, error.code);
  }
  return body.token;
}
