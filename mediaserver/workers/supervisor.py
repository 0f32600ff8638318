"""``WorkerPool``: the control plane's media worker processes, started, watched, restarted.

Each worker is ``python -m mediaserver.workers.worker`` with one end of a socket pair as
its ``Channel``, one end of a ``SOCK_SEQPACKET`` pair that connections are handed over on
(an RTMP encoder's TCP socket, ``hand_over``), and the settings the control plane loaded
(pickled into the run directory, which also holds the workers' pipe sockets); a worker's
own requests (``exchange``, ``claim``) go to ``on_request(index, op, args)``. A worker that exits
while the pool runs is logged with its index and pid, ``on_exit(index)`` lets the owner
forget its sessions, and it is started again (after a pause that grows while it keeps
dying at start). Closing the pool closes the channels: each worker then closes its rooms
and exits (``ChildProcesses``, which watches and restarts them, kills one that does not
within 15 s).
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any, Awaitable, Callable, Optional

from core.child_processes import ChildProcesses, describe_exit
from core.settings import Settings
from core.socket_handover import hand_over
from mediaserver.workers.channel import Channel, WorkerGone
from mediaserver.workers.worker import SETTINGS_FILE

__all__ = ["WorkerPool", "WorkerProcess"]

log = logging.getLogger("stagepass.workers")

EventHandler = Callable[[int, str, dict], Awaitable[None]]
#: a worker's request to the control plane (``exchange``: carry an edge's offer to the origin;
#: ``claim``: make this node an RTMP encoder's room's origin)
RequestHandler = Callable[[int, str, dict], Awaitable[Optional[dict]]]
_READY_TIMEOUT = 30.0
_STOP_TIMEOUT = 15.0


class WorkerProcess:
    """One running worker: its process and its channel."""

    def __init__(self, index: int, process: asyncio.subprocess.Process, channel: Channel,
                 handover: socket.socket) -> None:
        self.index = index
        self.process = process
        self.channel = channel
        self.handover = handover  #: connections handed to the worker (``core.socket_handover``)
        self.pid = process.pid
        self.ready = asyncio.Event()
        self.reader: Optional[asyncio.Task] = None

    @property
    def alive(self) -> bool:
        return self.ready.is_set() and not self.channel.gone and self.process.returncode is None


class WorkerPool:
    def __init__(self, settings: Settings, count: int, on_event: EventHandler,
                 on_exit: Callable[[int], Awaitable[None]], on_request: Optional[RequestHandler] = None) -> None:
        self.settings = settings
        self.count = count
        self.on_event = on_event
        self.on_request = on_request
        self.on_exit = on_exit
        self.workers: dict[int, WorkerProcess] = {}
        self.exits: dict[int, str] = {}  #: worker -> how its last process ended ("pid 123 exited with signal 9")
        self.directory: Optional[Path] = None
        self._children = ChildProcesses(
            "media worker", log, self._spawn, exited=self._exited, stop_timeout=_STOP_TIMEOUT,
            restart_delay=lambda lived: 0.2 if lived > 10 else 2.0)  # one dying at start is not restarted in a loop

    @property
    def restarts(self) -> int:
        """Workers started again after they exited."""
        return self._children.restarts

    async def start(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="stagepass-workers-"))
        (self.directory / SETTINGS_FILE).write_bytes(pickle.dumps(self.settings))
        await asyncio.gather(*(self._children.start(i) for i in range(self.count)))
        log.info("%d media workers running (pids %s)", self.count,
                 ", ".join(str(w.pid) for w in self.workers.values()))

    async def _spawn(self, index: int) -> asyncio.subprocess.Process:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        handover, handed = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        handover.setblocking(False)
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "mediaserver.workers.worker", "--index", str(index),
                "--fd", str(theirs.fileno()), "--handover-fd", str(handed.fileno()), "--dir", str(self.directory),
                pass_fds=(theirs.fileno(), handed.fileno()))
        except BaseException:
            handover.close()
            raise
        finally:
            theirs.close()
            handed.close()
        self._children.register(index, process)
        holder: dict[str, WorkerProcess] = {}

        async def event(name: str, data: dict) -> None:
            worker = holder["worker"]
            if name == "ready":
                worker.ready.set()
                return
            await self.on_event(index, name, data)

        async def request(op: str, data: dict) -> Optional[dict]:
            if self.on_request is None:
                raise ValueError(f"no operation {op!r}")
            return await self.on_request(index, op, data)

        channel = await Channel.over(ours, logging.getLogger(f"stagepass.workers.{index}"), on_event=event,
                                     on_request=request)
        worker = holder["worker"] = WorkerProcess(index, process, channel, handover)
        worker.reader = asyncio.get_running_loop().create_task(channel.run(), name=f"worker-{index}-channel")
        self.workers[index] = worker
        try:
            await asyncio.wait_for(worker.ready.wait(), _READY_TIMEOUT)
        except asyncio.TimeoutError:
            process.kill()
            handover.close()
            raise RuntimeError(f"media worker {index} did not start within {_READY_TIMEOUT:.0f} s") from None
        return process

    async def _exited(self, index: int, code: Optional[int]) -> None:
        worker = self.workers[index]
        if worker.reader is not None:
            await asyncio.gather(worker.reader, return_exceptions=True)  # its last news first
        worker.handover.close()
        self.exits[index] = f"pid {worker.pid} exited with {describe_exit(code)}"
        if not self._children.closing:
            await self.on_exit(index)  # the owner forgets the worker's sessions before it starts again

    def alive(self) -> list[int]:
        return [i for i, w in sorted(self.workers.items()) if w.alive]

    async def readiness(self) -> Optional[str]:
        """A readiness check (``/readyz``): None while every worker runs, else which are
        down and why (``media worker 1 not running (pid 123 exited with signal 9; restarting)``)."""
        alive = self.alive()
        down = [f"media worker {i} not running ({self.exits[i] + '; ' if i in self.exits else ''}restarting)"
                for i in range(self.count) if i not in alive]
        return ", ".join(down) if down else None

    async def request(self, index: int, op: str, **args: Any) -> dict:
        """A request to worker ``index``; ``WorkerGone`` if it is not running."""
        worker = self.workers.get(index)
        if worker is None or not worker.alive:
            raise WorkerGone(f"media worker {index} is not running")
        return await worker.channel.request(op, **args)

    def hand_over(self, index: int, data: bytes, transport: asyncio.BaseTransport) -> None:
        """Hand ``transport``'s connection, with ``data``, to worker ``index`` (it is the
        worker's from then on); ``WorkerGone`` if it is not running, ``OSError`` if it cannot
        take it (the connection is still ours then)."""
        worker = self.workers.get(index)
        if worker is None or not worker.alive:
            raise WorkerGone(f"media worker {index} is not running")
        hand_over(worker.handover, data, transport)

    async def close(self) -> None:
        await self._children.close(ask=self._ask_to_stop)
        for worker in self.workers.values():
            if worker.reader is not None:
                worker.reader.cancel()
            worker.handover.close()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)

    async def _ask_to_stop(self, index: int, process: asyncio.subprocess.Process) -> None:
        worker = self.workers.get(index)
        if worker is not None and worker.process is process:
            await worker.channel.close()  # the worker closes its rooms and exits
        else:  # still starting (no channel yet): it has no rooms to close
            process.terminate()
