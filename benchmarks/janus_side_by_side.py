"""Stagepass beside Janus: server CPU per forwarded packet, same stream, interleaved.

Run from the repository root (``benchmarks/live_fanout.py --janus`` runs this)::

    .venv/bin/python benchmarks/janus_side_by_side.py [--viewers 25,50] [--rounds 2]
        [--seconds 12] [--json out.json]

Each *step* is one server with N light viewers, fresh processes, measured like
``live_fanout.py`` (the server's own CPU clock, one-second slices, median):

* **servers**: Stagepass (``stagepass serve``, all peers on one UDP port: the default),
  Stagepass with a UDP port per peer connection (``--udp-port off``, the previous way),
  Janus 1.1.2's streaming plugin (Debian's ``janus``; ``apt-get install janus``) with its
  default threading (a loop per handle), and Janus with ``event_loops = 2`` (handles
  share two loops: its best configuration on 2 cores). Janus gets a generated
  configuration: HTTP transport and the streaming plugin only, one RTP mountpoint;
* **the stream**: the same VP8 clip (640x480, 30 fps, ~1.5 Mbit/s, a keyframe every 2 s,
  encoded once with libvpx) replayed in real time by a feeder process: over WHIP to
  Stagepass (an aiortc peer packetizing the clip with aiortc's VP8 ``pack()``), as plain
  RTP packetized by the same code to Janus's mountpoint;
* **viewers**: aiortc peers that only decrypt and count RTP packets (never depayload or
  decode), up to 25 per process; over WHEP for Stagepass, the Janus HTTP API (create,
  attach, ``watch``, answer, ``start``) for Janus;
* **interleaved**: for each round, for each N in ``0`` and ``--viewers``, every server
  in turn; the figures are medians over rounds;
* **a baseline Stagepass** (``--base-root DIR``, e.g. a snapshot of main made with
  ``git archive main | tar -x -C DIR``): the server ``stagepass-base`` runs from that
  checkout, interleaved with the others, and a last column divides ``stagepass`` by it.

*us/packet* is the server CPU per forwarded packet net of ingest: (CPU at N - CPU at 0)
/ packets per second the viewers received. *ratio* divides Stagepass's by Janus's with
shared loops (<= 1.0: Stagepass costs less per packet). Linux only.
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import functools
import json
import math
import os
import random
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parent.parent
for path in (str(ROOT), str(ROOT / "benchmarks")):
    if path not in sys.path:
        sys.path.insert(0, path)

import aiohttp  # noqa: E402
import av  # noqa: E402
import numpy as np  # noqa: E402
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription  # noqa: E402

from common.children import ALL_CPUS, Child, command_loop, free_port  # noqa: E402
from common.measure import machine_cpu, process_cpu_seconds  # noqa: E402
from common.viewers import RtpCounter, count_packets, wait_connected  # noqa: E402
from fanout import KEY, ROOM  # noqa: E402
from fanout.profiling import hot_spots, start_profiler  # noqa: E402
from fanout.step import until  # noqa: E402
from tests.support.encoded_media import PacketLoopTrack  # noqa: E402
from tests.support.peers import Peer, prefer  # noqa: E402

VIDEO_CLOCK = 90000
FPS = 30
VIEWERS_PER_PROCESS = 25
SERVERS = ("stagepass", "stagepass-ports", "janus", "janus-el2")
MOUNTPOINT = 1
JANUS_PLUGINS = "/usr/lib/x86_64-linux-gnu/janus/plugins"
JANUS_TRANSPORTS = "/usr/lib/x86_64-linux-gnu/janus/transports"


# ======================================================================= the stream
def save_clip(frames: tuple[bytes, ...], path: Path) -> None:
    path.write_bytes(b"".join(len(f).to_bytes(4, "big") + f for f in frames))


@functools.lru_cache(maxsize=2)
def load_clip(path: str) -> tuple[bytes, ...]:
    """The clip the parent encoded once (``save_clip``): feeders do not encode it again."""
    data, frames, pos = Path(path).read_bytes(), [], 0
    while pos < len(data):
        n = int.from_bytes(data[pos:pos + 4], "big")
        frames.append(data[pos + 4:pos + 4 + n])
        pos += 4 + n
    return tuple(frames)


@functools.lru_cache(maxsize=2)
def vp8_clip(seconds: int = 6, kbps: int = 1500, width: int = 640, height: int = 480) -> tuple[bytes, ...]:
    """``seconds`` of VP8 frames at ``kbps`` (a keyframe every 2 s), a band of noise so
    the encoder spends its bitrate, and motion."""
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
    codec.bit_rate = kbps * 1000
    codec.framerate = fractions.Fraction(FPS, 1)
    codec.time_base = fractions.Fraction(1, FPS)
    codec.gop_size = 2 * FPS
    codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0",
                     "minrate": f"{kbps}k", "maxrate": f"{kbps}k", "b": f"{kbps}k"}
    rng = np.random.default_rng(5)
    frames: list[bytes] = []
    for i in range(seconds * FPS):
        img = np.full((height * 3 // 2, width), 96, np.uint8)
        img[height // 4: height * 3 // 4] = rng.integers(64, 192, (height // 2, width), np.uint8)
        img[: height // 8, (i * 8) % width: (i * 8) % width + 32] = 255
        frame = av.VideoFrame.from_ndarray(img, format="yuv420p")
        frame.pts = i
        frames += [bytes(p) for p in codec.encode(frame)]
    frames += [bytes(p) for p in codec.encode(None)]
    return tuple(frames)


async def feed_whip(base_url: str, clip: tuple[bytes, ...]) -> Peer:
    """The clip to Stagepass over WHIP (aiortc packetizes it with VP8 ``pack()``)."""
    peer = Peer(base_url)
    track = PacketLoopTrack("video", clip, FPS, VIDEO_CLOCK)
    prefer(peer.pc.addTransceiver(track, direction="sendonly"), "video/VP8")
    status = await peer.post(f"/whip/{ROOM}", token=KEY)
    if status != 201:
        raise RuntimeError(f"WHIP {status}: {getattr(peer, 'error', '')[:200]}")
    await wait_connected(peer.pc)
    return peer


async def feed_rtp(port: int, clip: tuple[bytes, ...], stop: asyncio.Event) -> None:
    """The clip to a plain RTP port, packetized by the same aiortc code, paced in real time."""
    from aiortc.codecs.vpx import Vp8Encoder
    from aiortc.rtp import RtpPacket

    packer = Vp8Encoder()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    seq, ssrc, t0 = random.getrandbits(16), random.getrandbits(32), time.monotonic()
    base_ts = random.getrandbits(32)
    n = 0
    try:
        while not stop.is_set():
            delay = t0 + n / FPS - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            packet = av.Packet(clip[n % len(clip)])
            packet.pts, packet.time_base = n, fractions.Fraction(1, FPS)
            payloads, timestamp = packer.pack(packet)
            for i, payload in enumerate(payloads):
                rtp = RtpPacket(payload_type=96, marker=int(i == len(payloads) - 1), sequence_number=seq,
                                timestamp=(base_ts + timestamp) & 0xFFFFFFFF, ssrc=ssrc, payload=payload)
                sock.sendto(rtp.serialize(), ("127.0.0.1", port))
                seq = (seq + 1) & 0xFFFF
            n += 1
    finally:
        sock.close()


async def feeder_worker(target: str, clip_path: str) -> None:
    """``whip:<base url>`` or ``rtp:<port>``; answers ``snap`` with the packets sent."""
    clip = load_clip(clip_path)
    stop = asyncio.Event()
    peer: Optional[Peer] = None
    task: Optional[asyncio.Task] = None

    async def handle(msg: dict) -> dict:
        nonlocal peer, task
        if msg["cmd"] == "publish":
            kind, _, where = target.partition(":")
            if kind == "whip":
                peer = await feed_whip(where, clip)
            else:
                task = asyncio.ensure_future(feed_rtp(int(where), clip, stop))
            return {"ok": True}
        return {"t": time.monotonic()}

    try:
        await command_loop(handle)
    finally:
        stop.set()
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)
        if peer is not None:
            await peer.close()


# ======================================================================= Janus
def janus_config(folder: Path, http_port: int, rtp_port: int, event_loops: int) -> Path:
    """A Janus configuration: HTTP transport and the streaming plugin only, one VP8 RTP
    mountpoint on ``rtp_port``; ``event_loops`` 0 is Janus's default (a loop per handle)."""
    folder.mkdir(parents=True, exist_ok=True)
    plugins = sorted(p.name for p in Path(JANUS_PLUGINS).glob("libjanus_*.so") if "streaming" not in p.name)
    transports = sorted(p.name for p in Path(JANUS_TRANSPORTS).glob("libjanus_*.so") if "http" not in p.name)
    loops = f"\tevent_loops = {event_loops}\n" if event_loops else ""
    (folder / "janus.jcfg").write_text(
        "general: {\n"
        f'\tconfigs_folder = "{folder}"\n\tplugins_folder = "{JANUS_PLUGINS}"\n'
        f'\ttransports_folder = "{JANUS_TRANSPORTS}"\n\tdebug_level = 2\n\tsession_timeout = 0\n{loops}'
        "}\n"
        "media: {\n\trtp_port_range = \"30000-39999\"\n}\n"
        "nat: {\n\tnice_debug = false\n\tignore_mdns = true\n}\n"
        f'plugins: {{\n\tdisable = "{",".join(plugins)}"\n}}\n'
        f'transports: {{\n\tdisable = "{",".join(transports)}"\n}}\n'
        "events: {\n\tbroadcast = false\n}\n")
    (folder / "janus.transport.http.jcfg").write_text(
        "general: {\n\tjson = \"compact\"\n\tbase_path = \"/janus\"\n\thttp = true\n"
        f"\tport = {http_port}\n\tip = \"127.0.0.1\"\n\thttps = false\n}}\n"
        "admin: {\n\tadmin_http = false\n}\n")
    (folder / "janus.plugin.streaming.jcfg").write_text(
        "general: {\n}\n"
        "bench: {\n\ttype = \"rtp\"\n"
        f"\tid = {MOUNTPOINT}\n\tdescription = \"bench\"\n"
        "\tmedia = (\n\t\t{\n\t\t\ttype = \"video\"\n\t\t\tmid = \"v\"\n"
        f"\t\t\tport = {rtp_port}\n\t\t\tpt = 96\n\t\t\tcodec = \"vp8\"\n\t\t}}\n\t)\n}}\n")
    return folder / "janus.jcfg"


