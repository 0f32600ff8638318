// The studio's media side: camera/microphone choice, screen share, WHIP publishing and
// the connection-quality readout. No DOM of its own besides the preview <video>.
import { publish } from "./whip.js";
import { t } from "./i18n.js";

/** Camera, microphone and screen tracks, and the WHIP session that sends them. */
export class Broadcaster {
  /** `preview`: the muted <video> showing what is (or will be) sent. */
  constructor(preview) {
    this.preview = preview;
    this.camera = null; // MediaStreamTrack (video)
    this.microphone = null; // MediaStreamTrack (audio)
    this.screen = null; // MediaStreamTrack from getDisplayMedia, while sharing
    this.session = null; // whip.js Session while live
    this.onScreenEnded = () => {};
  }

  /** The video track being shown and sent: the screen while sharing, else the camera. */
  get videoTrack() {
    return this.screen || this.camera;
  }

  get live() {
    return this.session !== null;
  }

  /** Open the camera and microphone (the given devices, or the defaults); idempotent. */
  async open({ cameraId = "", microphoneId = "" } = {}) {
    if (!navigator.mediaDevices?.getUserMedia) {
      throw new Error(t("studio.secure_context"));
    }
    const alive = (t) => t && t.readyState === "live";
    if (alive(this.camera) && alive(this.microphone)) return;
    const stream = await navigator.mediaDevices.getUserMedia({
      video: cameraId ? { deviceId: { exact: cameraId } } : true,
      audio: microphoneId ? { deviceId: { exact: microphoneId } } : true,
    });
    this.camera = stream.getVideoTracks()[0] || null;
    this.microphone = stream.getAudioTracks()[0] || null;
    this._showPreview();
  }

  /** Cameras and microphones ({deviceId, label}); labels are known once permission is given. */
  async devices() {
    const all = await navigator.mediaDevices.enumerateDevices();
    const pick = (kind) => all.filter((d) => d.kind === kind && d.deviceId)
      .map((d, i) => ({ deviceId: d.deviceId, label: d.label || `${kind === "videoinput" ? t("studio.camera") : t("studio.microphone")} ${i + 1}` }));
    return { cameras: pick("videoinput"), microphones: pick("audioinput") };
  }

  /** The deviceId of the current camera / microphone ("" if unknown). */
  currentDevice(kind) {
    const track = kind === "video" ? this.camera : this.microphone;
    return (track && track.getSettings().deviceId) || "";
  }

  /** Switch to another camera or microphone, on the live connection too. */
  async useDevice(kind, deviceId) {
    const constraints = deviceId ? { deviceId: { exact: deviceId } } : true;
    const stream = await navigator.mediaDevices.getUserMedia(kind === "video" ? { video: constraints } : { audio: constraints });
    const track = kind === "video" ? stream.getVideoTracks()[0] : stream.getAudioTracks()[0];
    const old = kind === "video" ? this.camera : this.microphone;
    if (kind === "video") this.camera = track;
    else this.microphone = track;
    if (kind === "audio" || !this.screen) await this._send(kind, track);
    if (old && old !== track) old.stop();
    this._showPreview();
  }

