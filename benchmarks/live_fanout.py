"""Live fan-out benchmark: what one viewer costs Stagepass, and what it costs a naive relay.

Run from the repository root::

    .venv/bin/python benchmarks/live_fanout.py [--viewers 1,10,25,50,100,200]
        [--seconds 15] [--baseline-viewers 1,2,4] [--json results.json]

Every step (one viewer count on one server) runs with fresh processes:

* the server: Stagepass (``python -m stagepass.cli serve``) or the *baseline*, a stock
  aiortc relay in this file (``--baseline-server PORT``: decode the publisher,
  ``MediaRelay``, one encoding sender per viewer), which is what a newcomer builds first;
* one publisher process: synthetic 640x480 at 30 fps H.264 with a noisy band so the
  encoder really spends its (pinned) 1.5 Mbit/s, plus Opus, published over WHIP;
* viewer processes over WHEP: one *sample* viewer that decodes (``tests/peers.Viewer``)
  and checks that the frame numbers it reads back keep increasing, plus light viewers
  (up to 25 per process) that never decode: their receivers' ``_handle_rtp_packet`` only
  counts packets, bytes and frames (marker bits). A step with N viewers has the sample
  viewer and N-1 light ones; N=0 is the publisher alone (the idle reading).

Server CPU is the server process's own CPU time (its kernel CPU clock, the same count as
utime + stime in ``/proc/<pid>/stat`` at nanosecond resolution), sampled once a second
over a window that starts after every viewer receives video and a warm-up; CPU % is the
median of those one-second slices. Stagepass viewers connect *before* the publisher
so the server's delay samples (a 20 000-packet window it never resets) all come from
the full fan-out. Linux only. See ``benchmarks/README.md`` for the columns.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import ctypes
import fractions
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Optional

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # tests/peers.py lives in the repository, not the package
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
from aiortc import (  # noqa: E402
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from av import VideoFrame  # noqa: E402

from tests.peers import (  # noqa: E402
    VIDEO_CLOCK,
    NumberedVideoTrack,
    Peer,
    ToneAudioTrack,
    Viewer,
    draw_number,
    prefer,
)

ROOM, KEY = "bench", "benchkey123"
METRICS_TOKEN = "bench-metrics-token-0123456789"
VIEWERS_PER_PROCESS = 25
CONNECTS_IN_FLIGHT = 5  # per viewer process
LIGHT_VIEWER_NICE = 10
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ======================================================================= measuring
def process_cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by process ``pid``, all its threads, user + system.

    Reads the kernel's per-process CPU clock (nanoseconds; what ``clock_getcpuclockid``
    returns), falling back to utime + stime from ``/proc/<pid>/stat`` (10 ms ticks).
    """
    try:
        return time.clock_gettime((~pid << 3) | 2)  # MAKE_PROCESS_CPUCLOCK(pid, SCHED)
    except OSError:
        return sum(user_system_ticks(pid)) / CLK_TCK


def user_system_ticks(pid: int) -> tuple[int, int]:
    """utime and stime of ``pid`` in clock ticks (to split user and kernel time)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from ``/proc/stat``."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def udp_drops(pids: list[int]) -> int:
    """Datagrams the kernel dropped because a receive buffer was full, summed over the
    UDP sockets of ``pids`` (the ``drops`` column of ``/proc/net/udp{,6}``)."""
    inodes: set[str] = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if link.startswith("socket:["):
                        inodes.add(link[8:-1])
    drops = 0
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with contextlib.suppress(OSError), open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[9] in inodes:
                    drops += int(fields[-1])
    return drops


def median(values: list[float]) -> Optional[float]:
    return statistics.median(values) if values else None


class RtpCounter:
    """What one receiver got: RTP packets, payload bytes, frames (marker bits)."""

    __slots__ = ("packets", "bytes", "frames")

    def __init__(self) -> None:
        self.packets = self.bytes = self.frames = 0

    def as_list(self) -> list[int]:
        return [self.packets, self.bytes, self.frames]


def count_packets(receiver: Any, counter: RtpCounter, decode: bool = False) -> None:
    """Replace ``receiver._handle_rtp_packet`` by a counter; with ``decode`` it still
    calls aiortc's handler afterwards, else nothing is depayloaded or decoded."""
    original = receiver._handle_rtp_packet

    async def handle(packet: Any, arrival_time_ms: int) -> None:
        counter.packets += 1
        counter.bytes += len(packet.payload)
        counter.frames += packet.marker
        if decode:
            await original(packet, arrival_time_ms)

    receiver._handle_rtp_packet = handle


# ======================================================================= workers
async def command_loop(handle: Callable[[dict], Awaitable[dict]]) -> None:
    """Answer JSON commands from the parent on stdin, one JSON line each on stdout,
    until ``quit`` or the parent goes away (EOF)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            return
        msg = json.loads(line)
        if msg["cmd"] == "quit":
            return
        try:
            reply = await handle(msg)
        except Exception as exc:  # report, keep serving
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


async def wait_connected(pc: RTCPeerConnection, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while pc.connectionState != "connected":
        if pc.connectionState in ("failed", "closed") or time.monotonic() > deadline:
            raise RuntimeError(f"connection {pc.connectionState}")
        await asyncio.sleep(0.05)


class LightViewer:
    """A WHEP viewer that never decodes: it only counts what arrives."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.video, self.audio = RtpCounter(), RtpCounter()
        video = self.pc.addTransceiver("video", direction="recvonly")
        caps = RTCRtpSender.getCapabilities("video").codecs
        order = {"video/H264": 0, "video/VP8": 1}  # offer H.264 first, like the publisher
        video.setCodecPreferences(sorted(caps, key=lambda c: order.get(c.mimeType, 2)))
        audio = self.pc.addTransceiver("audio", direction="recvonly")
        count_packets(video.receiver, self.video)
        count_packets(audio.receiver, self.audio)
        self.codec = ""

    async def play(self, http: aiohttp.ClientSession, base_url: str) -> None:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        async with http.post(
            f"{base_url}/whep/{ROOM}",
            data=self.pc.localDescription.sdp,
            headers={"Content-Type": "application/sdp"},
        ) as r:
            body = await r.text()
            if r.status != 201:
                raise RuntimeError(f"WHEP {r.status}: {body[:200]}")
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
        video = next(t for t in self.pc.getTransceivers() if t.kind == "video")
        self.codec = video._codecs[0].mimeType if video._codecs else "?"
        await wait_connected(self.pc)


