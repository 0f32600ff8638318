"""``MediaWorker``: one media worker process (``python -m mediaserver.workers.worker``).

A worker owns peer connections and fanouts: its own ``RoomRegistry`` on its own UDP port.
The control plane (the aiohttp process) hands it offers and gets answers back over a
``Channel`` (``publish``, ``subscribe``, ``close``, ``trickle``, ``end_broadcast``), hands
it RTMP encoders' connections (the socket on the hand-over pair, then ``rtmp_publish``
with the same ticket: the worker answers the encoder and is its room's publisher, asking
the control plane to claim the room, ``claim``, before it tells the encoder
``Publish.Start``), tells it
which rooms to pipe to or from other workers (``pipe_out``, ``pipe_in``, ``pipe_stop``;
``pipe.py``), and hears from it when a session closes, a broadcast starts or ends, a relay
is let go of, and, every half second, what its rooms are doing and its load
(``snapshot``). Its Prometheus figures are asked for when the control plane is scraped
(``metrics``; ``worker_metrics.py``). A worker ends when its channel does: the control
plane left, or closed it on shutdown.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import os
import pickle
import signal
import socket
from pathlib import Path
from typing import Any, Optional

from core.logs import setup_logging
from core.settings import Settings
from core.socket_handover import receive_handed
from mediaserver.live.errors import CodecMismatch, NegotiationFailed, RoomBusy
from mediaserver.live.room import Broadcast, Room, RoomRegistry
from mediaserver.ingest.rtmp_server import PublishClaim, PublishRefused, RtmpHandover, RtmpIngest
from mediaserver.workers.channel import Channel, RemoteError, WorkerGone
from mediaserver.workers.pipe import PipeOut, PipeSocket, PipeSource, socket_path
from mediaserver.workers.worker_metrics import WorkerMetrics

__all__ = ["MediaWorker", "PullRefused", "SETTINGS_FILE", "main"]

SETTINGS_FILE = "settings.pickle"


class PullRefused(Exception):
    """The control plane could not bring the origin's answer to a pull (its message says why)."""


class EncoderGone(Exception):
    """A handed-over RTMP encoder left before it was answered."""


#: the room's domain errors, named on the channel so the control plane raises the same
KNOWN_ERRORS: dict[type[Exception], str] = {
    RoomBusy: "RoomBusy", CodecMismatch: "CodecMismatch", NegotiationFailed: "NegotiationFailed",
    PullRefused: "PullRefused", LookupError: "NotFound", EncoderGone: "EncoderGone",
    PublishRefused: "PublishRefused",
}
SNAPSHOT_EVERY = 0.5
#: seconds the control plane has to carry a pull's offer to the origin and bring its answer
EXCHANGE_TIMEOUT = 30.0
HANDED_WAIT = 10.0  # seconds a request waits for the connection handed with it
#: seconds the control plane has to claim an RTMP encoder's room in the node registry
CLAIM_TIMEOUT = 10.0


def describe(exc: Exception) -> Optional[str]:
    return next((name for kind, name in KNOWN_ERRORS.items() if isinstance(exc, kind)), None)


