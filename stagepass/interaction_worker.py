"""One interaction worker process: Socket.IO WebSockets handed over by the control plane.

Started by ``InteractionWorkers`` (``stagepass/interaction_workers.py``) as
``python -m stagepass.interaction_worker FD``, with the node's ``Settings`` pickled on
stdin and ``FD`` the worker's end of a ``SOCK_SEQPACKET`` pair. Each message on it is
one WebSocket handshake the control plane received: the request's bytes, with the
client's TCP socket attached (``SCM_RIGHTS``). The worker adopts the socket into its own
aiohttp server and replays the request into it, so from then on the connection is the
worker's alone: no proxy hop, no second copy of a frame.

The worker runs the interaction features (``interaction.assembly.Interaction``) over
the node's cluster (Redis, or the control plane's local bus), its database and paywall
(to check tokens; a small PostgreSQL pool of its own, ``paywall.db_budget``), and a mirror of the live rooms' media clocks
(``interaction.live_clock.BroadcastClocks``). It reports its open connections to the
control plane once a second, and ends (flushing its written-behind rows) on SIGTERM or
when the control plane's end of the pair closes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import pickle
import signal
import socket
import sys
from typing import Optional

from aiohttp import web

from core.cluster import Cluster, RedisCluster
from core.heap import freeze_startup_heap, gc_pauses
from core.logs import setup_logging
from core.settings import Settings
from core.socket_handover import receive_handed
from insight.models import BehaviourEvent
from insight.store import EventStore
from interaction.assembly import Interaction
from interaction.live_clock import BroadcastClocks
from paywall.seats import Seats
from paywall.service import Paywall
from paywall.table_writer import table_writer
from signalling.admission import Admission

__all__ = ["main"]

log = logging.getLogger("stagepass.interaction.worker")
MAX_HANDSHAKE = 64 * 1024  # the control plane's largest header block (aiohttp's limits) fits


def worker_cluster(settings: Settings, bus_path: str) -> Cluster:
    """The node's Redis when configured, else the control plane's local bus."""
    if settings.server.redis_url:
        return RedisCluster.from_url(settings.server.redis_url)
    from core.cluster.linked import LinkedCluster

    return LinkedCluster(bus_path)


class Worker:
    def __init__(self, settings: Settings, channel: socket.socket, bus_path: str) -> None:
        self.settings = settings
        self.channel = channel
        self.cluster = worker_cluster(settings, bus_path)
        self.app = web.Application()
        self.interaction = Interaction(settings, self.cluster)
        self.interaction.server.attach(self.app)
        self.runner = web.AppRunner(self.app, handle_signals=False, access_log=None)
        self.stopped = asyncio.Event()
        self._adopting: set[asyncio.Task] = set()
        self.received = 0  # connections the control plane handed here, once adopted (or gone)

    async def start(self) -> None:
        start = getattr(self.cluster, "start", None)
        if start is not None:  # the local bus connects
            await start()
        await self.cluster.ping()
        self.seats = Seats(self.cluster)
        await self.seats.start()
        admission = Admission(self.seats)
        settings = self.settings
        self.paywall = await Paywall.open(settings, worker=True, on_revoked=admission.revoke,
                                          open_rooms=settings.stream_keys())
        self.clocks = BroadcastClocks(self.cluster, settings.node_id())
        await self.clocks.start()
        server = self.interaction.server
        server.bind(self.paywall, self.clocks, admission)  # type: ignore[arg-type]
        self.events = EventStore(self.paywall.db, flush_seconds=settings.insight.event_flush_ms / 1000,
                                 writer=table_writer(self.cluster, self.paywall.db, BehaviourEvent.__table__))
        await self.events.start()
        server.events = self.events
        await self.interaction.start()
        await self.runner.setup()
        gc_pauses.install()
        freeze_startup_heap()
        loop = asyncio.get_running_loop()
        self.channel.setblocking(False)
        loop.add_reader(self.channel.fileno(), self._readable)
        self._report = asyncio.create_task(self._report_load())
        self._send({"ready": True})

    def _send(self, message: dict) -> None:
        try:
            self.channel.send(json.dumps(message).encode())
        except (BlockingIOError, OSError) as exc:
            log.warning("interaction worker: cannot report to the control plane (%s)", exc)

    def _readable(self) -> None:
        try:
            message = receive_handed(self.channel, MAX_HANDSHAKE)
        except BlockingIOError:
            return
        if message is None:  # the control plane is gone: end, writing what is queued
            asyncio.get_running_loop().remove_reader(self.channel.fileno())
            self.stopped.set()
            return
        data, sock = message
        if sock is None:
            return
        task = asyncio.create_task(self._adopt(sock, data))
        self._adopting.add(task)
        task.add_done_callback(self._adopting.discard)

    async def _adopt(self, sock: socket.socket, request: bytes) -> None:
        """Make the handed socket a connection of this worker's server, then give it the
        request the control plane read from it."""
        sock.setblocking(False)
        try:
            _transport, protocol = await asyncio.get_running_loop().connect_accepted_socket(self.runner.server, sock)
        except OSError as exc:  # the client left meanwhile
            log.debug("a handed-over connection was gone (%s)", exc)
            sock.close()
            return
        finally:  # counted once it is one of the server's connections (or gone): never in neither count
            self.received += 1
        protocol.data_received(request)

    def connections(self) -> int:
        server = self.runner.server
        return len(server.connections) if server is not None else 0

    async def _report_load(self) -> None:
        last: Optional[tuple] = None
        while True:
            now = (self.connections(), self.received, round(gc_pauses.total, 4))
            if now != last:
                self._send({"connections": now[0], "received": now[1], "gc_seconds": now[2]})
                last = now
            await asyncio.sleep(1.0)

    async def close(self) -> None:
        self._report.cancel()
        await asyncio.gather(self._report, return_exceptions=True)
        try:
            asyncio.get_running_loop().remove_reader(self.channel.fileno())
        except (ValueError, OSError):
            pass
        for task in list(self._adopting):
            task.cancel()
        await asyncio.gather(*self._adopting, return_exceptions=True)
        await self.interaction.close()  # disconnects the sockets, writes the queued rows
        await self.runner.cleanup()
        await self.events.close()
        await self.clocks.close()
        await self.paywall.close()
        await self.seats.close()
        await self.cluster.close()
        self.channel.close()


async def run(settings: Settings, fd: int, bus_path: str) -> int:
    channel = socket.socket(fileno=fd)
    worker = Worker(settings, channel, bus_path)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stopped.set)
    try:
        await worker.start()
    except Exception:
        log.exception("interaction worker could not start")
        return 1
    log.info("interaction worker ready")
    await worker.stopped.wait()
    await worker.close()
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    fd, bus_path = int(argv[0]), argv[1] if len(argv) > 1 else ""
    settings: Settings = pickle.load(sys.stdin.buffer)
    setup_logging(settings.server.log_level, settings.server.log_format)
    return asyncio.run(run(settings, fd, bus_path))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