class JanusViewer:
    """A viewer of the Janus mountpoint that only decrypts and counts."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.video = RtpCounter()

    async def _post(self, http: aiohttp.ClientSession, url: str, body: dict) -> dict:
        body = dict(body, transaction=os.urandom(6).hex())
        async with http.post(url, json=body) as r:
            reply = await r.json(content_type=None)
        if reply.get("janus") == "error":
            raise RuntimeError(f"Janus: {reply['error']}")
        return reply

    async def play(self, http: aiohttp.ClientSession, base: str) -> None:
        session = (await self._post(http, base, {"janus": "create"}))["data"]["id"]
        url = f"{base}/{session}"
        handle = (await self._post(http, url, {"janus": "attach", "plugin": "janus.plugin.streaming"}))["data"]["id"]
        hurl = f"{url}/{handle}"
        await self._post(http, hurl, {"janus": "message", "body": {"request": "watch", "id": MOUNTPOINT}})
        offer = None
        deadline = time.monotonic() + 15
        while offer is None and time.monotonic() < deadline:
            async with http.get(f"{url}?maxev=1&rid={time.time_ns()}") as r:
                for event in (lambda e: e if isinstance(e, list) else [e])(await r.json(content_type=None)):
                    if event.get("jsep", {}).get("type") == "offer":
                        offer = event["jsep"]["sdp"]
        if offer is None:
            raise RuntimeError("Janus sent no offer")
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        for t in self.pc.getTransceivers():
            count_packets(t.receiver, self.video)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        await self._post(http, hurl, {"janus": "message", "body": {"request": "start"},
                                      "jsep": {"type": "answer", "sdp": self.pc.localDescription.sdp}})
        await wait_connected(self.pc)


class WhepViewer(JanusViewer):
    """The same counting viewer on Stagepass, over WHEP."""

    async def play(self, http: aiohttp.ClientSession, base: str) -> None:
        t = self.pc.addTransceiver("video", direction="recvonly")
        t.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("video").codecs
                               if c.mimeType in ("video/VP8", "video/rtx")])
        count_packets(t.receiver, self.video)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        async with http.post(f"{base}/whep/{ROOM}", data=self.pc.localDescription.sdp,
                             headers={"Content-Type": "application/sdp"}) as r:
            body = await r.text()
            if r.status != 201:
                raise RuntimeError(f"WHEP {r.status}: {body[:200]}")
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
        await wait_connected(self.pc)


async def viewers_worker(kind: str, base: str) -> None:
    viewers: list[JanusViewer] = []
    gate = asyncio.Semaphore(5)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=40)) as http:

        async def connect(v: JanusViewer) -> Optional[str]:
            async with gate:
                try:
                    await v.play(http, base)
                    return None
                except Exception as exc:
                    await v.pc.close()
                    return f"{type(exc).__name__}: {exc}"

        async def handle(msg: dict) -> dict:
            if msg["cmd"] == "add":
                new = [(JanusViewer if kind == "janus" else WhepViewer)() for _ in range(msg["n"])]
                errors = [e for e in await asyncio.gather(*(connect(v) for v in new)) if e]
                viewers.extend(v for v in new if v.pc.connectionState == "connected")
                return {"connected": len(viewers), "errors": errors[:3]}
            return {"t": time.monotonic(), "packets": [v.video.packets for v in viewers]}

        try:
            await command_loop(handle)
        finally:
            await asyncio.gather(*(v.pc.close() for v in viewers), return_exceptions=True)


# ======================================================================= steps
class Step:
    def __init__(self, server: str, n: int, args: argparse.Namespace, logdir: Path) -> None:
        self.server, self.n, self.args, self.logdir = server, n, args, logdir
        self.children: list[Child] = []
        self.server_cpus = args.server_cpus or ALL_CPUS
        self.client_cpus = (ALL_CPUS - args.server_cpus) or ALL_CPUS

    async def run(self, http: aiohttp.ClientSession) -> dict:
        try:
            return await self._run(http)
        finally:
            await asyncio.gather(*(c.stop() for c in reversed(self.children)))

    def cpu_seconds(self, pid: int) -> float:
        """The server's CPU seconds so far (``benchmarks/scale.py`` adds its media workers')."""
        return process_cpu_seconds(pid)

    async def _worker(self, name: str, *args: str) -> Child:
        child = await Child.start(f"{self.server}-{self.n}-{name}",
                                  [sys.executable, str(Path(__file__).resolve()), *args],
                                  self.logdir, self.client_cpus, nice=10 if name.startswith("viewers") else 0)
        self.children.append(child)
        return child

    async def _start_server(self, http: aiohttp.ClientSession) -> tuple[Child, str, str]:
        port = free_port()
        if self.server.startswith("stagepass"):
            argv = [sys.executable, "-m", "stagepass.cli", "serve", "--port", str(port),
                    "--data-dir", str(self.logdir / "data"), "--rooms", f"{ROOM}={KEY}",
                    "--log-level", "WARNING", "--recordings", "off"]
            if self.server == "stagepass-ports":
                argv += ["--udp-port", "off"]
            elif self.server.startswith("stagepass-workers"):  # benchmarks/scale.py
                argv += ["--workers", self.server.removeprefix("stagepass-workers")]
            root = self.args.base_root.resolve() if self.server == "stagepass-base" else ROOT
            env = dict(os.environ, PYTHONPATH=str(root), STAGEPASS_LOW_RENDITION="off")  # as Janus: no encoder
            # one process unless a workers variant's flag says otherwise (the default is one worker
            # of each kind per CPU; a variable, as older checkouts ignore unknown ones)
            env.update(STAGEPASS_WORKERS="1", STAGEPASS_INTERACTION_WORKERS="1")
            server = await Child.start(f"{self.server}-{self.n}-server", argv, self.logdir,
                                       self.server_cpus, env=env)
            base, feed = f"http://127.0.0.1:{port}", f"whip:http://127.0.0.1:{port}"
            probe = f"{base}/api/rooms/{ROOM}"
        else:
            rtp_port = free_port()
            config = janus_config(self.logdir / f"{self.server}-{self.n}-conf", port, rtp_port,
                                  2 if self.server == "janus-el2" else 0)
            # its log to a file (-N -L): a pipe nobody reads would fill and stall it
            server = await Child.start(f"{self.server}-{self.n}-server",
                                       [shutil.which("janus") or "janus", "-C", str(config),
                                        "-F", str(config.parent), "-o", "-N",
                                        "-L", str(self.logdir / f"{self.server}-{self.n}-janus.log")],
                                       self.logdir, self.server_cpus)
            base, feed = f"http://127.0.0.1:{port}/janus", f"rtp:{rtp_port}"
            probe = f"{base}/info"
        server.takes_commands = False
        self.children.insert(0, server)

        async def up() -> bool:
            if server.proc.returncode is not None:
                raise RuntimeError(f"server exited; see {server.log}")
            try:
                async with http.get(probe) as r:
                    return r.status == 200
            except aiohttp.ClientError:
                return False

        await until(up, 30, f"{self.server} to answer")
        return server, base, feed

    async def _run(self, http: aiohttp.ClientSession) -> dict:
        server, base, feed = await self._start_server(http)
        feeder = await self._worker("feeder", "--worker", "feeder", "--url", feed,
                                    "--clip", str(self.logdir / "clip.vp8"))
        await feeder.request({"cmd": "publish"})
        kind = "janus" if self.server.startswith("janus") else "whep"
        viewers = [await self._worker(f"viewers{i}", "--worker", "viewers", "--kind", kind, "--url", base)
                   for i in range(math.ceil(self.n / VIEWERS_PER_PROCESS))]
        sizes = [min(VIEWERS_PER_PROCESS, self.n - i * VIEWERS_PER_PROCESS) for i in range(len(viewers))]
        added = await asyncio.gather(*(v.request({"cmd": "add", "n": k}) for v, k in zip(viewers, sizes)))
        connected = sum(r["connected"] for r in added)
        if connected < self.n:
            raise RuntimeError(f"{connected}/{self.n} viewers connected: {[e for r in added for e in r['errors']][:2]}")

        async def snap() -> list[int]:
            replies = await asyncio.gather(*(v.request({"cmd": "snap"}) for v in viewers))
            return [p for r in replies for p in r["packets"]]

        async def receiving() -> bool:
            return all(p > 0 for p in await snap())

        await until(receiving, 20, "video at every viewer")
        await asyncio.sleep(self.args.warmup)
        pid = server.proc.pid
        profiler = None
        if self.args.profile and self.server.startswith("stagepass") and self.n:
            profile = self.args.profile / f"{self.server}-{self.n}.txt"
            profiler = await start_profiler(pid, self.args.seconds, profile)
        first, t0 = await snap(), time.monotonic()
        cpu0, box0 = self.cpu_seconds(pid), machine_cpu()
        slices, prev, prev_t = [], cpu0, t0
        for i in range(1, self.args.seconds + 1):
            await asyncio.sleep(max(0.0, t0 + i - time.monotonic()))
            cpu, now = self.cpu_seconds(pid), time.monotonic()
            slices.append((cpu - prev) / (now - prev_t))
            prev, prev_t = cpu, now
        last, t1, box1 = await snap(), time.monotonic(), machine_cpu()
        if profiler is not None:
            await asyncio.wait_for(profiler.wait(), 30)
            print(hot_spots(profile, top=20), flush=True)
        per_viewer = [(b - a) / (t1 - t0) for a, b in zip(first, last)]
        return {
            "server": self.server, "viewers": self.n,
            "cpu_pct": statistics.median(slices) * 100,
            "packets_out_per_s": sum(per_viewer),
            "viewer_pps_min": min(per_viewer) if per_viewer else None,
            "viewer_pps_median": statistics.median(per_viewer) if per_viewer else None,
            "box_pct": (box1[0] - box0[0]) / max(1, box1[1] - box0[1]) * 100,
        }


# ======================================================================= report
def stream_rate(clip: tuple[bytes, ...]) -> float:
    """RTP packets per second of the clip as aiortc's VP8 packetizer cuts it."""
    from aiortc.codecs.vpx import Vp8Encoder

    return sum(len(Vp8Encoder._packetize(f, 0)) for f in clip) * FPS / len(clip)


