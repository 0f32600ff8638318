#!/usr/bin/python3
"""A GStreamer ``webrtcbin`` WHIP publisher or WHEP player, as a creator's or viewer's
tool that nobody at Stagepass wrote would be: Debian's GStreamer 1.22, driven by the
*system* python3 (python3-gi), never by the project's virtualenv. Tests run it in a
subprocess (``tests/support/gst.py``); it imports nothing from the project.

    gst_whip_client.py publish URL --token KEY [--codec h264|vp8] [--mtu 1400] [--seconds 8]
    gst_whip_client.py play URL [--token T] [--seconds 6]

Non-trickle WHIP/WHEP (RFC 9725): create the offer, wait for ICE gathering to complete,
``POST`` it, apply the ``201`` answer, run for ``--seconds`` (or until SIGUSR1: the test
has seen what it needed), then ``DELETE`` the session. The publisher
sends numbered frames: frame n carries n as a 16-bit barcode of 20x20 blocks along the
top (the same code as ``tests/support/peers.py``), encoded by ``x264enc`` with its default
settings (AUDs on) through ``rtph264pay`` (``mtu=1400`` by default, GStreamer's own
default), or by ``vp8enc``; Opus audio beside it. The player decodes what it receives
and reads the barcodes back.

Everything it learns goes to stdout as JSON lines (``{"event": ...}``), ending with
``{"event": "summary", ...}``; diagnostics go to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import urljoin

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstWebRTC", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstApp", "1.0")
from gi.repository import GLib, Gst, GstApp, GstSdp, GstWebRTC  # noqa: E402

BITS = 16
BLOCK = 20
WIDTH, HEIGHT = BITS * BLOCK, 240
FPS = 30


def emit(event: str, **fields) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


_NOISE = os.urandom(WIDTH * (HEIGHT - 2 * BLOCK))


def barcode_frame(n: int) -> bytes:
    """An I420 frame: ``n`` as 16 black/white blocks along the top, a bar moving under it,
    and below that a field of noise, so that keyframes are large (many full-size packets,
    the IDR in many FU-A fragments) as a camera's are."""
    row = b"".join((b"\xeb" if (n >> (BITS - 1 - bit)) & 1 else b"\x10") * BLOCK for bit in range(BITS))
    bar = (n * 4) % (WIDTH - 40)
    line = b"\x50" * bar + b"\xc0" * 40 + b"\x50" * (WIDTH - 40 - bar)
    chroma = b"\x80" * (WIDTH * HEIGHT // 4)
    return row * BLOCK + line * BLOCK + _NOISE + chroma + chroma


def read_barcode(y_plane: bytes, stride: int, width: int) -> int:
    """The inverse of ``barcode_frame`` on a decoded luma plane (any scale)."""
    block = width // BITS
    n = 0
    for bit in range(BITS):
        total = count = 0
        for y in range(block // 4, block * 3 // 4, 2):
            base = y * stride + bit * block
            for x in range(block // 4, block * 3 // 4, 2):
                total += y_plane[base + x]
                count += 1
        n = (n << 1) | int(total / count > 128)
    return n


class WhipClient:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.loop = GLib.MainLoop()
        self.location: str | None = None
        self.status: int | None = None
        self.error: str | None = None
        self.states: list[str] = []
        self.frames = 0
        self.numbers: list[int] = []
        self.audio_buffers = 0
        self.sent_frames = 0
        self._stop = threading.Event()
        self._offered = False
        self.pipe = Gst.Pipeline.new("whip")
        self.webrtc = Gst.ElementFactory.make("webrtcbin", "webrtc")
        self.webrtc.set_property("bundle-policy", GstWebRTC.WebRTCBundlePolicy.MAX_BUNDLE)
        self.pipe.add(self.webrtc)
        self.webrtc.connect("notify::ice-gathering-state", self._on_gathering)
        self.webrtc.connect("notify::connection-state", self._on_connection_state)
        bus = self.pipe.get_bus()
        bus.add_signal_watch()
        bus.connect("message::error", self._on_error)

    # ------------------------------------------------------------ pipelines
    def _bin(self, description: str) -> Gst.Element:
        element = Gst.parse_bin_from_description(description, True)
        self.pipe.add(element)
        return element

    def build_publisher(self) -> None:
        a = self.args
        if a.codec == "h264":
            # x264enc with its defaults (aud=true, in-band SPS/PPS on IDRs); baseline caps
            # so any WebRTC peer can decode it (as OBS does)
            encode = (
                "x264enc ! video/x-h264,profile=constrained-baseline ! "
                f"rtph264pay mtu={a.mtu} aggregate-mode={a.aggregate} ! "
                "capsfilter caps=\"application/x-rtp,media=video,encoding-name=H264,payload=102,clock-rate=90000\""
            )
        else:
            encode = (
                "vp8enc deadline=1 keyframe-max-dist=300 ! "
                f"rtpvp8pay mtu={a.mtu} ! "
                "capsfilter caps=\"application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000\""
            )
        video = self._bin(
            f"appsrc name=frames is-live=true format=time do-timestamp=true "
            f"caps=\"video/x-raw,format=I420,width={WIDTH},height={HEIGHT},framerate={FPS}/1\" ! "
            f"queue ! {encode}"
        )
        video.link(self.webrtc)
        self.appsrc = video.get_by_name("frames")
        if a.audio:
            audio = self._bin(
                "audiotestsrc is-live=true wave=sine freq=440 volume=0.3 ! audioconvert ! "
                "audioresample ! queue ! opusenc ! rtpopuspay ! "
                "capsfilter caps=\"application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000\""
            )
            audio.link(self.webrtc)
        for t in self._transceivers():
            t.set_property("direction", GstWebRTC.WebRTCRTPTransceiverDirection.SENDONLY)

    def build_player(self) -> None:
        for caps in (
            "application/x-rtp,media=video,encoding-name=H264,payload=102,clock-rate=90000,"
            "packetization-mode=(string)1,profile-level-id=(string)42e01f",
            "application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000",
        ):
            self.webrtc.emit(
                "add-transceiver",
                GstWebRTC.WebRTCRTPTransceiverDirection.RECVONLY,
                Gst.Caps.from_string(caps),
            )
        self.webrtc.connect("pad-added", self._on_incoming_pad)

    def _transceivers(self) -> list:
        out, i = [], 0
        while True:
            t = self.webrtc.emit("get-transceiver", i)
            if t is None:
                return out
            out.append(t)
            i += 1

    def _on_incoming_pad(self, _webrtc, pad: Gst.Pad) -> None:
        if pad.direction != Gst.PadDirection.SRC:
            return
        decode = Gst.ElementFactory.make("decodebin")
        decode.connect("pad-added", self._on_decoded_pad)
        self.pipe.add(decode)
        decode.sync_state_with_parent()
        pad.link(decode.get_static_pad("sink"))

    def _on_decoded_pad(self, _decodebin, pad: Gst.Pad) -> None:
        caps = pad.get_current_caps() or pad.query_caps(None)
        name = caps.get_structure(0).get_name()
        if name.startswith("video"):
            sink = self._bin("videoconvert ! video/x-raw,format=I420 ! appsink name=sink emit-signals=true sync=false")
            sink.get_by_name("sink").connect("new-sample", self._on_video_sample)
        else:
            sink = self._bin("fakesink name=sink signal-handoffs=true sync=false")
            sink.get_by_name("sink").connect("handoff", self._on_audio_buffer)
        sink.sync_state_with_parent()
        pad.link(sink.get_static_pad("sink"))

    def _on_video_sample(self, appsink) -> Gst.FlowReturn:
        sample = appsink.emit("pull-sample")
        s = sample.get_caps().get_structure(0)
        width = s.get_value("width")
        ok, info = sample.get_buffer().map(Gst.MapFlags.READ)
        if ok:
            try:
                stride = (width + 3) & ~3
                self.numbers.append(read_barcode(bytes(info.data[: stride * (width // BITS)]), stride, width))
            finally:
                sample.get_buffer().unmap(info)
        self.frames += 1
        if self.frames == 1:
            emit("first_frame", width=width, height=s.get_value("height"), t=time.monotonic())
        if self.frames % FPS == 0:  # progress, for a test that ends the session once it has enough
            emit("played", frames=self.frames, audio_buffers=self.audio_buffers)
        return Gst.FlowReturn.OK

    def _on_audio_buffer(self, *_args) -> None:
        self.audio_buffers += 1

    # ------------------------------------------------------------ frames in
    def _push_frames(self) -> None:
        start = time.monotonic()
        n = 0
        while not self._stop.is_set():
            due = start + n / FPS
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            buf = Gst.Buffer.new_wrapped(barcode_frame(self.args.start + n))
            if self.appsrc.emit("push-buffer", buf) != Gst.FlowReturn.OK:
                break
            n += 1
            self.sent_frames = n

    # ------------------------------------------------------------ signalling
    def start(self) -> None:
        self.webrtc.connect("on-negotiation-needed", self._on_negotiation_needed)
        self.pipe.set_state(Gst.State.PLAYING)
        if self.args.mode == "publish":  # caps reach webrtcbin (and the offer) with data
            threading.Thread(target=self._push_frames, daemon=True).start()

    def _on_negotiation_needed(self, *_args) -> None:
        if self._offered:
            return
        self._offered = True
        promise = Gst.Promise.new_with_change_func(self._on_offer, None, None)
        self.webrtc.emit("create-offer", None, promise)

    def _on_offer(self, promise: Gst.Promise, *_args) -> None:
        promise.wait()
        reply = promise.get_reply()
        offer = reply.get_value("offer") if reply is not None else None
        if offer is None:
            error = reply.get_value("error") if reply is not None else None
            emit("offer_failed", error=str(error))
            GLib.idle_add(self._finish)
            return
        self.webrtc.emit("set-local-description", offer, Gst.Promise.new())

    def _on_gathering(self, *_args) -> None:
        state = self.webrtc.get_property("ice-gathering-state")
        if state == GstWebRTC.WebRTCICEGatheringState.COMPLETE:
            GLib.idle_add(self._post_offer)

    def _post_offer(self) -> bool:
        offer = self.webrtc.get_property("local-description").sdp.as_text()
        headers = {"Content-Type": "application/sdp"}
        if self.args.token:
            headers["Authorization"] = f"Bearer {self.args.token}"
        request = urllib.request.Request(self.args.url, data=offer.encode(), headers=headers, method="POST")
        emit("offer", sdp=offer)
        try:
            with urllib.request.urlopen(request, timeout=15) as r:
                self.status = r.status
                answer = r.read().decode()
                self.location = urljoin(self.args.url, r.headers["Location"])
        except urllib.error.HTTPError as exc:
            self.status = exc.code
            self.error = exc.read().decode(errors="replace")
            emit("post", status=self.status, error=self.error)
            self.loop.quit()
            return False
        emit("post", status=self.status, location=self.location, answer=answer)
        ok, sdp = GstSdp.SDPMessage.new_from_text(answer)
        desc = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, sdp)
        self.webrtc.emit("set-remote-description", desc, Gst.Promise.new())
        GLib.timeout_add(int(self.args.seconds * 1000), self._finish)
        return False

    def _on_connection_state(self, *_args) -> None:
        state = self.webrtc.get_property("connection-state").value_nick
        self.states.append(state)
        emit("connection", state=state, t=time.monotonic())
        if state == "failed" and self.args.exit_on_failure:
            GLib.idle_add(self._finish)

    def _on_error(self, _bus, message) -> None:
        err, debug = message.parse_error()
        print(f"gstreamer error: {err.message} ({debug})", file=sys.stderr)
        emit("gst_error", message=err.message)

    def _finish(self) -> bool:
        self._stop.set()
        deleted = None
        if self.location:
            headers = {"Authorization": f"Bearer {self.args.token}"} if self.args.token else {}
            request = urllib.request.Request(self.location, headers=headers, method="DELETE")
            try:
                with urllib.request.urlopen(request, timeout=10) as r:
                    deleted = r.status
            except urllib.error.HTTPError as exc:
                deleted = exc.code
            except OSError as exc:
                print(f"DELETE failed: {exc}", file=sys.stderr)
        emit(
            "summary", status=self.status, error=self.error, location=self.location,
            delete_status=deleted, states=self.states, frames=self.frames,
            numbers=self.numbers, audio_buffers=self.audio_buffers, sent_frames=self.sent_frames,
        )
        self.loop.quit()
        return False

    def run(self) -> None:
        # finish now, the way a user ends a session early (``GstClient.finish``)
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGUSR1, self._finish)
        self.start()
        # a hard stop, in case signalling never completes
        GLib.timeout_add(int((self.args.seconds + 20) * 1000), self._finish)
        try:
            self.loop.run()
        finally:
            self.pipe.set_state(Gst.State.NULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("publish", "play"))
    parser.add_argument("url")
    parser.add_argument("--token")
    parser.add_argument("--codec", choices=("h264", "vp8"), default="h264")
    parser.add_argument("--mtu", type=int, default=1400)
    parser.add_argument("--aggregate", choices=("none", "zero-latency", "max-stap"), default="none",
                        help="rtph264pay aggregate-mode (none is its default; zero-latency puts "
                             "AUD, SPS and PPS in one STAP-A)")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--start", type=int, default=1000, help="number of the first frame")
    parser.add_argument("--no-audio", dest="audio", action="store_false")
    parser.add_argument("--exit-on-failure", action="store_true",
                        help="DELETE and exit as soon as the connection fails")
    args = parser.parse_args()
    Gst.init(None)
    client = WhipClient(args)
    if args.mode == "publish":
        client.build_publisher()
    else:
        client.build_player()
    client.run()


if __name__ == "__main__":
    main()
