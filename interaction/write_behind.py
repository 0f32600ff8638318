"""``WriteBehind``: rows inserted in batches, off the path that broadcasts and acks.

A danmaku is broadcast and acknowledged first; its row waits here and is written with
the others of the last ``interval`` in one INSERT and one COMMIT, by a
``paywall.table_writer`` writer (this process's, or on an interaction worker without Redis
the node's control plane, which writes for all its workers). The queue is
bounded (``capacity`` rows): when the database cannot keep up, ``add`` refuses and the
caller says "busy" instead of letting memory grow. ``flush`` is awaited by readers that
must see every acknowledged row (exports, the recent danmaku a newcomer gets) and at
shutdown. A kill -9 loses the rows of at most the last ``interval`` plus one INSERT's
time (measured by ``tests/test_danmaku_cluster.py``); paid questions and tips are written
before they are acknowledged, never here.
"""

from __future__ import annotations

import asyncio
import logging

from core.tasks import TaskOwner
from paywall.table_writer import RowWriter

__all__ = ["WriteBehind", "WriteBehindFull"]

log = logging.getLogger("stagepass.interaction")


class WriteBehindFull(Exception):
    """The queue holds ``capacity`` rows: the database is behind."""


class WriteBehind:
    def __init__(self, writer: RowWriter, interval: float = 0.25, capacity: int = 20_000,
                 name: str = "rows") -> None:
        self._writer = writer
        self.interval = interval
        self.capacity = capacity
        self.name = name
        self._pending: list[dict] = []
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self.written = 0  #: rows committed
        self.batches = 0  #: INSERTs committed
        self.failures = 0

    def start(self, tasks: TaskOwner) -> None:
        """Write every ``interval`` from a task of ``tasks`` (which cancels it after ``close``)."""
        tasks.spawn(self._run(), name=f"write-behind-{self.name}")

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, row: dict) -> None:
        """Queue one row (column -> value); ``WriteBehindFull`` when the queue is full."""
        if len(self._pending) >= self.capacity:
            raise WriteBehindFull(f"{len(self._pending)} {self.name} waiting for the database")
        self._pending.append(row)
        self._wake.set()

    async def _run(self) -> None:
        """Write ``interval`` after the first row queued since the last write; nothing wakes
        while no row waits (a quiet room costs no timer)."""
        while True:
            await self._wake.wait()
            await asyncio.sleep(self.interval)
            self._wake.clear()
            if self._pending:
                try:
                    await self.flush()
                except Exception:  # kept for the next round; logged once per failure
                    self._wake.set()
                    log.exception("writing %d %s failed; retrying in %.2f s",
                                  len(self._pending), self.name, self.interval)
            if self._pending:  # queued while the write was under way
                self._wake.set()

    async def flush(self) -> None:
        """Write every queued row (and wait for a write already under way)."""
        async with self._lock:
            rows, self._pending = self._pending, []
            if not rows:
                return
            try:
                await self._writer.write(rows)
            except BaseException:
                self.failures += 1
                self._pending[:0] = rows  # back in front, in order
                raise
            self.written += len(rows)
            self.batches += 1

    async def close(self) -> None:
        """Flush at shutdown (after the owner has cancelled ``_run``); rows that cannot be
        written are counted in the log, not raised: shutdown goes on."""
        try:
            await self.flush()
        except Exception as exc:
            log.error("%d %s could not be written at shutdown and are lost (%s: %s)",
                      len(self._pending), self.name, type(exc).__name__, exc)
