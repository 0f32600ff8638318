"""``Batcher``: coalesces a busy room's broadcasts into a few frames per second.

Items queued for a room are flushed as one ``{"items": [...]}`` event every
``interval`` seconds, or at once when ``max_items`` are waiting, so a room with
hundreds of messages a second sends each viewer ~10 frames a second, not hundreds.
With ``interval=0`` every item goes out alone (the benchmark's baseline).

``written``, when set, is told the items of every frame once the frame has been handed
to the room's sockets (the danmaku delivery delay metric).
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Optional

from core.tasks import TaskOwner

__all__ = ["Batcher"]

Emit = Callable[[str, str, Any], Awaitable[None]]


class Batcher:
    def __init__(self, emit: Emit, event: str, tasks: TaskOwner, interval: float = 0.1,
                 max_items: int = 50) -> None:
        self._emit = emit
        self.event = event
        self._tasks = tasks
        self.interval = interval
        self.max_items = max_items
        self._pending: dict[str, list[Any]] = {}
        self.frames = 0
        self.items = 0  #: items emitted, over all frames
        self.written: Optional[Callable[[list[Any]], None]] = None  #: told each frame's items once written

    async def add(self, room: str, item: Any) -> None:
        if self.interval <= 0:
            await self._send(room, [item])
            return
        queue = self._pending.get(room)
        if queue is None:
            queue = self._pending[room] = []
            self._tasks.spawn(self._flush_later(room), name=f"batch-{self.event}-{room}")
        queue.append(item)
        if len(queue) >= self.max_items:
            await self.flush(room)

    async def _flush_later(self, room: str) -> None:
        await asyncio.sleep(self.interval)
        await self.flush(room)

    async def flush(self, room: str) -> None:
        items = self._pending.pop(room, None)
        if items:
            await self._send(room, items)

    async def _send(self, room: str, items: list[Any]) -> None:
        self.frames += 1
        self.items += len(items)
        await self._emit(room, self.event, {"items": items})
        if self.written is not None:
            self.written(items)