def starved(row: dict, rate: float) -> bool:
    """Viewers that got under 85% of the stream: the load generator (or the server) did
    not keep up, so packets out are undercounted and the row says nothing about CPU per
    packet. Such rows are left out of the medians and listed."""
    return bool(row["viewers"]) and (row["viewer_pps_median"] or 0) < 0.85 * rate


def medians(rows: list[dict]) -> dict[tuple[str, int], dict]:
    grouped: dict[tuple[str, int], list[dict]] = {}
    for r in rows:
        grouped.setdefault((r["server"], r["viewers"]), []).append(r)
    out = {}
    for key, group in grouped.items():
        out[key] = {k: statistics.median([g[k] for g in group if g.get(k) is not None] or [0])
                    for k in ("cpu_pct", "packets_out_per_s", "viewer_pps_min", "box_pct")}
        out[key]["rounds"] = len(group)
    return out


def us_per_packet(m: dict, server: str, n: int) -> Optional[float]:
    row, idle = m.get((server, n)), m.get((server, 0))
    if not row or not idle or not row["packets_out_per_s"]:
        return None
    return (row["cpu_pct"] - idle["cpu_pct"]) / 100 / row["packets_out_per_s"] * 1e6


def report(rows: list[dict], ns: list[int], servers: list[str], rate: float) -> dict:
    bad = [r for r in rows if starved(r, rate)]
    m = medians([r for r in rows if not starved(r, rate)])
    table = {n: {s: us_per_packet(m, s, n) for s in servers} for n in ns}
    fmt = lambda v: "-" if v is None else f"{v:.1f} us"  # noqa: E731
    print("\nServer CPU per forwarded packet, net of ingest (median of rounds):\n")
    base = "stagepass-base" in servers
    head = "| N viewers | " + " | ".join(servers) + " | Stagepass / Janus el=2 |"
    print(head + (" Stagepass / base |" if base else ""))
    print("|" + "---|" * (len(servers) + 2 + base))
    for n in ns:
        s, j, b = table[n].get("stagepass"), table[n].get("janus-el2"), table[n].get("stagepass-base")
        ratio = f"{s / j:.2f}x" if s and j else "-"
        line = f"| {n} | " + " | ".join(fmt(table[n][x]) for x in servers) + f" | {ratio} |"
        print(line + ((f" {s / b:.2f}x |" if s and b else " - |") if base else ""))
    print("\nRaw medians (server CPU % of a core, packets/s received by all viewers, slowest viewer pps):\n")
    print("| server | N | CPU % | packets/s out | slowest viewer pps | machine busy % | rounds |")
    print("|---|---|---|---|---|---|---|")
    for (server, n), r in sorted(m.items(), key=lambda kv: (kv[0][1], servers.index(kv[0][0]))):
        print(f"| {server} | {n} | {r['cpu_pct']:.1f} | {r['packets_out_per_s']:.0f} | "
              f"{r['viewer_pps_min']:.0f} | {r['box_pct']:.0f} | {r['rounds']} |")
    print(f"\nThe stream: {rate:.0f} packets/s.")
    for r in bad:
        print(f"Left out (viewers got {r['viewer_pps_median']:.0f} packets/s each): {r['server']} N={r['viewers']}")
    return {"stream_pps": rate, "left_out": bad, "us_per_packet": {str(n): v for n, v in table.items()},
            "medians": [{"server": k[0], "viewers": k[1], **v} for k, v in m.items()]}


