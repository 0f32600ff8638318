"""``Batcher``: adaptive batching of a room's broadcasts, over items already encoded.

A danmaku in a quiet room goes out at once (on the next turn of the event loop, so the
items of one turn share a frame). Under load a room's frames are spaced by
``cost_factor`` times what the last frame cost to fan out, never more than ``interval``:
the items arriving meanwhile are gathered into the next frame. So latency stays low while
the loop keeps up, and the cost of fan-out stays bounded (about ``1 / (1 + cost_factor)``
of the loop per busy room) when it cannot. ``max_items`` waiting flush at once. With
``interval=0`` every item goes out alone (no batching).

Items are JSON texts, encoded once where they were accepted; a chunk of several items
(comma-joined, as they arrive from another process) is added in one call. A frame is the
JSON array of its items, made by joining texts, and handed to ``write(room, items_json)``,
which sends it to this process's sockets of the room; nothing is decoded here. So a
process receiving other processes' items batches them with its own into the same frames:
each viewer gets as many frames as on one process, whichever process it is on.

With ``processes`` > 1 (``--interaction-workers``: the node's sockets spread over that
many processes, each writing a frame to its share of the room), the gap is reckoned on
the room's whole fan-out on the node, ``processes`` times this process's: the node sends
the frames one process would, each process pays its share, and the other cores are
capacity (more load before the gap reaches ``interval``), not more frames at the same load.

A frame's cost is the loop thread's CPU time (``time.thread_time``) spent writing it, not
wall-clock time: on a loaded machine the wall clock also counts the time other processes
held the core, which would widen the gap and change the frame count with the machine's
load rather than with this room's work.

``written``, when set, is told the acceptance times (wall clock) of the frame's items that
were accepted on this process, once the frame has been written (the danmaku delivery
delay metric).
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable, Optional

from core.tasks import TaskOwner

__all__ = ["Batcher"]

#: sends a frame (the JSON array of its items) to this process's sockets of a room
Write = Callable[[str, str], None]


class _Room:
    __slots__ = ("chunks", "count", "stamps", "scheduled", "last_flush", "cost")

    def __init__(self) -> None:
        self.chunks: list[str] = []
        self.count = 0  # items in ``chunks``
        self.stamps: list[float] = []  # acceptance times of this process's items
        self.scheduled = False
        self.last_flush = -1e9  # monotonic seconds
        self.cost = 0.0  # CPU seconds (this thread's) the last frame took to fan out


class Batcher:
    def __init__(self, write: Write, tasks: TaskOwner, interval: float = 0.1,
                 max_items: int = 50, cost_factor: float = 3.0, name: str = "danmaku", processes: int = 1) -> None:
        self._write = write
        self._tasks = tasks
        self.interval = interval
        self.max_items = max_items
        self.cost_factor = cost_factor * max(1, processes)  # the gap per second a frame cost here
        self.name = name
        self._rooms: dict[str, _Room] = {}
        self.frames = 0
        self.items = 0  #: items written, over all frames
        self.written: Optional[Callable[[list[float]], None]] = None  #: told each frame's local stamps

    def gap(self, room: str) -> float:
        """Seconds between two frames of ``room`` now (0 in a quiet room)."""
        state = self._rooms.get(room)
        return min(self.interval, self.cost_factor * state.cost) if state is not None else 0.0

    def add(self, room: str, chunk: str, count: int = 1, stamp: Optional[float] = None) -> None:
        """Queue ``count`` encoded items (``chunk``: one JSON text, or several comma-joined);
        ``stamp``: the acceptance time (``time.time()``) of an item accepted here."""
        if self.interval <= 0:
            self._send(room, chunk, count, [stamp] if stamp is not None else [], None)
            return
        state = self._rooms.get(room)
        if state is None:
            state = self._rooms[room] = _Room()
        state.chunks.append(chunk)
        state.count += count
        if stamp is not None:
            state.stamps.append(stamp)
        if state.count >= self.max_items:
            self.flush(room)
        elif not state.scheduled:
            state.scheduled = True
            wait = state.last_flush + min(self.interval, self.cost_factor * state.cost) - time.monotonic()
            self._tasks.spawn(self._flush_later(room, wait), name=f"batch-{self.name}-{room}")

    async def _flush_later(self, room: str, wait: float) -> None:
        await asyncio.sleep(max(0.0, wait))
        self.flush(room)

    def flush(self, room: str) -> None:
        """Write what waits for ``room`` now."""
        state = self._rooms.get(room)
        if state is None:
            return
        state.scheduled = False
        if state.count:
            chunks, count, stamps = state.chunks, state.count, state.stamps
            state.chunks, state.count, state.stamps = [], 0, []
            self._send(room, ",".join(chunks), count, stamps, state)
        elif time.monotonic() - state.last_flush > 10 * self.interval:
            del self._rooms[room]  # quiet again: forget it

    def _send(self, room: str, items: str, count: int, stamps: list[float], state: Optional[_Room]) -> None:
        self.frames += 1
        self.items += count
        started = time.thread_time()
        self._write(room, "[" + items + "]")
        if state is not None:
            state.last_flush = time.monotonic()
            state.cost = time.thread_time() - started
        if self.written is not None and stamps:
            self.written(stamps)
