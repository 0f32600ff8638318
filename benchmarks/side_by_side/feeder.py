"""The feeder process: the clip in real time, over WHIP to Stagepass or as plain RTP to
Janus's mountpoint, packetized by the same aiortc code."""

from __future__ import annotations

import asyncio
import fractions
import random
import socket
import time
from typing import Optional

import av

from common.children import command_loop
from common.viewers import wait_connected
from fanout import KEY, ROOM
from side_by_side.clip import FPS, VIDEO_CLOCK, load_clip
from tests.support.encoded_media import PacketLoopTrack
from tests.support.peers import Peer, prefer


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
