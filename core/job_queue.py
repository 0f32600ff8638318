"""``JobQueue``: jobs keyed by a folder, run one at a time by one worker task.

What makes the queue persistent is each job's own state on disk (a recording's
``manifest.json``): :meth:`JobQueue.resume` re-queues what a scan of the disk finds
unfinished, so a job interrupted by a shutdown or a crash runs again on the next start.
A folder already queued or running is not queued twice. The job itself runs off the
loop as it needs (a worker thread for CPU-heavy work, asyncio for network I/O).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Awaitable, Callable, Iterable, Optional

from core.tasks import TaskOwner

__all__ = ["JobQueue"]


class JobQueue:
    """``run(path)`` is awaited for each queued folder in turn; an exception it raises is
    logged (the job records its own failure on disk) and the next job runs."""

    def __init__(
        self,
        name: str,
        run: Callable[[Path], Awaitable[object]],
        logger: logging.Logger | logging.LoggerAdapter,
    ) -> None:
        self.name = name
        self.log = logger
        self._run = run
        #: the folder whose job is running, if any
        self.current: Optional[Path] = None
        self._queue: asyncio.Queue[Path] = asyncio.Queue()
        self._queued: set[Path] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks = TaskOwner(logger)
        self._started = False
        self._closed = False

    @property
    def queued(self) -> int:
        """Jobs waiting (not counting the running one)."""
        return len(self._queued)

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        self._tasks.spawn(self._work(), name=f"{self.name}-worker")

    async def close(self) -> None:
        """Cancel the worker (and so the running job) and wait for it; idempotent."""
        self._closed = True
        await self._tasks.close()

    def enqueue(self, directory: Path | str) -> bool:
        """Queue one folder; False if it is already queued or running, or the queue closed."""
        path = Path(directory).resolve()
        if self._closed or path in self._queued or path == self.current:
            return False
        self._queued.add(path)
        self._idle.clear()
        self._queue.put_nowait(path)
        return True

    async def resume(self, scan: Callable[[], Iterable[Path]]) -> list[Path]:
        """Run ``scan`` (blocking: it reads the disk) in a thread, queue what it found;
        returns the folders queued."""
        found = await asyncio.to_thread(lambda: list(scan()))
        return [p for p in found if self.enqueue(p)]

    async def join(self) -> None:
        """Wait until the queue is empty and no job runs (tests, benchmarks)."""
        await self._idle.wait()

    async def _work(self) -> None:
        while True:
            path = await self._queue.get()
            self._queued.discard(path)
            self.current = path
            try:
                await self._run(path)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.log.warning("%s of %s failed: %s", self.name, path, exc)
            finally:
                self.current = None
                if self._queue.empty():
                    self._idle.set()