  /** Share a screen or window instead of the camera (the browser asks which). */
  async startScreenShare() {
    if (this.screen) return;
    if (!navigator.mediaDevices?.getDisplayMedia) throw new Error(t("studio.no_screen_share"));
    const display = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: 30 }, audio: false });
    const track = display.getVideoTracks()[0];
    // The browser's own "Stop sharing" button ends the track: go back to the camera.
    track.addEventListener("ended", () => {
      if (this.screen !== track) return;
      // replaceTrack refuses if the connection closed meanwhile; the share is over either way
      this.stopScreenShare()
        .catch((err) => console.warn("back to the camera after screen sharing ended:", err))
        .finally(() => this.onScreenEnded());
    });
    this.screen = track;
    await this._send("video", track);
    this._showPreview();
  }

  /** Back to the camera (same connection, no renegotiation: RTCRtpSender.replaceTrack). */
  async stopScreenShare() {
    const screen = this.screen;
    if (!screen) return;
    this.screen = null;
    if (this.camera) await this._send("video", this.camera);
    screen.stop();
    this._showPreview();
  }

  /** Publish the current tracks to `url` with `token` (stream key or publish token). */
  async goLive(url, token) {
    const tracks = [this.videoTrack, this.microphone].filter(Boolean);
    this.session = await publish(url, token, new MediaStream(tracks), { videoCodec: "H264" });
    this._lastSample = null;
    return this.session;
  }

  /** End the broadcast: WHIP DELETE (with `token` if given, e.g. a freshly minted one). */
  async stop({ token = null, keepalive = false } = {}) {
    const session = this.session;
    this.session = null;
    if (session) await session.stop({ token, keepalive });
  }

  async _send(kind, track) {
    const pc = this.session?.pc;
    if (!pc || pc.connectionState === "closed") return;
    // The receiver's kind never changes, whatever track the sender carries (or none).
    const transceiver = pc.getTransceivers().find((t) => t.receiver.track.kind === kind);
    if (transceiver) await transceiver.sender.replaceTrack(track);
  }

  _showPreview() {
    const video = this.videoTrack;
    if (video) this.preview.srcObject = new MediaStream([video]);
  }

  /**
   * One connection-quality sample since the previous call: outbound bitrate (kbit/s),
   * frames per second, frame size, round-trip time (ms) and packet loss (%) as the
   * server's receiver reports it (remote-inbound-rtp). Null when not live.
   */
  async quality() {
    const pc = this.session?.pc;
    if (!pc) return null;
    const report = await pc.getStats();
    let bytes = 0;
    let video = null;
    let remote = null;
    let pair = null;
    report.forEach((s) => {
      if (s.type === "outbound-rtp") {
        bytes += s.bytesSent || 0;
        if (s.kind === "video") video = s;
      } else if (s.type === "remote-inbound-rtp" && s.kind === "video") {
        remote = s;
      } else if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") {
        pair = s;
      }
    });
    const now = performance.now();
    const last = this._lastSample;
    this._lastSample = { bytes, at: now };
    const kbps = last && now > last.at ? ((bytes - last.bytes) * 8) / (now - last.at) : null;
    let rttMs = null;
    if (remote && typeof remote.roundTripTime === "number") rttMs = remote.roundTripTime * 1000;
    else if (pair && typeof pair.currentRoundTripTime === "number") rttMs = pair.currentRoundTripTime * 1000;
    let lossPct = null;
    if (remote && typeof remote.fractionLost === "number") lossPct = remote.fractionLost * 100;
    else if (remote && video && video.packetsSent) lossPct = (100 * (remote.packetsLost || 0)) / video.packetsSent;
    return {
      kbps,
      fps: video?.framesPerSecond ?? null,
      width: video?.frameWidth ?? null,
      height: video?.frameHeight ?? null,
      rttMs,
      lossPct,
      limitation: video?.qualityLimitationReason ?? null,
    };
  }
}

/** A connection-quality sample as one line of text. */
export function describeQuality(q) {
  if (!q) return t("studio.connection_quality_not_live");
  const parts = [q.kbps === null ? t("studio.measuring") : t("studio.sending", { kbps: Math.round(q.kbps) })];
  if (q.fps !== null) parts.push(`${Math.round(q.fps)} fps`);
  if (q.width && q.height) parts.push(`${q.width}×${q.height}`);
  parts.push(q.rttMs === null ? "RTT —" : `RTT ${Math.round(q.rttMs)} ms`);
  parts.push(t("studio.loss_short", { loss: q.lossPct === null ? "—" : `${q.lossPct.toFixed(1)}%` }));
  if (q.limitation && q.limitation !== "none") parts.push(t("studio.limited_by", { reason: q.limitation }));
  return t("studio.connection_quality", { parts: parts.join(" · ") });
}
