"""Waiting for a server's state and for viewers' frames, for tests against real servers."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from tests.support.peers import Viewer


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
    return all(b > a for a, b in zip(numbers, numbers[1:]))
