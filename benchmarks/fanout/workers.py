"""The viewer processes of a step: light viewers (count only) and the decoding sample viewer."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from common.children import command_loop
from common.viewers import LightViewer, RtpCounter, connect_all, count_packets, wait_connected
from fanout import CONNECTS_IN_FLIGHT, ROOM
from tests.support.peers import Viewer

__all__ = ["sample_worker", "viewers_worker"]


async def viewers_worker(base_url: str) -> None:
    """Light viewers, added on command (``add``), reporting counters on ``snap``."""
    viewers: list[LightViewer] = []
    gate = asyncio.Semaphore(CONNECTS_IN_FLIGHT)
    async with aiohttp.ClientSession() as http:

        async def handle(msg: dict) -> dict:
            if msg["cmd"] == "add":
                new = [LightViewer() for _ in range(msg["n"])]
                errors = await connect_all(new, lambda v: v.play(http, base_url, ROOM), gate)
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
    """One decoding viewer (``tests.support.peers.Viewer``) that also counts like a light one."""
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