async def viewers_worker(base_url: str) -> None:
    """Light viewers, added on command (``add``), reporting counters on ``snap``."""
    viewers: list[LightViewer] = []
    gate = asyncio.Semaphore(CONNECTS_IN_FLIGHT)
    async with aiohttp.ClientSession() as http:

        async def connect(v: LightViewer) -> Optional[str]:
            async with gate:
                try:
                    await v.play(http, base_url)
                    return None
                except Exception as exc:
                    await v.pc.close()
                    return f"{type(exc).__name__}: {exc}"

        async def handle(msg: dict) -> dict:
            if msg["cmd"] == "add":
                new = [LightViewer() for _ in range(msg["n"])]
                errors = [e for e in await asyncio.gather(*(connect(v) for v in new)) if e]
                viewers.extend(v for v in new if v.pc.connectionState == "connected")
                return {"connected": len(viewers), "errors": errors[:3], "failed": len(errors),
                        "codec": viewers[0].codec if viewers else None}
            return {"t": time.monotonic(),
                    "viewers": [[v.video.as_list(), v.audio.as_list()] for v in viewers]}

        try:
            await command_loop(handle)
        finally:
            await asyncio.gather(*(v.pc.close() for v in viewers), return_exceptions=True)


async def sample_worker(base_url: str) -> None:
    """One decoding viewer (``tests.peers.Viewer``) that also counts like a light one."""
    viewer = Viewer(base_url, codecs=["video/H264"])
    video, audio = RtpCounter(), RtpCounter()
    reported = [0]  # frames already returned by a snap
    for t in viewer.pc.getTransceivers():
        count_packets(t.receiver, video if t.kind == "video" else audio, decode=True)

    async def handle(msg: dict) -> dict:
        if msg["cmd"] == "add":
            status = await viewer.play(ROOM)
            if status != 201:
                return {"connected": 0, "failed": 1, "errors": [getattr(viewer, "error", "")]}
            await wait_connected(viewer.pc)
            return {"connected": 1, "failed": 0, "errors": []}
        nums = viewer.numbers
        backwards = sum(1 for a, b in zip(nums, nums[1:]) if b <= a)
        new = list(zip(nums[reported[0]:], viewer.frame_times[reported[0]:]))
        reported[0] = len(nums)
        return {"t": time.monotonic(), "viewers": [[video.as_list(), audio.as_list()]],
                "decoded": len(nums), "last_number": nums[-1] if nums else None,
                "backwards": backwards, "new_frames": new}

    try:
        await command_loop(handle)
    finally:
        await viewer.close()