async def run(args: argparse.Namespace) -> dict:
    if shutil.which("janus") is None:
        raise SystemExit("janus not found: apt-get install janus (Debian's Janus 1.1.2)")
    ns = [0] + [int(n) for n in args.viewers.split(",") if n.strip() and int(n)]
    servers = [s for s in args.servers.split(",") if s]
    if args.base_root is not None and "stagepass-base" not in servers:
        servers.insert(servers.index("stagepass") + 1 if "stagepass" in servers else 0, "stagepass-base")
    logdir = Path(tempfile.mkdtemp(prefix="stagepass-janus-"))
    print(f"logs in {logdir}; servers {', '.join(servers)}; N {ns}; {args.rounds} round(s)", flush=True)
    clip = vp8_clip()
    save_clip(clip, logdir / "clip.vp8")  # encoded once; feeders read it
    rate = stream_rate(clip)
    rows: list[dict] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        for r in range(args.rounds):
            for n in ns:
                for server in servers:
                    try:
                        row = await asyncio.wait_for(Step(server, n, args, logdir).run(http),
                                                     args.seconds + args.warmup + 150)
                    except (RuntimeError, OSError, asyncio.TimeoutError, aiohttp.ClientError) as exc:
                        print(f"  round {r + 1} {server:15} N={n:<3} FAILED: {exc}", flush=True)
                        continue
                    rows.append(row)
                    print(f"  round {r + 1} {server:15} N={n:<3} CPU {row['cpu_pct']:5.1f}%  "
                          f"{row['packets_out_per_s']:7.0f} pkt/s out  slowest viewer "
                          f"{row['viewer_pps_min'] or 0:.0f} pkt/s  machine {row['box_pct']:.0f}%", flush=True)
    return {"rows": rows, **report(rows, ns, servers, rate)}


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", default="25,50")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=12)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--servers", default=",".join(SERVERS), help="of " + ", ".join(SERVERS))
    parser.add_argument("--server-cpus", default="0" if len(ALL_CPUS) > 1 else "",
                        help="CPUs the server is pinned to, the feeder and viewers get the others")
    parser.add_argument("--base-root", type=Path, metavar="DIR",
                        help="also run Stagepass from this checkout (server stagepass-base)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="py-spy the Stagepass servers into DIR and print their hot spots "
                        "(numbers of a profiled run are not for comparison)")
    parser.add_argument("--worker", choices=["feeder", "viewers"], help=argparse.SUPPRESS)
    parser.add_argument("--kind", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--clip", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker == "feeder":
        asyncio.run(feeder_worker(args.url, args.clip))
        return 0
    if args.worker == "viewers":
        asyncio.run(viewers_worker(args.kind, args.url))
        return 0
    args.server_cpus = frozenset(int(c) for c in args.server_cpus.split(",") if c.strip())
    results = asyncio.run(run(args))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