class MediaWorker:
    def __init__(self, index: int, settings: Settings, directory: Path,
                 handover: Optional[socket.socket] = None) -> None:
        self.index = index
        self.settings = settings
        self.directory = directory
        self.log = logging.getLogger(f"stagepass.worker.{index}")
        self.metrics = WorkerMetrics()
        self.rooms = RoomRegistry(settings, observer=self.metrics)
        self.metrics.watch(self.rooms)
        self.rtmp = RtmpIngest(self.rooms, opus_bitrate=settings.media.rtmp_audio_bitrate)
        self.handover = handover  #: the control plane hands connections over on it
        self.handed: dict[int, asyncio.Future] = {}  #: ticket -> the socket handed with it
        self.channel: Optional[Channel] = None
        self.pipes: Optional[PipeSocket] = None
        self.outs: dict[int, PipeOut] = {}
        self.relays: dict[int, PipeSource] = {}
        self.pulls: set[str] = set()  #: the edge sources whose end the control plane hears of
        self._snapshots: Optional[asyncio.Task] = None

    async def start(self, channel: Channel) -> None:
        self.channel = channel
        await self.rooms.start(self.index)
        self.pipes = PipeSocket(socket_path(self.directory, self.index), self.log)
        self.rooms.broadcast_started.append(functools.partial(self._broadcast, "broadcast_started"))
        self.rooms.broadcast_confirmed.append(functools.partial(self._broadcast, "broadcast_confirmed"))
        self.rooms.broadcast_ended.append(functools.partial(self._broadcast, "broadcast_ended"))
        self.metrics.start(channel.emit)
        self._snapshots = asyncio.get_running_loop().create_task(self._snapshot_loop())
        if self.handover is not None:
            self.handover.setblocking(False)
            asyncio.get_running_loop().add_reader(self.handover.fileno(), self._handed_over)

    def _handed_over(self) -> None:
        """A connection came on the hand-over pair: it waits for the request with its ticket."""
        assert self.handover is not None
        try:
            message = receive_handed(self.handover, 4096)
        except BlockingIOError:
            return
        if message is None:  # the control plane is gone (the channel ends this worker)
            asyncio.get_running_loop().remove_reader(self.handover.fileno())
            return
        data, sock = message
        if sock is None:
            return
        ticket = int(json.loads(data)["ticket"])
        future = self.handed.setdefault(ticket, asyncio.get_running_loop().create_future())
        if future.done():
            sock.close()
        else:
            future.set_result(sock)

    async def _broadcast(self, event: str, room: Room, broadcast: Broadcast) -> None:
        self.channel.emit(event, room=room.name, id=broadcast.id,  # type: ignore[union-attr]
                          started_at=broadcast.started_at, discarded=broadcast.discarded)

    # ------------------------------------------------------------ requests
    async def handle(self, op: str, args: dict) -> Optional[dict]:
        method = getattr(self, "op_" + op, None)
        if method is None:
            raise ValueError(f"no operation {op!r}")
        return await method(**args)

    def _room(self, name: str) -> Room:
        room = self.rooms.get(name)
        if room is None:
            raise LookupError(f"no room {name!r} on worker {self.index}")
        return room

    def _session(self, room: str, session: str) -> Any:
        found = self._room(room).session(session)
        if found is None:
            raise LookupError(f"no session {session!r} in room {room!r}")
        return found

    def _report_close(self, room: Room, session: Any) -> None:
        async def closed() -> None:
            self.channel.emit("closed", room=room.name, session=session.id)  # type: ignore[union-attr]

        session.on_close(closed)

    def _opened(self, room: Room, session: Any, answer: str) -> dict:
        self._report_close(room, session)
        ice = session.remote_ice
        return {"session": session.id, "answer": answer,
                "ice": {"ufrag": ice.ufrag, "pwd": ice.pwd, "mids": list(ice.mids)}}

    async def op_publish(self, room: str, sdp: str, plan: dict) -> dict:
        live = self.rooms.open(room)
        session, answer = await live.publish(sdp, plan)
        return {**self._opened(live, session, answer), "codecs": dict(session.codecs),
                "room": self._room_snapshot(live)}

    async def op_rtmp_publish(self, room: str, ticket: int, peer: str, state: dict, claim: bool = False) -> dict:
        """The RTMP encoder whose connection came with ``ticket`` publishes to ``room``
        (``RtmpIngest.adopt``): ``RoomBusy`` as for WHIP, ``PublishRefused`` if ``claim``
        was asked for and the control plane could not claim the room, once the encoder was
        told."""
        future = self.handed.setdefault(ticket, asyncio.get_running_loop().create_future())
        try:
            sock = await asyncio.wait_for(future, HANDED_WAIT)
        finally:
            self.handed.pop(ticket, None)
        live = self.rooms.open(room)
        try:
            publisher = await self.rtmp.adopt(sock, RtmpHandover(room=room, peer=peer, state=state),
                                              claim=self._claim_of(ticket) if claim else None)
        except OSError as exc:
            raise EncoderGone(f"the RTMP encoder {peer} left ({exc})") from None
        self._report_close(live, publisher)
        if publisher.closed:
            raise EncoderGone(f"the RTMP encoder {peer} left")
        return {"session": publisher.id, "codecs": dict(publisher.codecs), "room": self._room_snapshot(live)}

    def _claim_of(self, ticket: int) -> PublishClaim:
        """The claim of the hand-over ``ticket``, made by the control plane (which holds the
        node registry) when this worker asks, after the busy check, before ``Publish.Start``."""
        channel = self.channel
        assert channel is not None

        async def claim(room: str) -> Optional[str]:
            try:
                reply = await channel.request("claim", timeout=CLAIM_TIMEOUT, ticket=ticket)
            except (WorkerGone, RemoteError, asyncio.TimeoutError) as exc:
                return f"the control plane did not confirm room {room!r} ({type(exc).__name__}); try again"
            return reply.get("lost")

        return claim

    async def op_subscribe(self, room: str, sdp: str, kinds: list) -> dict:
        live = self.rooms.open(room)
        session, answer = await live.subscribe(sdp, kinds)
        return self._opened(live, session, answer)

    async def op_relay(self, room: str, session: str) -> None:
        """The viewer ``session`` is another node's edge pulling the room (a relay grant):
        it keeps the full rendition, as in one process."""
        self._session(room, session).relay = True

    async def op_pull(self, room: str, origin: str, pull: int) -> dict:
        """Pull ``room`` from node ``origin`` (``Room.pull``) for every worker of this node: the
        offer goes to the control plane (``exchange``, naming ``pull``), which answers with the
        origin's answer. The source stays when this worker's viewers leave (``pull_stop`` ends
        it); ``pull_closed`` says when it ended. ``{source, new}``: its id, and whether this
        call made it (else a live source was already here)."""
        live = self.rooms.open(room)
        channel = self.channel

        async def exchange(offer: str) -> str:
            reply = await channel.request("exchange", timeout=EXCHANGE_TIMEOUT, room=room, pull=pull,  # type: ignore[union-attr]
                                          offer=offer)
            if "answer" not in reply:
                raise PullRefused(reply.get("error", "the origin did not answer"))
            return reply["answer"]

        source = await live.pull(origin, exchange, held=True)
        new = getattr(source, "role", None) == "edge" and source.id not in self.pulls
        if new:
            self.pulls.add(source.id)

            async def closed() -> None:
                self.pulls.discard(source.id)
                channel.emit("pull_closed", room=room, source=source.id)  # type: ignore[union-attr]

            source.on_close(closed)  # type: ignore[attr-defined]
        return {"source": source.id, "new": new}

    async def op_pull_stop(self, room: str, source: str) -> None:
        """Let go of the pull ``source`` of ``room`` (the node's last viewer left)."""
        found = self.rooms.get(room)
        if found is not None and found.publisher is not None and found.publisher.id == source:
            await found.publisher.close()

    async def op_close(self, room: str, session: str) -> None:
        found = self.rooms.get(room)
        target = found.session(session) if found is not None else None
        if target is not None:
            await target.close()

    async def op_admitted(self, room: str, session: str, user: Optional[int]) -> None:
        self._session(room, session).user_id = user

    async def op_trickle(self, room: str, session: str, candidates: list, end: bool) -> None:
        self._session(room, session).trickle([tuple(c) for c in candidates], end)

    async def op_quality(self, room: str, session: str) -> dict:
        """The viewer's quality, and when its first media went out (the viewers API shows both)."""
        found = self._session(room, session)
        return {**await found.quality(), "first_media_seconds": found.first_media_seconds}

    async def op_bytes_received(self, room: str, session: str) -> dict:
        """What the publisher's transport received so far (the admin view's ingest rate)."""
        return {"bytes": await self._session(room, session).bytes_received()}

    async def op_metrics(self) -> dict:
        """This worker's Prometheus samples (``worker_metrics.serialise``) and its load."""
        return {"families": self.metrics.samples(), "load": self.metrics.load()}

    async def op_end_broadcast(self, room: str) -> None:
        found = self.rooms.get(room)
        if found is not None:
            await found.end_broadcast()

    async def op_pipe_out(self, room: str, channel: int, to: int) -> None:
        """Send ``room``'s packets to worker ``to`` through ``channel``."""
        live = self.rooms.open(room)
        out = PipeOut(self.pipes, channel, socket_path(self.directory, to), live.fanouts, live.log)  # type: ignore[arg-type]
        self.outs[channel] = out
        out.start()
        live.log.info("piping to worker %d (channel %d)", to, channel)

    async def op_pipe_in(self, room: str, channel: int, origin: int) -> None:
        """Relay ``room`` from worker ``origin`` (its packets come through ``channel``)."""
        live = self.rooms.open(room)
        source = await live.relay_from(f"worker {origin}", functools.partial(
            PipeSource, sock=self.pipes, channel=channel, origin_path=socket_path(self.directory, origin)))
        self.relays[channel] = source

        async def idle() -> None:
            self.relays.pop(channel, None)
            self.channel.emit("pipe_idle", room=room, channel=channel)  # type: ignore[union-attr]

        source.on_close(idle)

    async def op_pipe_stop(self, channel: int) -> None:
        out = self.outs.pop(channel, None)
        if out is not None:
            await out.close()
        relay = self.relays.pop(channel, None)
        if relay is not None:
            await relay.close()

    # ------------------------------------------------------------ news
    async def _snapshot_loop(self) -> None:
        while True:
            await asyncio.sleep(SNAPSHOT_EVERY)
            self.channel.emit("snapshot", rooms={room.name: self._room_snapshot(room) for room in self.rooms},  # type: ignore[union-attr]
                              load=self.metrics.load())

    @staticmethod
    def _room_snapshot(room: Room) -> dict:
        """What the control plane shows of a room between requests (no sorting, no I/O).
        ``publisher`` names the publisher it describes: a snapshot taken before the
        control plane learnt of the current one does not speak for it."""
        return {
            "publisher": room.publisher.id if room.publisher is not None else None,
            "live": room.live and room.origin is None,
            "edge_live": room.live and getattr(room.publisher, "role", None) == "edge",
            "phase": room.phase,
            "codecs": dict(room.publisher.codecs) if room.publisher is not None else {},
            "recording": room.recorder.state() if room.recorder is not None else None,
            "renditions": {s.id: s.rendition for s in room.subscribers.values()},
            "fanouts": {kind: {"packets_in": f.stats.packets_in, "packets_out": f.stats.packets_out,
                               "dropped": f.stats.dropped, "retransmitted": f.stats.retransmitted,
                               "send_errors": f.stats.send_errors}
                        for kind, f in room.fanouts.items()},
            "keyframes": {"requested": video.keyframes.requested, "sent": video.keyframes.sent}
            if (video := room.fanouts.get("video")) is not None and video.keyframes is not None else None,
        }

    async def close(self) -> None:
        if self._snapshots is not None:
            self._snapshots.cancel()
        await self.metrics.close()
        if self.handover is not None:
            try:
                asyncio.get_running_loop().remove_reader(self.handover.fileno())
            except (ValueError, OSError):
                pass
            self.handover.close()
        for future in self.handed.values():
            if future.done() and not future.cancelled():
                future.result().close()
        for out in list(self.outs.values()):
            await out.close()
        await self.rtmp.close()  # its connections end before the rooms close
        await self.rooms.close()
        if self.pipes is not None:
            self.pipes.close()


async def _run(index: int, fd: int, handover_fd: Optional[int], directory: Path, settings: Settings) -> None:
    log = logging.getLogger(f"stagepass.worker.{index}")
    handover = socket.socket(fileno=handover_fd) if handover_fd is not None else None
    worker = MediaWorker(index, settings, directory, handover)
    channel = await Channel.over(socket.socket(fileno=fd), log, on_request=worker.handle, describe_error=describe)
    await worker.start(channel)
    channel.emit("ready", pid=os.getpid())
    try:
        await channel.run()  # until the control plane closes the channel (or is gone)
    finally:
        await worker.close()
        await channel.close()


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="stagepass media worker")
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--fd", type=int, required=True, help="the control channel's socket")
    parser.add_argument("--handover-fd", type=int, help="the socket connections are handed over on")
    parser.add_argument("--dir", type=Path, required=True, help="the workers' run directory")
    args = parser.parse_args(argv)
    settings: Settings = pickle.loads((args.dir / SETTINGS_FILE).read_bytes())
    setup_logging(settings.server.log_level, settings.server.log_format, worker=args.index)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the process group: the control plane ends us
    asyncio.run(_run(args.index, args.fd, args.handover_fd, args.dir, settings))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