class NoisyNumberedTrack(NumberedVideoTrack):
    """``NumberedVideoTrack`` with a band of fresh luma noise in every frame, so that an
    encoder has something to spend its bitrate on; the barcode rows and the number stay
    clean. Frames are made in I420 directly (no per-frame BGR conversion in the encoder)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._rng = np.random.default_rng(7)
        self._band = (self.height // 4, self.height * 3 // 4)
        #: (frame number, CLOCK_MONOTONIC when it was made) for the last minute of frames
        self.captures: collections.deque[tuple[int, float]] = collections.deque(
            maxlen=60 * self.fps)

    async def recv(self) -> VideoFrame:
        delay = self.clock.start() + self._count / self.fps - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        self.captures.append((self.number, time.monotonic()))
        i420 = cv2.cvtColor(draw_number(self.number, self.width, self.height),
                            cv2.COLOR_BGR2YUV_I420)
        top, bottom = self._band
        i420[top:bottom] = self._rng.integers(64, 192, (bottom - top, self.width), np.uint8)
        frame = VideoFrame.from_ndarray(i420, format="yuv420p")
        frame.pts = int(self._count * VIDEO_CLOCK / self.fps)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self.number += 1
        self._count += 1
        return frame


def publisher_encoder(kbps: int) -> type:
    """aiortc's H.264 encoder with a pinned bitrate (aiortc's follows REMB between 0.5 and
    3 Mbit/s) and x264 preset ``veryfast`` (OBS's default) instead of ``medium``, so the
    synthetic publisher leaves the 2-core box to the server and the viewers."""
    import av
    from aiortc.codecs.h264 import MAX_FRAME_RATE, H264Encoder

    class PublisherH264Encoder(H264Encoder):
        @property
        def target_bitrate(self) -> int:
            return kbps * 1000

        @target_bitrate.setter
        def target_bitrate(self, bitrate: int) -> None:
            pass  # ignore REMB

        def _encode_frame(self, frame: VideoFrame, force_keyframe: bool) -> Any:
            if self.codec is None:
                self.codec = av.CodecContext.create("libx264", "w")
                self.codec.width, self.codec.height = frame.width, frame.height
                self.codec.bit_rate = kbps * 1000
                self.codec.pix_fmt = "yuv420p"
                self.codec.framerate = fractions.Fraction(MAX_FRAME_RATE, 1)
                self.codec.time_base = fractions.Fraction(1, MAX_FRAME_RATE)
                self.codec.options = {"level": "31", "tune": "zerolatency", "preset": "veryfast"}
                self.codec.profile = "Baseline"
            frame.pict_type = (av.video.frame.PictureType.I if force_keyframe
                               else av.video.frame.PictureType.NONE)
            data = b"".join(bytes(p) for p in self.codec.encode(frame))
            if data:
                yield from self._split_bitstream(data)

    return PublisherH264Encoder


async def publisher_worker(base_url: str, width: int, height: int, fps: int, kbps: int) -> None:
    """Publish the noisy numbered track (H.264) and a tone (Opus) over WHIP."""
    import aiortc.rtcrtpsender as rtcrtpsender

    stock_get_encoder, encoder = rtcrtpsender.get_encoder, publisher_encoder(kbps)
    rtcrtpsender.get_encoder = lambda codec: (  # type: ignore[assignment]
        encoder() if codec.mimeType.lower() == "video/h264" else stock_get_encoder(codec))
    peer = Peer(base_url)
    track = NoisyNumberedTrack(width=width, height=height, fps=fps)
    prefer(peer.pc.addTransceiver(track, direction="sendonly"), "video/H264")
    peer.pc.addTransceiver(ToneAudioTrack(), direction="sendonly")

    async def handle(msg: dict) -> dict:
        if msg["cmd"] == "publish":
            status = await peer.post(f"/whip/{ROOM}", token=KEY)
            if status != 201:
                return {"error": f"WHIP {status}: {getattr(peer, 'error', '')[:200]}"}
            await wait_connected(peer.pc)
            return {"status": status}
        out: dict[str, Any] = {"t": time.monotonic(), "frames": track._count,
                               "captures": list(track.captures) if msg.get("captures") else []}
        for t in peer.pc.getTransceivers():
            for s in (await t.sender.getStats()).values():
                if s.type == "outbound-rtp":
                    out[t.kind] = [s.packetsSent, s.bytesSent]
        return out

    try:
        await command_loop(handle)
    finally:
        await peer.close()


# ======================================================================= baseline
def baseline_app() -> Any:
    """The relay a newcomer builds with stock aiortc: the publisher's tracks are decoded,
    shared with ``MediaRelay`` and re-encoded by one ``RTCRtpSender`` per viewer."""
    from aiohttp import web
    from aiortc.contrib.media import MediaBlackhole, MediaRelay

    relay = MediaRelay()
    tracks: dict[str, Any] = {}
    pcs: set[RTCPeerConnection] = set()
    viewers: set[RTCPeerConnection] = set()
    sink = MediaBlackhole()  # keeps the relay reading while nobody watches

    def track_pc(pc: RTCPeerConnection, group: set) -> None:
        pcs.add(pc)
        group.add(pc)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                pcs.discard(pc)
                group.discard(pc)
                await pc.close()

    async def whip(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {KEY}":
            return web.Response(status=401)
        pc = RTCPeerConnection()
        track_pc(pc, set())

        @pc.on("track")
        def on_track(track: Any) -> None:
            tracks[track.kind] = track
            sink.addTrack(relay.subscribe(track))

        await pc.setRemoteDescription(RTCSessionDescription(await request.text(), "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        await sink.start()
        return web.Response(status=201, text=pc.localDescription.sdp,
                            content_type="application/sdp", headers={"Location": "/whip/x"})

    async def whep(request: web.Request) -> web.Response:
        if "video" not in tracks:
            return web.Response(status=409, text="not live")
        pc = RTCPeerConnection()
        track_pc(pc, viewers)
        await pc.setRemoteDescription(RTCSessionDescription(await request.text(), "offer"))
        for kind, track in tracks.items():
            pc.addTrack(relay.subscribe(track))
        await pc.setLocalDescription(await pc.createAnswer())
        return web.Response(status=201, text=pc.localDescription.sdp,
                            content_type="application/sdp", headers={"Location": "/whep/x"})

    async def status(request: web.Request) -> web.Response:
        return web.json_response({"room": ROOM, "live": "video" in tracks,
                                  "viewers": len(viewers)})

    async def shutdown(app: web.Application) -> None:
        await sink.stop()
        await asyncio.gather(*(pc.close() for pc in list(pcs)), return_exceptions=True)

    app = web.Application()
    app.router.add_post(f"/whip/{ROOM}", whip)
    app.router.add_post(f"/whep/{ROOM}", whep)
    app.router.add_get(f"/api/rooms/{ROOM}", status)
    app.on_shutdown.append(shutdown)
    return app


# ======================================================================= parent side
_LIBC = ctypes.CDLL(None, use_errno=True)


ALL_CPUS = frozenset(os.sched_getaffinity(0))


def _die_with_parent() -> None:  # runs in the child between fork and exec
    _LIBC.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: no orphans if we are killed


def _child_setup(cpus: frozenset[int], nice: int = 0) -> Callable[[], None]:
    def setup() -> None:  # between fork and exec: on these CPUs, dies with its parent
        os.sched_setaffinity(0, cpus)
        if nice:
            os.nice(nice)
        _die_with_parent()

    return setup


class Child:
    """A subprocess: the server, or a worker of this script driven by JSON lines."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.name, self.proc, self.log = name, proc, log
        self.takes_commands = True  #: False for servers: stop them with SIGTERM at once

    @classmethod
    async def start(cls, name: str, argv: list[str], logdir: Path, cpus: frozenset[int],
                    cwd: Path = ROOT, env: Optional[dict[str, str]] = None,
                    nice: int = 0) -> "Child":
        log = logdir / f"{name}.log"
        with open(log, "ab") as err:
            proc = await asyncio.create_subprocess_exec(
                *argv, cwd=cwd, env=env, stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=err, start_new_session=True,
                preexec_fn=_child_setup(cpus, nice),
            )
        return cls(name, proc, log)

    @classmethod
    async def worker(cls, name: str, logdir: Path, cpus: frozenset[int], *args: str,
                     nice: int = 0) -> "Child":
        argv = [sys.executable, str(Path(__file__).resolve()), *args]
        return await cls.start(name, argv, logdir, cpus, nice=nice)

    async def request(self, msg: dict, timeout: float = 120.0) -> dict:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write((json.dumps(msg) + "\n").encode())
        await self.proc.stdin.drain()
        while True:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
            if not line:
                raise RuntimeError(f"{self.name} exited; see {self.log}")
            if line.startswith(b"{"):
                reply = json.loads(line)
                if "error" in reply:
                    raise RuntimeError(f"{self.name}: {reply['error']}")
                return reply

    async def stop(self) -> None:
        """Ask politely (``quit``/SIGTERM), then kill."""
        if self.proc.returncode is not None:
            return
        try:
            if not self.takes_commands:
                raise asyncio.TimeoutError
            with contextlib.suppress(Exception):
                self.proc.stdin.write(b'{"cmd": "quit"}\n')  # type: ignore[union-attr]
                await self.proc.stdin.drain()  # type: ignore[union-attr]
            await asyncio.wait_for(self.proc.wait(), 3)
        except asyncio.TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 3)
            except asyncio.TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def room_stats(http: aiohttp.ClientSession, base: str) -> dict:
    async with http.get(f"{base}/api/rooms/{ROOM}") as r:
        return await r.json()


async def until(predicate: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.25)


