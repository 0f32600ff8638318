"""``--interaction-workers N``: Socket.IO WebSockets served by N worker processes.

Why handing sockets over rather than the alternatives: with ``SO_REUSEPORT`` every worker
would also receive the node's other requests (WHIP, pages, webhooks) and long-polling
requests of one Engine.IO session would land on random processes; a proxy in the control
plane would copy every frame of every viewer through one more process, the very cost
the workers are there to spread. So the control plane keeps the one listening port and
reads each request as before; a fresh Socket.IO WebSocket handshake
(``/socket.io/?transport=websocket`` without ``sid``) is passed, with its TCP socket
(``SCM_RIGHTS`` over a ``SOCK_SEQPACKET`` pair), to the worker with the fewest
connections, which adopts the socket and answers the handshake itself. Long-polling
clients, and their upgrades to WebSocket, stay on the control plane's own Socket.IO
server (one process, so their session is never split). Our pages connect over WebSocket
only.

Rooms span the processes through the cluster: with ``REDIS_URL`` the node's Redis, else
the control plane's local bus (``core.cluster.linked``), which serves its in-memory
cluster to the workers over a Unix socket. Emits, presence, likes, polls, rate limits
and row ids are shared through it as between nodes. A worker that dies (a non-zero
exit: a crash, a kill -9) is started again and its clients reconnect; while no worker
is ready, the control plane serves WebSockets itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pickle
import socket
import sys
import tempfile
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable, Optional

from aiohttp import web

from core.child_processes import ChildProcesses
from core.cluster import Cluster
from core.settings import Settings
from core.socket_handover import hand_over
from interaction.live_clock import publish_clocks

__all__ = ["InteractionWorkers", "install_interaction_workers", "interaction_cluster", "worker_metrics"]

log = logging.getLogger("stagepass.interaction.workers")
ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
RESTART_DELAY = 1.0


class _Worker:
    """The control plane's view of one worker process."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.process: Optional[asyncio.subprocess.Process] = None
        self.channel: Optional[socket.socket] = None
        self.ready = asyncio.Event()
        self.handed = 0  # connections handed to this process since it started
        self.reported = (0, 0)  # (open connections, connections received) as it last reported
        self.gc_seconds = 0.0

    @property
    def connections(self) -> int:
        """Its open connections: as last reported, plus those handed since that it had not
        received yet. A report is up to a second old; counting from it alone would place
        every connection of a burst on whichever process reported last."""
        open_, received = self.reported
        return open_ + max(0, self.handed - received)

    def restarted(self) -> None:
        self.handed = 0
        self.reported = (0, 0)

    @property
    def pid(self) -> Optional[int]:
        return self.process.pid if self.process is not None else None


class InteractionWorkers:
    def __init__(self, settings: Settings, count: int, bus_path: str = "") -> None:
        self.settings = settings
        self.workers = [_Worker(i) for i in range(count)]
        self.bus_path = bus_path
        self.handed = 0
        # a clean exit (status 0) is a worker stopped on purpose (SIGTERM or SIGINT to the process group)
        self._children = ChildProcesses("interaction worker", log, self._spawn, exited=self._exited,
                                        restart_delay=lambda lived: RESTART_DELAY, restart_clean_exit=False,
                                        stop_timeout=STOP_TIMEOUT)

    # ------------------------------------------------------------ processes
    async def start(self) -> None:
        for worker in self.workers:
            await self._children.start(worker.index)
        await asyncio.wait_for(asyncio.gather(*(w.ready.wait() for w in self.workers)), START_TIMEOUT)
        log.info("%d interaction workers serve Socket.IO WebSockets (pids %s)", len(self.workers),
                 ", ".join(str(w.pid) for w in self.workers))

    async def _spawn(self, index: int) -> asyncio.subprocess.Process:
        worker = self.workers[index]
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        worker.ready.clear()
        worker.restarted()
        worker.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "stagepass.interaction_worker", str(theirs.fileno()), self.bus_path,
            stdin=asyncio.subprocess.PIPE, pass_fds=(theirs.fileno(),), cwd=ROOT)
        theirs.close()
        self._children.register(index, worker.process)
        assert worker.process.stdin is not None
        worker.process.stdin.write(pickle.dumps(self.settings))
        await worker.process.stdin.drain()
        worker.process.stdin.close()
        ours.setblocking(False)
        worker.channel = ours
        asyncio.get_running_loop().add_reader(ours.fileno(), self._reported, worker)
        return worker.process

    def _reported(self, worker: _Worker) -> None:
        assert worker.channel is not None
        try:
            data = worker.channel.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(worker.channel.fileno())
            return
        try:
            message = json.loads(data)
        except ValueError:
            return
        if message.get("ready"):
            worker.ready.set()
        if "connections" in message:
            worker.reported = (int(message["connections"]), int(message.get("received", 0)))
            worker.gc_seconds = float(message.get("gc_seconds", 0.0))

    async def _exited(self, index: int, code: Optional[int]) -> None:
        """A worker exited: its channel goes; ``ChildProcesses`` starts it again (its sockets'
        clients reconnect)."""
        self._forget(self.workers[index])

    def _forget(self, worker: _Worker) -> None:
        worker.ready.clear()
        if worker.channel is not None:
            try:
                asyncio.get_running_loop().remove_reader(worker.channel.fileno())
            except (ValueError, OSError):
                pass
            worker.channel.close()
            worker.channel = None

    async def close(self) -> None:
        """SIGTERM every worker (each writes its queued rows), SIGKILL after ``STOP_TIMEOUT``."""
        await self._children.close()
        for worker in self.workers:
            self._forget(worker)

    # ------------------------------------------------------------ hand-over
    def hand_over(self, request: web.Request) -> bool:
        """Pass the request's connection to a worker; False if none could take it."""
        transport = request.transport
        if transport is None or transport.get_extra_info("socket") is None:
            return False
        head = [f"{request.method} {request.raw_path} HTTP/{request.version.major}.{request.version.minor}\r\n".encode()]
        head += [name + b": " + value + b"\r\n" for name, value in request.raw_headers]
        data = b"".join(head) + b"\r\n"
        for worker in sorted((w for w in self.workers if w.ready.is_set() and w.channel is not None),
                             key=lambda w: w.connections):
            assert worker.channel is not None
            try:
                hand_over(worker.channel, data, transport)  # the worker holds the connection now
            except OSError as exc:
                log.warning("interaction worker %d cannot take a connection (%s)", worker.index, exc)
                continue
            worker.handed += 1
            self.handed += 1
            return True
        return False


