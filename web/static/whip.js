import { errorText, t } from "./i18n.js";
// WHIP (publish) and WHEP (play) over RTCPeerConnection, no dependencies.
//
// The offer is sent as soon as it is made, with the candidates gathered by then (usually
// none): a browser takes 100 ms or more to gather even on one network, and a viewer's host
// candidates are mDNS names the server cannot use at once anyway. The candidates, and the
// end of gathering, are trickled to the session with PATCH `application/trickle-ice-sdpfrag`
// (RFC 9725 section 4.3.1). ICE does not wait for them: the browser's checks reach the
// server's candidates (in its answer) and the server learns the browser's address from
// them. A server without trickle (405/422/501) simply gets no candidates beyond the offer.
// Errors carry the server's message, HTTP status and code.
//
//   const session = await publish("/whip/demo", streamKey, mediaStream, {videoCodec: "H264"});
//   const session = await play("/whep/demo", videoElement);
//   session.pc.connectionState ...; await session.stop();
//
// `token` (publish's second argument, play's option) may be a promise of the token, so
// minting it overlaps making the offer instead of coming before it.

/** PATCH answers that mean "this server takes no trickled candidates": stop sending them. */
const NO_TRICKLE = new Set([405, 422, 501]);

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
  constructor(pc, location, token, trickle = null) {
    this.pc = pc;
    this.location = location;
    this._token = token;
    this._trickle = trickle;
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
    if (this._trickle) this._trickle.stop();
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

/** The offer's ICE credentials and its m-lines by mid, for trickle fragments. */
function iceFrame(sdp) {
  const lines = sdp.split(/\r?\n/);
  const ufrag = lines.find((l) => l.startsWith("a=ice-ufrag:"));
  const pwd = lines.find((l) => l.startsWith("a=ice-pwd:"));
  const mlines = new Map();
  let mline = null;
  for (const line of lines) {
    if (line.startsWith("m=")) mline = line;
    else if (line.startsWith("a=mid:") && mline) mlines.set(line.slice(6).trim(), mline);
  }
  return { head: [ufrag, pwd].filter(Boolean), mlines };
}

/**
 * The browser's ICE candidates that are not in the offer: collected from before the offer
 * is made, sent to the session once it exists (`start()`), in order, one PATCH at a time.
 */
class Trickle {
  constructor(pc) {
    this.pc = pc;
    this._pending = [];
    this._ended = false; // gathering is complete and the session has not been told
    this._target = null;
    this._busy = false;
    this._off = false;
    this._onCandidate = (event) => {
      const candidate = event.candidate;
      if (candidate && candidate.candidate) this._pending.push(candidate);
      else this._ended = true;
      this._flush();
    };
    pc.addEventListener("icecandidate", this._onCandidate);
  }

  /** The offer `sdp` went out: what it carries is not sent again. */
  offered(sdp) {
    this._inOffer = new Set(sdp.split(/\r?\n/).filter((l) => l.startsWith("a=candidate:")));
    this._frame = iceFrame(sdp);
  }

  /** The session exists: send what is pending and whatever comes next. */
  start(location, etag, token) {
    if (!location) return this.stop();
    this._target = { location, etag, token };
    this._flush();
  }

  stop() {
    this._off = true;
    this._pending = [];
    this.pc.removeEventListener("icecandidate", this._onCandidate);
  }

  _fragment(candidates, end) {
    const { head, mlines } = this._frame;
    const mids = [...mlines.keys()];
    const byMid = new Map();
    for (const c of candidates) {
      const mid = c.sdpMid ?? mids[c.sdpMLineIndex ?? 0];
      if (!mlines.has(mid) || this._inOffer.has(`a=${c.candidate}`)) continue;
      if (!byMid.has(mid)) byMid.set(mid, []);
      byMid.get(mid).push(`a=${c.candidate}`);
    }
    if (end && !byMid.size && mids.length) byMid.set(mids[0], []);
    const lines = [...head];
    for (const [mid, found] of byMid) lines.push(mlines.get(mid), `a=mid:${mid}`, ...found);
    if (end) lines.push("a=end-of-candidates");
    return byMid.size ? lines.join("\r\n") + "\r\n" : null;
  }

  async _flush() {
    while (this._target && !this._busy && !this._off && (this._pending.length || this._ended)) {
      const candidates = this._pending.splice(0);
      const end = this._ended;
      this._ended = false;
      const body = this._fragment(candidates, end);
      if (body === null) continue;
      const { location, etag, token } = this._target;
      const headers = { "Content-Type": "application/trickle-ice-sdpfrag" };
      if (etag) headers["If-Match"] = etag;
      if (token) headers["Authorization"] = `Bearer ${token}`;
      this._busy = true;
      try {
        const response = await fetch(location, { method: "PATCH", headers, body });
        if (NO_TRICKLE.has(response.status)) this.stop();
        else if (!response.ok) throw await errorFrom(response);
      } catch (err) {
        console.warn("trickling ICE candidates failed; the offer's candidates remain", err);
        this.stop();
      } finally {
        this._busy = false;
      }
      if (end) this.stop();
    }
  }
}

async function errorFrom(response) {
  let message = `${response.status} ${response.statusText}`.trim();
  let code = "";
  try {
    const text = await response.text();
    try {
      const body = JSON.parse(text);
      if (body && body.error) {
        code = String(body.error.code ?? "");
        message = errorText(code, String(body.error.message ?? message));
      }
    } catch {
      if (text.trim()) message = text.trim().slice(0, 500);
    }
  } catch {
    // no body
  }
  return new WhipError(message, response.status, code);
}

/**
 * Offer, POST, answer, then trickle. `token` (a string, null, or a promise of either, its
 * rejection already handled: handleEarly) is awaited once the offer is made, so minting it
 * overlaps making the offer. `signal` (an AbortSignal, optional) abandons the negotiation: it
 * rejects with the signal's reason, and a session the POST made meanwhile is deleted.
 */
async function negotiate(url, pc, token, signal = null) {
  const trickle = new Trickle(pc);
  try {
    await pc.setLocalDescription(await pc.createOffer());
    const bearer = await token;
    signal?.throwIfAborted();
    const headers = { "Content-Type": "application/sdp" };
    if (bearer) headers["Authorization"] = `Bearer ${bearer}`;
    const offer = pc.localDescription.sdp;
    trickle.offered(offer);
    let response;
    try {
      // Not aborted with `signal`: once the offer is out the server may make the session,
      // and only a DELETE to the Location of its answer ends it.
      response = await fetch(url, { method: "POST", headers, body: offer });
    } catch (err) {
      throw new WhipError(t("whip.unreachable", { error: err.message }));
    }
    if (response.status !== 201) throw await errorFrom(response);
    const header = response.headers.get("Location");
    const location = header ? new URL(header, response.url || url).href : null;
    const answer = await response.text();
    const session = new Session(pc, location, bearer, trickle);
    try {
      signal?.throwIfAborted();
      await pc.setRemoteDescription({ type: "answer", sdp: answer });
      signal?.throwIfAborted();
    } catch (err) {
      await session.stop();
      signal?.throwIfAborted();
      throw new WhipError(t("whip.bad_answer", { error: err.message }));
    }
    trickle.start(location, response.headers.get("ETag"), bearer);
    return session;
  } catch (err) {
    trickle.stop();
    signal?.throwIfAborted(); // the peer connection closed by the abort fails whatever was under way
    throw err;
  }
}

/**
 * Handle a token promise from the first line of publish() and play(): one refused (402, 403)
 * while the offer is still being made, or one never awaited because the peer connection
 * failed first, would otherwise be an "unhandled rejection"; `await token` still rethrows it.
 */
function handleEarly(token) {
  Promise.resolve(token).catch(() => {});
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
  handleEarly(token);
  const pc = new RTCPeerConnection({ iceServers, bundlePolicy: "max-bundle" });
  try {
    const video = stream.getVideoTracks()[0];
    const audio = stream.getAudioTracks()[0];
    if (!video && !audio) throw new WhipError(t("whip.no_tracks"));
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

/**
 * Play the WHEP endpoint `url` into `videoElement` (video and audio). Aborting `signal` (an
 * AbortSignal, optional) while this is under way closes the peer connection at once, takes
 * its stream off the element, deletes the session if the server made one, and rejects with
 * the signal's reason; once this resolved, `session.stop()` ends it.
 */
export async function play(url, videoElement, { iceServers = [], token = null, signal = null } = {}) {
  handleEarly(token);
  signal?.throwIfAborted();
  const pc = new RTCPeerConnection({ iceServers, bundlePolicy: "max-bundle" });
  // Our own stream for both tracks: a <video> plays one MediaStream, and this does not
  // depend on how (or whether) the answer groups the tracks with a=msid.
  const media = new MediaStream();
  const abandon = () => {
    pc.close();
    if (videoElement.srcObject === media) videoElement.srcObject = null;
  };
  pc.addEventListener("track", (event) => {
    if (signal?.aborted) return;
    media.addTrack(event.track);
    if (videoElement.srcObject !== media) videoElement.srcObject = media;
    videoElement.play().catch(() => {
      // Autoplay refused (unmuted playback without a user gesture): the controls remain.
    });
  });
  signal?.addEventListener("abort", abandon);
  try {
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addTransceiver("audio", { direction: "recvonly" });
    return await negotiate(url, pc, token, signal);
  } catch (err) {
    abandon();
    throw err;
  } finally {
    signal?.removeEventListener("abort", abandon);
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
    throw new WhipError(errorText(error.code, error.message) || `HTTP ${response.status}`, response.status, error.code);
  }
  return body.token;
}
