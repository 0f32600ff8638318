"""``CloseListeners``: what to run once an object (a session, a publisher) has closed.

Callers register listeners (give back a seat, tell the control plane); the owner runs
them once when it closes (``run``). A listener registered after that runs at once, so a
caller that registers after a call that made something that already closed (an encoder
that hung up straight away) is still told. That late run is a task of ``late``, a
long-lived owner (the room's tasks) that cancels and awaits it at shutdown; once that owner
has closed too, the listener is not run and a warning says so. A failing listener is
logged with the owner's context and the others still run.
"""

from __future__ import annotations

import logging
from typing import Awaitable, Callable

from core.tasks import TaskOwner

__all__ = ["CloseListener", "CloseListeners"]

CloseListener = Callable[[], Awaitable[None]]


class CloseListeners:
    """The close listeners of one object; ``log`` carries its context (room, session),
    ``late`` runs the listeners registered after the close (it outlives the object)."""

    def __init__(self, log: logging.Logger | logging.LoggerAdapter, late: TaskOwner,
                 what: str = "close listener") -> None:
        self._log = log
        self._what = what
        self._listeners: list[CloseListener] = []
        self._ran = False
        self._late = late

    @property
    def ran(self) -> bool:
        return self._ran

    def add(self, listener: CloseListener) -> None:
        """Run ``listener`` once the owner has closed; at once (in a task) if it already has."""
        if self._ran:
            if self._late.spawn(self._call(listener), name="late-close-listener") is None:
                self._log.warning("%s not run: registered after the close, once its owner had shut down",
                                  self._what)
        else:
            self._listeners.append(listener)

    async def run(self) -> None:
        """The owner closed: run every listener once, in the order they came; idempotent."""
        if self._ran:
            return
        self._ran = True
        listeners, self._listeners = self._listeners, []
        for listener in listeners:
            await self._call(listener)

    async def _call(self, listener: CloseListener) -> None:
        try:
            await listener()
        except Exception:
            self._log.exception("%s failed", self._what)

    def __len__(self) -> int:
        """Listeners waiting for the close."""
        return len(self._listeners)