WORKERS = web.AppKey("interaction_workers", InteractionWorkers)


def interaction_cluster(settings: Settings, cluster: Cluster) -> Cluster:
    """The cluster the interaction features of the control plane use: the node's, or with
    interaction workers and no Redis, the local bus's view of it (what it publishes reaches
    the workers)."""
    if settings.interaction.interaction_workers > 1 and not cluster.shared:
        from core.cluster.linked import ClusterHub, HubView

        path = os.path.join(tempfile.mkdtemp(prefix="stagepass-bus-"), "bus.sock")
        return HubView(ClusterHub(cluster, path))  # type: ignore[arg-type]
    return cluster


def install_interaction_workers(app: web.Application, settings: Settings, rooms: object, cluster: Cluster) -> None:
    """Hand Socket.IO WebSockets to ``settings.interaction.interaction_workers`` processes
    (call it with more than one, and the ``interaction_cluster``). Their context starts
    after every other one (the database is migrated, the rooms exist) and stops first."""
    count = settings.interaction.interaction_workers
    hub = getattr(cluster, "hub", None)  # the local bus, without Redis
    app.middlewares.insert(0, _hand_websockets)
    publish_clocks(cluster, rooms, settings.node_id())

    async def workers_ctx(app: web.Application) -> AsyncIterator[None]:
        if hub is not None:
            await hub.start()
        workers = InteractionWorkers(settings, count, hub.path if hub is not None else "")
        app[WORKERS] = workers
        try:
            await workers.start()
        except BaseException:
            await workers.close()
            raise
        yield
        await workers.close()
        if hub is not None:
            await hub.close()
            if os.path.exists(hub.path):
                os.unlink(hub.path)
            os.rmdir(os.path.dirname(hub.path))

    app.cleanup_ctx.append(workers_ctx)


def worker_metrics(app: web.Application) -> Optional[dict]:
    """Each worker's WebSockets and garbage-collector pauses, as last reported (for /metrics)."""
    workers = app.get(WORKERS)
    if workers is None:
        return None
    return {
        "stagepass_interaction_worker_connections": (
            "gauge", "Socket.IO WebSockets an interaction worker holds",
            [((("worker", str(w.index)),), w.connections) for w in workers.workers]),
        "stagepass_interaction_worker_gc_pause_seconds": (
            "counter", "Seconds the garbage collector stopped an interaction worker",
            [((("worker", str(w.index)),), w.gc_seconds) for w in workers.workers]),
        "stagepass_interaction_handed_over": (
            "counter", "Socket.IO WebSockets the control plane handed to its interaction workers", workers.handed),
    }


@web.middleware
async def _hand_websockets(request: web.Request,
                           handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """A fresh Socket.IO WebSocket goes to a worker; everything else is the control plane's."""
    if (request.path == "/socket.io/" and request.query.get("transport") == "websocket"
            and "sid" not in request.query and request.headers.get("Upgrade", "").lower() == "websocket"):
        workers = request.app.get(WORKERS)
        if workers is not None and workers.hand_over(request):
            return web.Response(status=101)  # never written: the connection is the worker's
    return await handler(request)
