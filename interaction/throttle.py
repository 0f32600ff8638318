"""``Throttle``: coalesces changes to a key into at most one flush per interval.

Likes totals, poll results, the hand queue and presence all change far more often than
viewers need to hear about it: the first change goes out at once, later ones are merged
into at most one frame per ``interval``, and the last frame always shows the last state.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Hashable

from core.tasks import TaskOwner

__all__ = ["Throttle"]

log = logging.getLogger("stagepass.interaction")


class Throttle:
    """At most one ``flush(key)`` per ``interval`` seconds for each key that changed.

    ``mark(key)`` records a change. The first change after a quiet period is flushed at
    once; the changes of the next ``interval`` are flushed together at its end, and so
    on while changes keep coming. One loop task per busy key, owned by ``tasks`` (so it
    is cancelled on close); it ends after a quiet interval. The flushes of one key never
    overlap, so their frames leave in order and the last one reflects the last change.
    ``flush`` reads the current state itself (nothing is queued here).
    """

    def __init__(self, flush: Callable[[Any], Awaitable[None]], tasks: TaskOwner, interval: float,
                 name: str) -> None:
        self._flush = flush
        self._tasks = tasks
        self.interval = interval
        self.name = name
        self._dirty: set[Hashable] = set()
        self._running: set[Hashable] = set()
        self.frames = 0

    def mark(self, key: Hashable) -> None:
        self._dirty.add(key)
        if key in self._running:
            return
        self._running.add(key)
        if self._tasks.spawn(self._loop(key), name=f"{self.name}-{key}") is None:  # closing
            self._running.discard(key)
            self._dirty.discard(key)

    async def _loop(self, key: Hashable) -> None:
        try:
            while key in self._dirty:
                self._dirty.discard(key)
                self.frames += 1
                try:
                    await self._flush(key)
                except Exception:
                    log.exception("%s: flushing %s failed", self.name, key)
                await asyncio.sleep(self.interval)
        finally:
            self._running.discard(key)
