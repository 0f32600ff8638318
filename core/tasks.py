"""``TaskGroupOwner``: every background task has an owner that cancels and awaits it."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Coroutine

__all__ = ["TaskOwner"]


class TaskOwner:
    """Holds the tasks of one object (a room, a peer session) and ends them with it.

    A task that fails is logged with the owner's context (room and session ids), never
    dropped silently.
    """

    def __init__(self, logger: logging.Logger | logging.LoggerAdapter) -> None:
        self._logger = logger
        self._tasks: set[asyncio.Task] = set()
        self._closed = False

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task | None:
        """Run ``coro`` as a task of this owner; None (``coro`` closed unstarted) once the
        owner has closed: the caller says what that means for it."""
        if self._closed:
            coro.close()
            return None
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._logger.error(
                "task %s failed", task.get_name(), exc_info=task.exception()
            )

    async def close(self) -> None:
        """Cancel every task and wait for them; idempotent."""
        self._closed = True
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def __len__(self) -> int:
        return len(self._tasks)
