"""``ChildProcesses``: worker processes by index, watched, started again, stopped.

The media workers (``mediaserver.workers.supervisor``) and the interaction workers
(``stagepass.interaction_workers``) are both N numbered child processes of the control plane
that must run as long as it runs. What differs between them is how one is started (its
channel, its settings, when it counts as ready) and how it is asked to stop; that is given
as functions. What is the same lives here:

- a child that exits while the owner runs is logged with its index, pid, exit and lifetime,
  its owner hears of it (``exited``), and it is started again after ``restart_delay(lived)``
  (a child that keeps dying at start is not restarted in a tight loop);
- a child that was stopped, not crashed, is logged at INFO and left stopped: one that exits
  cleanly when the owner says a clean exit is a stop, and any that exits while the owner
  closes. One ended by SIGTERM or SIGINT is logged at INFO too: systemd, ``docker stop`` and
  Ctrl-C signal the whole process group, so the children often exit just before their owner
  starts closing. If the owner is still not closing ``SIGNAL_GRACE`` later, the signal was
  for that child alone (an operator's ``kill``): the node runs on, so it is started again;
- ``close`` ends the watchers, asks every child to stop (SIGTERM by default), waits
  ``stop_timeout`` for each, then kills (SIGKILL) those still running.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from typing import Awaitable, Callable, Optional

from core.tasks import TaskOwner

__all__ = ["ChildProcesses", "describe_exit"]

Process = asyncio.subprocess.Process

#: exits of a child asked to stop (asyncio gives a signal as a negative return code)
STOPPED_BY_SIGNAL = frozenset({-signal.SIGTERM, -signal.SIGINT})
#: seconds a child stopped by a signal waits for its owner to start closing too
SIGNAL_GRACE = 3.0


class ChildProcesses:
    """Numbered child processes of one kind (``what``, e.g. "media worker").

    ``spawn(index)`` starts child ``index`` and returns its process once it counts as started
    (it may raise: the child is then not watched); it calls ``register`` as soon as the process
    exists, so that ``close`` stops it even while it is still starting. ``exited(index, code)`` is
    awaited when a watched child exits, before any restart (``closing`` tells whether the owner
    is closing). ``restart_clean_exit=False`` leaves a child that exited with status 0 stopped
    (it was stopped on purpose, e.g. a signal to the process group).
    """

    def __init__(self, what: str, logger: logging.Logger, spawn: Callable[[int], Awaitable[Process]], *,
                 exited: Optional[Callable[[int, Optional[int]], Awaitable[None]]] = None,
                 restart_delay: Callable[[float], float] = lambda lived: 1.0,
                 restart_clean_exit: bool = True, stop_timeout: float = 15.0,
                 signal_grace: float = SIGNAL_GRACE) -> None:
        self.what = what
        self.log = logger
        self._spawn = spawn
        self._exited = exited
        self._restart_delay = restart_delay
        self._restart_clean_exit = restart_clean_exit
        self._stop_timeout = stop_timeout
        self._signal_grace = signal_grace
        self.processes: dict[int, Process] = {}
        self.restarts = 0
        self.closing = False
        self._tasks = TaskOwner(logger)

    def register(self, index: int, process: Process) -> None:
        """``process`` is child ``index`` from now on (``spawn`` calls it once the process exists)."""
        self.processes[index] = process

    async def start(self, index: int) -> Process:
        """Start child ``index`` and watch it; raises what ``spawn`` raises."""
        started = time.monotonic()
        process = await self._spawn(index)
        self.processes[index] = process
        self._tasks.spawn(self._watch(index, process, started), name=f"watch-{self.what.replace(' ', '-')}-{index}")
        return process

    async def _watch(self, index: int, process: Process, started: float) -> None:
        code = await process.wait()
        if self._exited is not None:
            try:
                await self._exited(index, code)
            except Exception:
                self.log.exception("%s %d: handling its exit failed", self.what, index)
        lived = time.monotonic() - started
        if self._stopped(code) or code in STOPPED_BY_SIGNAL:
            self.log.info("%s %d (pid %d) stopped: exited with %s after %.1f s", self.what, index, process.pid,
                          describe_exit(code), lived)
            if self._stopped(code):
                return
            await asyncio.sleep(self._signal_grace)  # the owner's close cancels this watch
            if self.closing:
                return
            self.log.warning("%s %d was stopped alone (the node runs on); starting it again", self.what, index)
            lived = time.monotonic() - started
        else:
            self.log.error("%s %d (pid %d) exited with %s after %.1f s; starting it again", self.what, index,
                           process.pid, describe_exit(code), lived)
        await asyncio.sleep(self._restart_delay(lived))
        if self.closing:
            return
        self.restarts += 1
        try:
            replacement = await self.start(index)
        except Exception:
            self.log.exception("%s %d could not be started again", self.what, index)
            return
        self.log.warning("%s %d started again (pid %d)", self.what, index, replacement.pid)

    def _stopped(self, code: Optional[int]) -> bool:
        """Whether a child that exited with ``code`` was stopped for good (not started again)."""
        return self.closing or (code == 0 and not self._restart_clean_exit)

    async def close(self, ask: Optional[Callable[[int, Process], Awaitable[None]]] = None) -> None:
        """End the watchers (no restart from now on), ask every child to stop (``ask``, by default
        SIGTERM), wait ``stop_timeout`` for each and kill those still running. Idempotent."""
        self.closing = True
        await self._tasks.close()

        async def stop(index: int, process: Process) -> None:
            try:
                if ask is not None:
                    await ask(index, process)
                elif process.returncode is None:
                    process.terminate()
            except ProcessLookupError:
                pass
            except Exception:
                self.log.exception("%s %d: asking it to stop failed", self.what, index)
            try:
                await asyncio.wait_for(process.wait(), self._stop_timeout)
            except asyncio.TimeoutError:
                self.log.warning("%s %d (pid %d) did not stop within %.0f s; killing it", self.what, index,
                                 process.pid, self._stop_timeout)
                try:
                    process.kill()
                except ProcessLookupError:
                    pass
                await process.wait()

        await asyncio.gather(*(stop(i, p) for i, p in list(self.processes.items())))

def describe_exit(code: Optional[int]) -> str:
    """``status 3`` or ``signal 9`` (asyncio gives a signal as a negative return code)."""
    if code is not None and code < 0:
        return f"signal {-code}"
    return f"status {code}"
