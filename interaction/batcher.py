"""``Batcher``: adaptive batching of a room's broadcasts.

A danmaku in a quiet room goes out at once (on the next turn of the event loop, so the
items of one turn share a frame). Under load a room's frames are spaced by
``cost_factor`` times what the last frame cost to fan out, never more than ``interval``:
the items arriving meanwhile are gathered into the next ``{"items": [...]}`` frame. So
latency stays low while the loop keeps up, and the cost of fan-out stays bounded (about
``1 / (1 + cost_factor)`` of the loop per busy room) when it cannot. ``max_items``
waiting flush at once. With ``interval=0`` every item goes out alone (no batching).

``written``, when set, is told the items of every frame once the frame has been handed
to the room's sockets (the danmaku delivery delay metric).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable, Optional

from core.tasks import TaskOwner

__all__ = ["Batcher"]

Emit = Callable[[str, str, Any], Awaitable[None]]


class _Room:
    __slots__ = ("items", "scheduled", "last_flush", "cost")

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.scheduled = False
        self.last_flush = -1e9  # monotonic seconds
        self.cost = 0.0  # seconds the last frame took to fan out


class Batcher:
    def __init__(self, emit: Emit, event: str, tasks: TaskOwner, interval: float = 0.1,
                 max_items: int = 50, cost_factor: float = 3.0) -> None:
        self._emit = emit
        self.event = event
        self._tasks = tasks
        self.interval = interval
        self.max_items = max_items
        self.cost_factor = cost_factor
        self._rooms: dict[str, _Room] = {}
        self.frames = 0
        self.items = 0  #: items emitted, over all frames
        self.written: Optional[Callable[[list[Any]], None]] = None  #: told each frame's items once written

    def gap(self, room: str) -> float:
        """Seconds between two frames of ``room`` now (0 in a quiet room)."""
        state = self._rooms.get(room)
        return min(self.interval, self.cost_factor * state.cost) if state is not None else 0.0

    async def add(self, room: str, item: Any) -> None:
        if self.interval <= 0:
            await self._send(room, [item], None)
            return
        state = self._rooms.get(room)
        if state is None:
            state = self._rooms[room] = _Room()
        state.items.append(item)
        if len(state.items) >= self.max_items:
            await self.flush(room)
        elif not state.scheduled:
            state.scheduled = True
            wait = state.last_flush + min(self.interval, self.cost_factor * state.cost) - time.monotonic()
            self._tasks.spawn(self._flush_later(room, wait), name=f"batch-{self.event}-{room}")

    async def _flush_later(self, room: str, wait: float) -> None:
        await asyncio.sleep(max(0.0, wait))
        await self.flush(room)

    async def flush(self, room: str) -> None:
        state = self._rooms.get(room)
        if state is None:
            return
        state.scheduled = False
        items, state.items = state.items, []
        if items:
            await self._send(room, items, state)
        elif time.monotonic() - state.last_flush > 10 * self.interval:
            del self._rooms[room]  # quiet again: forget it

    async def _send(self, room: str, items: list[Any], state: Any) -> None:
        self.frames += 1
        self.items += len(items)
        started = time.perf_counter()
        await self._emit(room, self.event, {"items": items})
        if state is not None:
            state.last_flush = time.monotonic()
            state.cost = time.perf_counter() - started
        if self.written is not None:
            self.written(items)