class Step:
    """One measurement: ``server`` ("stagepass" or "baseline") with ``n`` viewers."""

    def __init__(self, server: str, n: int, args: argparse.Namespace, logdir: Path,
                 metrics: bool = False) -> None:
        self.server, self.n, self.args, self.logdir = server, n, args, logdir
        #: Stagepass with ``STAGEPASS_METRICS_TOKEN`` set, scraped every second in the window
        self.metrics = metrics
        self.scrapes: list[float] = []  #: seconds each scrape of /metrics took
        self.children: list[Child] = []
        # Stagepass is one single-threaded process: give it its own CPU(s), the load
        # generator the others. The baseline (multithreaded encoders) runs unpinned.
        pinned = server == "stagepass" and args.server_cpus and args.server_cpus < ALL_CPUS
        self.server_cpus = args.server_cpus if pinned else ALL_CPUS
        self.client_cpus = ALL_CPUS - args.server_cpus if pinned else ALL_CPUS
        self.client_cpu = [0.0, 0.0]  #: % of a core: publisher, all viewer processes
        self.system_share: Optional[float] = None  #: kernel part of the server's CPU time
        self.udp_drops = [0, 0]  #: datagrams lost to full receive buffers: server, viewers

    async def run(self, http: aiohttp.ClientSession) -> dict:
        try:
            return await self._run(http)
        finally:
            await asyncio.gather(*(c.stop() for c in reversed(self.children)))

    async def _spawn(self, name: str, *args: str) -> Child:
        cpus = self.server_cpus if name == "server" else self.client_cpus
        # light viewers yield to the publisher and the sample viewer when the CPU is short
        nice = LIGHT_VIEWER_NICE if name.startswith("viewers") else 0
        child = await Child.worker(f"{self.server}-{self.n}-{name}", self.logdir, cpus, *args,
                                   nice=nice)
        self.children.append(child)
        return child

    async def _run(self, http: aiohttp.ClientSession) -> dict:
        a, port = self.args, free_port()
        base = f"http://127.0.0.1:{port}"
        if self.server == "stagepass":
            argv = [sys.executable, "-m", "stagepass.cli", "serve", "--port", str(port),
                    "--data-dir", str(self.logdir / "data"), "--rooms", f"{ROOM}={KEY}",
                    "--log-level", "WARNING"]
            root = a.server_root.resolve()  # its packages win over the editable install
            env = dict(os.environ, PYTHONPATH=str(root))
            env.pop("STAGEPASS_METRICS_TOKEN", None)
            if self.metrics:
                env["STAGEPASS_METRICS_TOKEN"] = METRICS_TOKEN
            server = await Child.start(f"stagepass-{self.n}-server{'-metrics' if self.metrics else ''}",
                                       argv, self.logdir,
                                       self.server_cpus, cwd=root, env=env)
            self.children.append(server)
        else:
            server = await self._spawn("server", "--baseline-server", str(port))
        server.takes_commands = False

        async def up() -> bool:
            if server.proc.returncode is not None:
                raise RuntimeError(f"server exited; see {server.log}")
            try:
                return "room" in await room_stats(http, base)
            except aiohttp.ClientError:
                return False

        await until(up, 30, "the server")
        publisher = await self._spawn("publisher", "--worker", "publisher", "--url", base,
                                      "--width", str(a.width), "--height", str(a.height),
                                      "--fps", str(a.fps), "--kbps", str(a.kbps))

        async def publish() -> None:
            await publisher.request({"cmd": "publish"})

            async def live() -> bool:
                return bool((await room_stats(http, base)).get("live"))

            await until(live, 20, "the publisher to go live")

        # Stagepass: viewers first, so every delay sample the server keeps has all of them.
        # The baseline needs the publisher's tracks before it can answer a viewer.
        if self.server == "baseline":
            await publish()
        viewers: list[Child] = []
        if self.n:
            viewers.append(await self._spawn("sample", "--worker", "sample", "--url", base))
        light = self.n - 1
        for i in range(math.ceil(max(light, 0) / VIEWERS_PER_PROCESS)):
            viewers.append(await self._spawn(f"viewers{i}", "--worker", "viewers", "--url", base))
        sizes = [1] + [min(VIEWERS_PER_PROCESS, light - i * VIEWERS_PER_PROCESS)
                       for i in range(len(viewers) - 1)]
        added = await asyncio.gather(*(v.request({"cmd": "add", "n": k})
                                       for v, k in zip(viewers, sizes)))
        connected = sum(r["connected"] for r in added)
        errors = [e for r in added for e in r["errors"]]
        if self.server == "stagepass":
            await publish()

        async def receiving() -> bool:  # every viewer got video
            snaps = await asyncio.gather(*(v.request({"cmd": "snap"}) for v in viewers))
            return all(vv[0][2] > 0 for s in snaps for vv in s["viewers"])

        try:
            await until(receiving, 20, "video at every viewer")
        except RuntimeError:
            print(f"  ! {self.server} n={self.n}: some viewers receive no video", flush=True)
        await asyncio.sleep(a.warmup)
        scraper = asyncio.ensure_future(self._scrape(http, base)) if self.metrics else None
        try:
            row = await self._window(http, base, server.proc.pid, publisher, viewers)
        finally:
            if scraper is not None:
                scraper.cancel()
                await asyncio.gather(scraper, return_exceptions=True)
        row["metrics"] = "on" if self.metrics else "off"
        row["scrape_ms_median"] = median(self.scrapes) * 1000 if self.scrapes else None
        row["publisher"]["cpu_pct"] = self.client_cpu[0]
        row["server_system_share"] = self.system_share
        row["server_udp_drops"], row["viewer_udp_drops"] = self.udp_drops
        received = (row["packets_in_per_s"] or 0) * row["window_s"] + self.udp_drops[0]
        row["ingress_loss_pct"] = 100 * self.udp_drops[0] / received if received else None
        row["viewer_processes_cpu_pct"] = self.client_cpu[1]
        # everything else on the machine (this script's parent included), % of one core
        row["other_cpu_pct"] = max(0.0, row["box_pct"] * len(ALL_CPUS)
                                   - row["cpu_pct_mean"] - sum(self.client_cpu))
        row.update(server=self.server, viewers=self.n, connected=connected,
                   connect_errors=errors[:3], codec=next((r.get("codec") for r in added
                                                          if r.get("codec")), None))
        return row

    async def _scrape(self, http: aiohttp.ClientSession, base: str) -> None:
        """Prometheus' part: GET /metrics every second (a tight scrape interval)."""
        headers = {"Authorization": f"Bearer {METRICS_TOKEN}"}
        while True:
            started = time.monotonic()
            async with http.get(base + "/metrics", headers=headers) as r:
                if r.status != 200:
                    raise RuntimeError(f"/metrics answered {r.status}")
                await r.read()
            self.scrapes.append(time.monotonic() - started)
            await asyncio.sleep(max(0.0, started + 1.0 - time.monotonic()))

    async def _window(self, http: aiohttp.ClientSession, base: str, pid: int,
                      publisher: Child, viewers: list[Child]) -> dict:
        async def snapshot(captures: bool = False) -> tuple:
            return await asyncio.gather(
                room_stats(http, base), publisher.request({"cmd": "snap", "captures": captures}),
                *(v.request({"cmd": "snap"}) for v in viewers))

        def clients() -> tuple[float, float]:
            return (process_cpu_seconds(publisher.proc.pid),
                    sum(process_cpu_seconds(v.proc.pid) for v in viewers))

        profiler = None
        if self.args.profile:
            profiler = await start_profiler(pid, self.args.seconds,
                                            self.args.profile / f"{self.server}-{self.n}.txt")
        viewer_pids = [v.proc.pid for v in viewers]
        first = await snapshot()
        clients0 = clients()
        drops0 = udp_drops([pid]), udp_drops(viewer_pids)
        cpu0, box0, t0 = process_cpu_seconds(pid), machine_cpu(), time.monotonic()
        ticks0 = user_system_ticks(pid)
        slices, prev, prev_t = [], cpu0, t0
        for i in range(1, self.args.seconds + 1):
            await asyncio.sleep(max(0.0, t0 + i - time.monotonic()))
            cpu, now = process_cpu_seconds(pid), time.monotonic()
            slices.append((cpu - prev) / (now - prev_t))
            prev, prev_t = cpu, now
        box1, clients1, t1 = machine_cpu(), clients(), time.monotonic()
        user, system = (b - a for a, b in zip(ticks0, user_system_ticks(pid)))
        self.system_share = system / (user + system) if user + system else None
        self.client_cpu = [(b - a) / (t1 - t0) * 100 for a, b in zip(clients0, clients1)]
        last = await snapshot(captures=True)
        self.udp_drops = [b - a for a, b in zip(drops0, (udp_drops([pid]),
                                                          udp_drops(viewer_pids)))]
        if profiler is not None:
            await asyncio.wait_for(profiler.wait(), 30)
        return summarize(first, last, slices, (box1[0] - box0[0]) / max(1, box1[1] - box0[1]),
                         self.args.fps)


