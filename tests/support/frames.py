"""Waiting for a server's state and for viewers' frames, for tests against real servers."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from tests.support.peers import Viewer
from tests.support.played_frames import PlayedFrame


async def get_json(base: str, path: str) -> dict:
    async with aiohttp.ClientSession() as http:
        async with http.get(base + path) as r:
            assert r.status == 200, (path, r.status)
            return await r.json()


async def until(predicate, timeout: float = 20.0, what: str = "", interval: float = 0.1) -> Any:
    """Poll ``await predicate()`` every ``interval`` s until it is true (its value is
    returned); AssertionError after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (value := await predicate()):
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(interval)
    return value


async def frames_grow(viewer: Viewer, count: int = 20, timeout: float = 20.0) -> list[int]:
    """The next ``count`` frame numbers the viewer decodes."""
    start = len(viewer.numbers)

    async def enough() -> bool:
        return len(viewer.numbers) >= start + count

    await until(enough, timeout, "frames")
    return viewer.numbers[start:]


def in_order(numbers: list[int]) -> bool:
    """Frame numbers a viewer decoded never go back, and repeat only where the picture is the
    decoder concealing a loss the viewer's receiver saw (``PlayedFrame.after_loss``): a frame
    of its own (a later timestamp) decoded after the receiver asked for a keyframe since the
    number was first shown. A frame decoded twice, or a repeat without a loss, fails; so do
    repeats in a list of plain ints."""
    for a, b in zip(numbers, numbers[1:]):
        if b > a:
            continue
        if b < a or not (isinstance(a, PlayedFrame) and isinstance(b, PlayedFrame)):
            return False
        if not (b.pts > a.pts and b.after_loss()):
            return False
    return True


async def resumed_from(viewer: Viewer, first: int, count: int = 15, timeout: float = 30.0) -> list[int]:
    """The frame numbers from ``first`` on (a new publisher numbering from there), once the
    viewer decoded ``count`` of them; a viewer that decodes behind (a loaded machine) may
    show older frames first, which are left out."""
    async def arrived() -> bool:
        return sum(1 for n in viewer.numbers if n >= first) >= count

    await until(arrived, timeout, f"frames numbered from {first}")
    return [n for n in viewer.numbers if n >= first]