async def start_profiler(pid: int, seconds: int, output: Path) -> asyncio.subprocess.Process:
    """py-spy on ``pid`` for the window, non-blocking (the server is never paused),
    writing collapsed stacks ("frame;frame;... count" lines) to ``output``."""
    py_spy = shutil.which("py-spy", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    if py_spy is None:
        raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
    output.parent.mkdir(parents=True, exist_ok=True)
    return await asyncio.create_subprocess_exec(
        py_spy, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "250",
        "--nonblocking", "--format", "raw", "--output", str(output),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        preexec_fn=_child_setup(ALL_CPUS))


def hot_spots(path: Path, top: int = 12) -> str:
    """The functions with the most samples in a py-spy raw profile, self and inclusive,
    leaving out samples waiting in ``epoll``."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        count = int(n)
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]  # per function
        if frames[-1].startswith("EpollSelector.select"):
            continue  # waiting for packets; py-spy --nonblocking cannot always tell idle
        total += count
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
    if not total:
        return f"{path}: no samples"

    def listing(counts: dict[str, int]) -> list[str]:
        best = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
        return [f"    {100 * c / total:5.1f}%  {frame}" for frame, c in best]

    return "\n".join([f"{path} ({total} busy samples); self time:", *listing(own),
                      "  inclusive (own code and below):",
                      *listing({f: c for f, c in inclusive.items() if "/work/" in f
                                or "mediaserver" in f or "signalling" in f})])


def summarize(first: tuple, last: tuple, slices: list[float], box: float, fps: int) -> dict:
    """One result row from the snapshots taken at both ends of the window."""
    (srv0, pub0, *views0), (srv1, pub1, *views1) = first, last
    dt = pub1["t"] - pub0["t"]
    cpu = median(slices) or 0.0
    fanouts0, fanouts1 = srv0.get("fanouts"), srv1.get("fanouts")

    def delta(key: str) -> Optional[int]:
        if not fanouts1:
            return None
        return sum(fanouts1[k][key] - fanouts0[k][key] for k in fanouts1)

    per_viewer: list[dict] = []
    for s0, s1 in zip(views0, views1):
        span = s1["t"] - s0["t"]
        for (v0, a0), (v1, a1) in zip(s0["viewers"], s1["viewers"]):
            per_viewer.append({
                "fps": (v1[2] - v0[2]) / span,
                "kbps": ((v1[1] - v0[1]) + (a1[1] - a0[1])) * 8 / span / 1000,
                "packets": (v1[0] - v0[0]) + (a1[0] - a0[0]),
            })
    received = sum(v["packets"] for v in per_viewer)
    packets_out = delta("packets_out")
    forwarded = packets_out if packets_out is not None else received
    picture = None
    if views1:  # the sample viewer is always the first
        s0, s1 = views0[0], views1[0]
        decoded_fps = (s1["decoded"] - s0["decoded"]) / (s1["t"] - s0["t"])
        problems = []
        if s1["backwards"] != s0["backwards"]:
            problems.append(f"{s1['backwards'] - s0['backwards']} numbers out of order")
        if decoded_fps < 0.8 * fps:
            problems.append(f"only {decoded_fps:.1f} fps decoded")
        if (s1["last_number"] or 0) <= (s0["last_number"] or 0):
            problems.append("numbers not advancing")
        picture = {"ok": not problems, "problems": problems, "decoded_fps": decoded_fps,
                   "last_number": s1["last_number"]}
        # made (publisher) to decoded (sample viewer): CLOCK_MONOTONIC is shared
        made = dict(pub1["captures"])
        latencies = sorted((t - made[number]) * 1000
                           for number, t in s1["new_frames"] if number in made)
        if latencies:
            picture["e2e_ms_p50"] = latencies[len(latencies) // 2]
            picture["e2e_ms_p99"] = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    fps_values = [v["fps"] for v in per_viewer]
    video_fanout = (fanouts1 or {}).get("video", {})
    pub = {k: [(pub1[k][i] - pub0[k][i]) / dt for i in (0, 1)] for k in ("video", "audio")}
    return {
        "window_s": dt,
        "cpu_pct": cpu * 100,
        "cpu_pct_mean": (sum(slices) / len(slices)) * 100 if slices else None,
        "cpu_slices_pct": [round(s * 100, 2) for s in slices],
        "box_pct": box * 100,
        "packets_out_per_s": forwarded / dt,
        "packets_out_source": "server" if packets_out is not None else "viewers",
        "packets_in_per_s": (delta("packets_in") or 0) / dt if fanouts1 else None,
        "us_per_packet": cpu / (forwarded / dt) * 1e6 if forwarded else None,
        "fps_median": median(fps_values), "fps_min": min(fps_values) if fps_values else None,
        "kbps_median": median([v["kbps"] for v in per_viewer]),
        "delay_ms_p50": video_fanout.get("delay_ms_p50"),
        "delay_ms_p99": video_fanout.get("delay_ms_p99"),
        "delays": {k: {q: v[q] for q in ("delay_ms_p50", "delay_ms_p99")}
                   for k, v in (fanouts1 or {}).items()},
        "drops": delta("dropped"),
        "keyframe_requests": srv1.get("keyframe_requests"),
        "server_codecs": srv1.get("codecs"),
        "picture": picture,
        "publisher": {"fps": (pub1["frames"] - pub0["frames"]) / dt,
                      "video_kbps": pub["video"][1] * 8 / 1000, "video_pps": pub["video"][0],
                      "audio_kbps": pub["audio"][1] * 8 / 1000, "audio_pps": pub["audio"][0]},
    }


def add_marginals(rows: list[dict]) -> None:
    """Per-viewer CPU: total / N, and marginal (cpu(N) - cpu(0)) / N against the idle row."""
    idle = next((r["cpu_pct"] for r in rows if r["viewers"] == 0), None)
    for r in rows:
        n = r["viewers"]
        r["cpu_pct_per_viewer"] = r["cpu_pct"] / n if n else None
        extra = r["cpu_pct"] - idle if idle is not None else None
        r["marginal_pct_per_viewer"] = extra / n if n and extra is not None else None
        pps = r["packets_out_per_s"]
        r["marginal_us_per_packet"] = (
            extra / 100 / pps * 1e6 if n and extra is not None and pps else None)


# ======================================================================= reporting
def fmt(value: Optional[float], spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


SATURATED = 90.0  # machine busy % above which a row is marked: the load generator competes

COLUMNS = [  # header, width, row -> text
    ("N", 5, lambda r: str(r["viewers"]) + ("*" if r["box_pct"] >= SATURATED else " ")),
    ("cpu%", 6, lambda r: fmt(r["cpu_pct"])),
    ("us/pkt", 7, lambda r: fmt(r["us_per_packet"])),
    ("m.us/pkt", 9, lambda r: fmt(r["marginal_us_per_packet"])),
    ("%/view", 7, lambda r: fmt(r["cpu_pct_per_viewer"], ".2f")),
    ("m.%/view", 9, lambda r: fmt(r["marginal_pct_per_viewer"], ".2f")),
    ("fps med", 8, lambda r: fmt(r["fps_median"])),
    ("fps min", 8, lambda r: fmt(r["fps_min"])),
    ("kbps med", 9, lambda r: fmt(r["kbps_median"], ".0f")),
    ("p50 ms", 7, lambda r: fmt(r["delay_ms_p50"], ".2f")),
    ("p99 ms", 7, lambda r: fmt(r["delay_ms_p99"], ".2f")),
    ("drops", 6, lambda r: fmt(r["drops"], "d")),
    ("in loss%", 9, lambda r: fmt(r.get("ingress_loss_pct"))),
    ("box%", 5, lambda r: fmt(r["box_pct"], ".0f")),
    ("other%", 7, lambda r: fmt(r["other_cpu_pct"], ".0f")),
    ("picture", 8, lambda r: "-" if not r["picture"] else
        ("ok" if r["picture"]["ok"] else "BAD") + f" {r['picture']['decoded_fps']:.0f}"),
    ("e2e ms", 7, lambda r: fmt((r["picture"] or {}).get("e2e_ms_p50"), ".0f")),
    ("x base", 7, lambda r: fmt(r.get("x_baseline"), ".0f")),
]


def table(rows: list[dict], baseline: bool = False) -> str:
    skip = {"p50 ms", "p99 ms", "drops", "x base"} if baseline else set()
    # the baseline has no packets_in counter, so no ingress loss % (its drops are in JSON)
    skip |= {"in loss%"} if baseline else set()
    cols = [c for c in COLUMNS if c[0] not in skip]
    lines = ["".join(h.rjust(w + 1) for h, w, _ in cols)]
    lines += ["".join(f(r).rjust(w + 1) for _, w, f in cols) for r in rows]
    return "\n".join(lines)


def print_row(row: dict) -> None:
    pub = row["publisher"]
    pic = row["picture"]
    sys_share = row["server_system_share"]
    print(f"  {row['server']:9} N={row['viewers']:<4} cpu {row['cpu_pct']:5.1f}% "
          f"(kernel {fmt(sys_share and sys_share * 100, '.0f')}%)  "
          f"fps med {fmt(row['fps_median'])} min {fmt(row['fps_min'])}  "
          f"p99 {fmt(row['delay_ms_p99'], '.2f')} ms  box {row['box_pct']:.0f}%  "
          f"viewer procs {row['viewer_processes_cpu_pct']:.0f}%  other {row['other_cpu_pct']:.0f}%"
          f"  udp drops srv/view {row['server_udp_drops']}/{row['viewer_udp_drops']}"
          f"  publisher {pub['cpu_pct']:.0f}% "
          f"{pub['fps']:.1f} fps {pub['video_kbps']:.0f}+{pub['audio_kbps']:.0f} kbit/s"
          + (f"  picture {'ok' if pic['ok'] else 'BAD: ' + ', '.join(pic['problems'])} "
             f"({pic['decoded_fps']:.1f} fps decoded, e2e p50/p99 "
             f"{fmt(pic.get('e2e_ms_p50'), '.0f')}/{fmt(pic.get('e2e_ms_p99'), '.0f')} ms)"
             if pic else "")
          + (f"  connect errors: {row['connect_errors']}" if row["connect_errors"] else ""),
          flush=True)


def keeping_up(row: dict, fps: int) -> bool:
    """Every viewer got at least 90% of the nominal frame rate: the server did all the work
    (a CPU-capped baseline that skips frames under-reports its cost per viewer)."""
    return row["fps_min"] is not None and row["fps_min"] >= 0.9 * fps


def full_stream(row: dict, fps: int) -> bool:
    """The server got (nearly) every packet of a full-rate publisher, so its CPU per viewer
    is the cost of the whole stream, not of the part it had time to read."""
    return (row["publisher"]["fps"] >= 0.9 * fps
            and (row.get("ingress_loss_pct") or 0) <= 1.0)


def caveats(row: dict, fps: int) -> list[str]:
    """Why a row's numbers may say more about the machine than about the server."""
    out = []
    if row["box_pct"] >= SATURATED:
        out.append(f"machine {row['box_pct']:.0f}% busy")
    if row["other_cpu_pct"] > 25:
        out.append(f"other processes {row['other_cpu_pct']:.0f}% of a core")
    if row["publisher"]["fps"] < 0.9 * fps:
        out.append(f"publisher starved ({row['publisher']['fps']:.1f} fps)")
    if (row.get("ingress_loss_pct") or 0) > 1:
        out.append(f"server lost {row['ingress_loss_pct']:.1f}% of the publisher's packets")
    if row["viewer_udp_drops"]:
        out.append(f"viewer sockets dropped {row['viewer_udp_drops']} packets")
    return out


def summary(rows: list[dict], base_rows: list[dict], ref_n: int, fps: int) -> dict:
    """Compare with the baseline and check the project's targets at ``ref_n`` viewers."""
    measured = [r for r in base_rows if r["viewers"] and r["marginal_pct_per_viewer"] is not None]
    complete = [r for r in measured if keeping_up(r, fps)] or measured
    base_pv = median([r["marginal_pct_per_viewer"] for r in complete])
    for r in rows:  # only where the server handled the whole stream
        m = r["marginal_pct_per_viewer"]
        ok = base_pv and m and m > 0 and full_stream(r, fps)
        r["x_baseline"] = base_pv / m if ok else None
    ref = next((r for r in rows if r["viewers"] == ref_n), None)
    publishers = [r["publisher"] for r in rows + base_rows]
    out: dict[str, Any] = {
        "reference_viewers": ref_n,
        "baseline_marginal_pct_per_viewer": base_pv,
        "baseline_rows_used": [r["viewers"] for r in complete],
        "publisher": {k: median([p[k] for p in publishers]) for k in publishers[0]},
        "server_codecs": next((r["server_codecs"] for r in rows if r["server_codecs"]), None),
    }
    if ref:
        out["targets"] = {
            "us_per_packet": {"value": ref["us_per_packet"], "target": "<= 30"},
            "marginal_us_per_packet": {"value": ref["marginal_us_per_packet"]},
            "x_less_cpu_per_viewer": {"value": ref["x_baseline"], "target": ">= 40"},
            "delay_ms_p99": {"value": ref["delay_ms_p99"], "target": "< 10"},
        }
        out["reference_caveats"] = caveats(ref, fps)
    return out


def print_summary(rows: list[dict], base_rows: list[dict], s: dict) -> None:
    p = s["publisher"]
    print(f"\npublisher (median over steps): {p['fps']:.1f} fps, video {p['video_kbps']:.0f} "
          f"kbit/s ({p['video_pps']:.0f} pkt/s), audio {p['audio_kbps']:.0f} kbit/s "
          f"({p['audio_pps']:.0f} pkt/s); server codecs {s['server_codecs']}")
    print("\nStagepass (N = viewers incl. the decoding sample viewer; N=0 publisher only; "
          f"* = machine >= {SATURATED:.0f}% busy)")
    print(table(rows))
    if base_rows:
        print("\nBaseline: stock aiortc decode + MediaRelay + one encoding sender per viewer")
        print(table(base_rows, baseline=True))
        used = ",".join(map(str, s["baseline_rows_used"]))
        print(f"baseline marginal CPU per viewer: {fmt(s['baseline_marginal_pct_per_viewer'], '.2f')}"
              f"% of a core (median over N={used}, the rows where every viewer got >= 90% of "
              "the frames when there are any)")
    t = s.get("targets")
    if t:
        def check(value: Optional[float], ok: Callable[[float], bool]) -> str:
            return "n/a" if value is None else ("met" if ok(value) else "NOT met")

        n = s["reference_viewers"]
        print(f"\ntargets at N={n}:")
        v = t["us_per_packet"]["value"]
        print(f"  server CPU per forwarded packet {fmt(v)} us (target <= 30): "
              f"{check(v, lambda x: x <= 30)}; marginal {fmt(t['marginal_us_per_packet']['value'])} us")
        v = t["x_less_cpu_per_viewer"]["value"]
        print(f"  baseline / Stagepass marginal CPU per viewer {fmt(v, '.0f')}x (target >= 40x): "
              f"{check(v, lambda x: x >= 40)}")
        v = t["delay_ms_p99"]["value"]
        print(f"  in-server delay p99 {fmt(v, '.2f')} ms (target < 10): {check(v, lambda x: x < 10)}")
        if s["reference_caveats"]:
            print(f"  caution, during the N={n} step: " + "; ".join(s["reference_caveats"]))


def metrics_cost(off_rows: list[dict], on_rows: list[dict]) -> list[dict]:
    """Server CPU per forwarded packet with metrics off and on (token set, scraped every
    second), per viewer count, and their ratio."""
    on = {r["viewers"]: r for r in on_rows}
    out = []
    for r in off_rows:
        m = on.get(r["viewers"])
        if m is None:
            continue
        off_us, on_us = r["us_per_packet"], m["us_per_packet"]
        out.append({"viewers": r["viewers"], "cpu_pct_off": r["cpu_pct"], "cpu_pct_on": m["cpu_pct"],
                    "us_per_packet_off": off_us, "us_per_packet_on": on_us,
                    "ratio": on_us / off_us if off_us and on_us else None,
                    "scrape_ms_median": m["scrape_ms_median"]})
    return out


def print_metrics_cost(cost: list[dict]) -> None:
    print("\nmetrics off vs on (STAGEPASS_METRICS_TOKEN set, /metrics scraped every second; target: "
          "on/off <= 1.02)")
    print(f"{'N':>5} {'cpu% off':>9} {'cpu% on':>8} {'us/pkt off':>11} {'us/pkt on':>10} {'on/off':>7} "
          f"{'scrape ms':>10}")
    for c in cost:
        print(f"{c['viewers']:>5} {fmt(c['cpu_pct_off']):>9} {fmt(c['cpu_pct_on']):>8} "
              f"{fmt(c['us_per_packet_off']):>11} {fmt(c['us_per_packet_on']):>10} "
              f"{fmt(c['ratio'], '.3f'):>7} {fmt(c['scrape_ms_median'], '.2f'):>10}")


def git_commit(root: Path) -> Optional[str]:
    """The commit ``root`` is checked out at, if it is a git checkout (``+dirty`` if the
    server packages differ from it)."""
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--",
                                "mediaserver", "signalling", "paywall", "web"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def counts(text: str) -> list[int]:
    return sorted({int(x) for x in text.split(",") if x.strip()})


async def run(args: argparse.Namespace) -> dict:
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)  # like Ctrl-C
    viewers, base_viewers = counts(args.viewers), counts(args.baseline_viewers)
    rows: list[dict] = []
    base_rows: list[dict] = []
    logdir = Path(tempfile.mkdtemp(prefix="stagepass-bench-"))
    cores = len(os.sched_getaffinity(0))
    before = machine_cpu()
    await asyncio.sleep(3)
    after = machine_cpu()
    background = (after[0] - before[0]) / max(1, after[1] - before[1]) * 100
    print(f"Stagepass from {args.server_root} ({git_commit(args.server_root) or 'not git'})",
          flush=True)
    pinning = (f"Stagepass server on CPU {','.join(map(str, sorted(args.server_cpus)))}, "
               "publisher and viewers on the others" if args.server_cpus else "no CPU pinning")
    print(f"logs in {logdir}; {cores} cores, {pinning}; {background:.0f}% busy before the run"
          + (" (other load: expect noisy numbers)" if background > 10 else ""), flush=True)
    args.background_pct = round(background, 1)
    failed: list[dict] = []
    metrics_rows: list[dict] = []
    # --metrics both: each Stagepass step with metrics off, then on, back to back
    modes = {"off": [False], "on": [True], "both": [False, True]}[args.metrics]
    plan = [("stagepass", n, m) for n in [0] + [n for n in viewers if n] for m in modes]
    if base_viewers:
        plan += [("baseline", n, False) for n in [0] + [n for n in base_viewers if n]]
    async with aiohttp.ClientSession() as http:
        for server, n, with_metrics in plan:
            try:
                row = await Step(server, n, args, logdir, metrics=with_metrics).run(http)
            except (RuntimeError, OSError, asyncio.TimeoutError, aiohttp.ClientError) as exc:
                failed.append({"server": server, "viewers": n, "error": f"{exc}"})
                print(f"  {server:9} N={n:<4} FAILED: {exc} (logs: {logdir})", flush=True)
                continue
            if server == "baseline":
                base_rows.append(row)
            elif with_metrics and args.metrics == "both":
                metrics_rows.append(row)
            else:
                rows.append(row)
            print_row(row)
            if args.profile and server == "stagepass":
                print(hot_spots(args.profile / f"stagepass-{n}.txt"), flush=True)
    add_marginals(rows)
    add_marginals(base_rows)
    add_marginals(metrics_rows)
    ref_n = 100 if 100 in viewers else max(viewers, default=0)
    if not rows:
        raise SystemExit("no Stagepass step succeeded")
    s = summary(rows, base_rows, ref_n, args.fps)
    s["failed_steps"] = failed
    print_summary(rows, base_rows, s)
    if metrics_rows:
        s["metrics_cost"] = metrics_cost(rows, metrics_rows)
        print_metrics_cost(s["metrics_cost"])
    for f in failed:
        print(f"FAILED step: {f['server']} N={f['viewers']}: {f['error']}")
    config = {k: str(v) if isinstance(v, Path) else sorted(v) if isinstance(v, frozenset)
              else v for k, v in vars(args).items()}
    config["server_commit"] = git_commit(args.server_root)
    return {"config": config, "stagepass": rows, "stagepass_metrics_on": metrics_rows, "baseline": base_rows,
            "summary": s}


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", default="1,10,25,50,100,200",
                        help="viewer counts to measure Stagepass with (0 is always measured)")
    parser.add_argument("--baseline-viewers", default="1,2,4",
                        help="viewer counts for the stock-aiortc baseline ('' to skip)")
    parser.add_argument("--seconds", type=int, default=15, help="measurement window per step")
    parser.add_argument("--warmup", type=float, default=4.0,
                        help="seconds between every viewer receiving and the window")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--kbps", type=int, default=1500, help="publisher H.264 bitrate")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--metrics", choices=["off", "on", "both"], default="off",
                        help="Stagepass with /metrics off (default), on (token set and scraped "
                        "every second), or both, back to back per viewer count, compared")
    parser.add_argument("--server-cpus", default="0" if len(ALL_CPUS) > 1 else "",
                        help="CPUs the Stagepass server is pinned to, the load generator "
                        "getting the others (default 0; '' to pin nothing)")
    parser.add_argument("--server-root", type=Path, default=ROOT, metavar="DIR",
                        help="run the Stagepass server from this checkout (default: this "
                        "repository), e.g. a 'git archive' snapshot of a commit")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="py-spy the server during each window into DIR and print its "
                        "hot spots (numbers of a profiled run are not for comparison)")
    # internal modes: this script's own subprocesses
    parser.add_argument("--baseline-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--worker", choices=["publisher", "viewers", "sample"],
                        help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.baseline_server:
        from aiohttp import web

        web.run_app(baseline_app(), host="127.0.0.1", port=args.baseline_server, print=None)
        return 0
    if args.worker:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent cleans up on Ctrl-C
        worker = {
            "publisher": lambda: publisher_worker(args.url, args.width, args.height,
                                                  args.fps, args.kbps),
            "viewers": lambda: viewers_worker(args.url),
            "sample": lambda: sample_worker(args.url),
        }[args.worker]
        asyncio.run(worker())
        return 0
    args.server_cpus = frozenset(int(c) for c in args.server_cpus.split(",") if c.strip())
    if not args.server_cpus <= ALL_CPUS:
        parser.error(f"--server-cpus: this process may use CPUs {sorted(ALL_CPUS)}")
    if args.width % 16:
        parser.error("--width must be a multiple of 16 (the frame's barcode has 16 bits)")
    try:
        results = asyncio.run(run(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("\ninterrupted; every process this run started was stopped", file=sys.stderr)
        return 130
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
        print(f"\nresults written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
