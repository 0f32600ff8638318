"""The control plane's view of rooms whose media runs in worker processes.

``WorkerRooms`` stands where a ``RoomRegistry`` stands in a single process, with the same
vocabulary (``open``, ``get``, ``on_air``, ``audience``, ``broadcast_started/confirmed/ended``
listeners, told as a worker's ``Room`` tells them), so the signalling, paywall and
interaction edges do not know where media runs.
A ``WorkerRoom`` places sessions and keeps what the control plane must know at once (its
sessions, its broadcast); the rest (live, phase, recording, counters) comes from the
workers' snapshots, every half second. A snapshot names the publisher it describes and
speaks only for that one: the reply that makes a publisher carries the room as the worker
saw it then, so a room whose encoder was just replaced is never shown as "reconnecting"
from a snapshot taken before (a client waiting for that would connect the next encoder
while the current one is live, and be refused).

Placement: a room's publisher (WHIP, or an RTMP encoder whose connection is handed over,
``publish_rtmp``, its room claimed here when the worker asks before it answers) goes to
the worker that hosts the room (where its broadcast is open and recorded), or, for a room
hosted nowhere, to the least-loaded worker, which then hosts it. A viewer goes to the
least-loaded worker (fewest sessions, then lowest index). A worker with viewers of a room
it does not host relays it: the control plane opens a pipe (``pipe.py``) from the host,
once per room and worker, when the first viewer there joins or the room gets a host; the
worker says when its last viewer left (``pipe_idle``) and the pipe is closed at both ends.

A worker that dies takes its sessions with it: each is closed here (seats given back,
leaves reported), rooms it hosted lose their host and end their broadcast, pipes from
or to it are dropped. Its viewers reconnect (the player does), its publisher comes back
within ``publisher_stale_seconds`` to another worker, and the pipes follow it.

On an edge node (``REDIS_URL``, the room's publisher on another node) the room's source
is a pull from the origin in one worker, which then hosts the room (``pulls.py``); on an
origin node, another node's pull is a viewer like any other (``relay``: not counted as a
viewer, kept on the full rendition).
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
import json
import logging
from typing import TYPE_CHECKING, Iterator, Optional

from core.logs import context_logger
from core.settings import Settings
from core.tasks import TaskOwner
from mediaserver.live.edge_source import Exchange
from mediaserver.live.errors import CodecMismatch, NegotiationFailed, RoomBusy
from mediaserver.live.broadcast import Broadcast, BroadcastListener as Listener, tell
from mediaserver.live.room import LiveObserver, Room, room_overview
from mediaserver.workers.channel import RemoteError, WorkerGone
from mediaserver.workers.links import Links
from mediaserver.workers.pulls import Pulls, WorkerPull
from mediaserver.workers.room_counters import FanoutTotals, Keyframes, Recording
from mediaserver.workers.sessions import WorkerSession
from mediaserver.workers.supervisor import WorkerPool

if TYPE_CHECKING:  # only their types: the control plane imports pyrtmp through the ingest (which quiets its logs)
    from mediaserver.ingest.rtmp_handover import RtmpHandover
    from mediaserver.ingest.rtmp_server import PublishClaim

__all__ = ["WorkerRoom", "WorkerRooms"]

log = logging.getLogger("stagepass.workers")

#: closed sessions remembered while their reply may still be on its way
CLOSED_EARLY_KEPT = 256

_ERRORS: dict[str, type[Exception]] = {
    "RoomBusy": RoomBusy, "CodecMismatch": CodecMismatch, "NegotiationFailed": NegotiationFailed,
}

def _domain_error(exc: RemoteError) -> Exception:
    return _ERRORS.get(exc.type, RuntimeError)(str(exc))


class WorkerRoom:
    """A room whose sessions live in workers."""

    low = None
    switcher = None  # the rendition switches happen in the workers (their /metrics samples count them)

    def __init__(self, rooms: "WorkerRooms", name: str) -> None:
        self._rooms = rooms
        self.name = name
        self.log = context_logger("stagepass.room", name)
        self.host: Optional[int] = None  #: the worker its publisher (or its pull) is on and its broadcast is open in
        #: this node's pull of the room from its origin node (an edge), in worker ``host``
        self.edge: Optional[WorkerPull] = None
        self.publisher: Optional[WorkerSession] = None
        self.subscribers: dict[str, WorkerSession] = {}
        self.broadcast: Optional[Broadcast] = None
        self.ended_broadcast: Optional[Broadcast] = None
        self._ended_before: Optional[Broadcast] = None  #: ended_broadcast when the current one started
        self.broadcast_started: list[Listener] = rooms.broadcast_started
        self.broadcast_confirmed: list[Listener] = rooms.broadcast_confirmed
        self.broadcast_ended: list[Listener] = rooms.broadcast_ended
        self.snapshots: dict[int, dict] = {}  #: worker -> its latest snapshot of this room
        # what the metrics read of an in-process room (``fanouts`` from the snapshots)
        self.departed_nacked: dict[str, int] = {}
        self.departed_octets: dict[str, int] = {}

    # ------------------------------------------------------------ state
    @property
    def tasks(self) -> TaskOwner:
        """The owner of the node's room tasks (a late session's close listeners)."""
        return self._rooms.tasks

    @property
    def _host_snapshot(self) -> dict:
        return self.snapshots.get(self.host, {}) if self.host is not None else {}

    @property
    def _publisher_snapshot(self) -> dict:
        """The host's latest snapshot if it speaks for the current publisher, or for a room
        without one here and there: one taken before that publisher was accepted tells of
        the one before (or of none), and a room whose encoder was just replaced is not
        "reconnecting". Without a publisher, the host's word stands: a broadcast it
        discarded (its publisher left without media) is not "reconnecting" here."""
        snapshot = self._host_snapshot
        publisher = self.publisher
        return snapshot if snapshot and snapshot.get("publisher") == (publisher.id if publisher else None) else {}

    @property
    def live(self) -> bool:
        return ((self.publisher is not None and bool(self._publisher_snapshot.get("live")))
                or (self.edge is not None and bool(self._host_snapshot.get("edge_live"))))

    @property
    def origin(self) -> Optional[str]:
        """The node this room is pulled from while it is an edge here (``Room.origin``)."""
        return self.edge.origin if self.edge is not None else None

    @property
    def phase(self) -> str:
        """The host worker's word (``Room.phase``: a broadcast counts once media came), as
        of its last snapshot; without it, what the control plane knows, by the same rule: a
        broadcast whose first media has not come (``confirmed``) leaves the room in the
        phase it was in."""
        host = self._publisher_snapshot.get("phase")
        if host is not None:
            return host
        if self.live:
            return "live"
        if self.broadcast is not None and self.broadcast.confirmed:
            return "reconnecting"
        before = self._ended_before if self.broadcast is not None else self.ended_broadcast
        return "ended" if before is not None else "idle"

    @property
    def fanouts(self) -> dict[str, "FanoutTotals"]:
        """Per kind, the workers' fanout counters as ``/metrics`` reads a ``Fanout``'s: packets
        in from the host (a relay's come through the pipe), the rest summed over workers."""
        totals: dict[str, FanoutTotals] = {}
        for worker, snapshot in self.snapshots.items():
            for kind, counters in snapshot.get("fanouts", {}).items():
                total = totals.setdefault(kind, FanoutTotals())
                total.add(counters, from_host=worker == self.host)
        keyframes = self._host_snapshot.get("keyframes")
        if keyframes is not None and "video" in totals:
            # the host's: a relaying worker's requests that pass its rate limit come up the
            # pipe and are counted there again; ``sent`` is the PLIs the publisher got
            totals["video"].keyframes = Keyframes(keyframes["requested"], keyframes["sent"])
        return totals

    @property
    def renditions(self) -> dict[str, str]:
        return {sid: r for snap in self.snapshots.values() for sid, r in snap.get("renditions", {}).items()}

    @property
    def recorder(self) -> Optional[Recording]:
        state = self._host_snapshot.get("recording")
        if state is None or self.broadcast is None:
            return None
        return Recording(self.broadcast, state)

    def viewer_count(self) -> int:
        """Viewers watching here, not counting other nodes' pulls from this one."""
        return sum(1 for s in self.subscribers.values() if not s.relay)

    def session(self, session_id: str) -> Optional[WorkerSession]:
        if self.publisher is not None and self.publisher.id == session_id:
            return self.publisher
        return self.subscribers.get(session_id)

    def viewers_on(self, worker: int) -> int:
        return sum(1 for s in self.subscribers.values() if s.worker == worker)

    # ------------------------------------------------------------ sessions
    def _publisher_worker(self) -> int:
        """Where a publisher goes: the host, or for a room hosted nowhere the least-loaded worker."""
        rooms = self._rooms
        return self.host if self.host in rooms.pool.alive() else rooms.least_loaded()

    async def publish(self, offer_sdp: str, plan: dict[str, str]) -> tuple[WorkerSession, str]:
        worker = self._publisher_worker()
        try:
            result = await self._rooms.pool.request(worker, "publish", room=self.name, sdp=offer_sdp, plan=plan)
        except RemoteError as exc:
            raise _domain_error(exc) from None
        return await self._published(worker, result), result["answer"]

    async def publish_rtmp(self, handover: "RtmpHandover", claim: Optional["PublishClaim"] = None) -> WorkerSession:
        """An RTMP encoder's connection, read up to its ``publish`` here, goes on in the
        worker a WHIP publisher would go to (``mediaserver.ingest.rtmp_server``): its
        socket is handed over at once (``OSError``/``WorkerGone`` if it cannot be: still
        ours), then the worker answers the encoder, ``RoomBusy`` as for WHIP. With a
        ``claim``, the worker asks for it (``WorkerRooms.claim``) once it accepted the
        publisher and before it tells the encoder ``Publish.Start``; a lost claim refuses
        the encoder there (``RuntimeError`` here, as for a worker's other failures)."""
        rooms = self._rooms
        worker = self._publisher_worker()
        ticket = next(rooms.tickets)
        assert handover.transport is not None
        rooms.pool.hand_over(worker, json.dumps({"ticket": ticket}).encode(), handover.transport)
        if claim is not None:
            rooms.claims[ticket] = (self.name, claim)
        try:
            result = await rooms.pool.request(worker, "rtmp_publish", room=self.name, ticket=ticket,
                                              peer=handover.peer, state=handover.state, claim=claim is not None)
        except RemoteError as exc:
            raise _domain_error(exc) from None
        finally:
            rooms.claims.pop(ticket, None)
        return await self._published(worker, result)

    async def _published(self, worker: int, result: dict) -> WorkerSession:
        """The worker took a publisher: it is the room's, and that worker hosts the room."""
        rooms = self._rooms
        session = WorkerSession(rooms.pool, self, worker, result["session"], "publisher", result.get("ice"))
        session.codecs = result.get("codecs", {})
        previous, self.publisher = self.publisher, session
        accepted = result.get("room")
        if accepted is not None and self.snapshots.get(worker, {}).get("publisher") != session.id:
            # the room as the worker saw it when it accepted this publisher, unless a later
            # snapshot already came: older ones do not speak for it (``_publisher_snapshot``)
            self.snapshots[worker] = accepted
        if previous is not None and previous.worker == worker:
            self.log.info("publisher %s replaces %s", session.id[:8], previous.id[:8])
        if self.host != worker:
            self.host = worker
            self.log.info("hosted by media worker %d", worker)
        await rooms.links.follow_host(self)
        await rooms.settle(session)
        return session

    async def subscribe(self, offer_sdp: str, kinds: list[str]) -> tuple[WorkerSession, str]:
        rooms = self._rooms
        worker = rooms.least_loaded()
        try:
            result = await rooms.pool.request(worker, "subscribe", room=self.name, sdp=offer_sdp, kinds=kinds)
        except RemoteError as exc:
            raise _domain_error(exc) from None
        session = WorkerSession(rooms.pool, self, worker, result["session"], "viewer", result["ice"])
        self.subscribers[session.id] = session
        self.log.info("viewer %s joined on worker %d (%d watching)", session.id[:8], worker, len(self.subscribers))
        await rooms.links.ensure(self, worker)
        await rooms.settle(session)
        return session, result["answer"]

    async def pull(self, origin: str, exchange: Exchange) -> WorkerPull:
        """Make this room an edge of node ``origin`` (``Room.pull``), in one worker (``pulls.py``)."""
        return await self._rooms.pulls.pull(self, origin, exchange)

    #: a ban ends the user's players, whichever worker they are on
    end_sessions_of = Room.end_sessions_of

    def forget(self, session: WorkerSession) -> None:
        if session is self.publisher:
            self.publisher = None
        elif self.subscribers.pop(session.id, None) is not None:
            self.log.info("viewer %s left (%d watching)", session.id[:8], len(self.subscribers))
            if not self.subscribers:
                self._rooms.pulls.let_go(self)

    async def end_broadcast(self) -> None:
        if self.host is not None:
            try:
                await self._rooms.pool.request(self.host, "end_broadcast", room=self.name)
            except (WorkerGone, RemoteError) as exc:
                self.log.warning("ending the broadcast on worker %d: %s", self.host, exc)

    async def _tell(self, listeners: list[Listener], broadcast: Broadcast, what: str) -> None:
        await tell(listeners, self, broadcast, what, self.log)

    async def started(self, worker: int, broadcast: Broadcast) -> None:
        """A broadcast opened on ``worker`` (told while its publish request is answered):
        that worker hosts the room from now on."""
        self.host = worker
        if self.broadcast is None:
            self._ended_before = self.ended_broadcast
        self.broadcast, self.ended_broadcast = broadcast, None
        await self._tell(self.broadcast_started, broadcast, "broadcast-start")

    async def confirmed(self, worker: int, broadcast_id: str) -> None:
        """The first media of the broadcast open on ``worker`` arrived (``Room``: told once)."""
        broadcast = self.broadcast
        if worker != self.host or broadcast is None or broadcast.id != broadcast_id or broadcast.confirmed:
            return
        broadcast.confirmed = True
        await self._tell(self.broadcast_confirmed, broadcast, "broadcast-confirm")

    async def ended(self, worker: int, broadcast_id: str, discarded: bool = False) -> None:
        """The broadcast ended on ``worker``; ``discarded``: its publisher left without
        sending media, so the room goes back to the broadcast that ended before it."""
        if worker != self.host or self.broadcast is None or self.broadcast.id != broadcast_id:
            return
        ended, self.broadcast = self.broadcast, None
        ended.discarded = discarded
        self.ended_broadcast = self._ended_before if discarded else ended
        if self.publisher is None:
            self.host = None  # the next broadcast may start on any worker
        await self._tell(self.broadcast_ended, ended, "broadcast-end")

    async def lost_host(self) -> None:
        """The host worker died: its broadcast ended there (its recording is packaged as
        far as it was written); the next publisher opens a new one on another worker."""
        ended, self.broadcast, self.host = self.broadcast, None, None
        if ended is not None:
            self.ended_broadcast = ended
            self.log.warning("host worker gone: broadcast %s ended", ended.id)
            await self._tell(self.broadcast_ended, ended, "broadcast-end")

    def placement(self) -> dict[str, dict]:
        """Per worker with a part in the room: ``{viewers, host}``."""
        return {str(w): {"viewers": self.viewers_on(w), "host": w == self.host}
                for w in sorted({s.worker for s in self.subscribers.values()} | ({self.host} - {None}))}

    def stats(self) -> dict:
        workers = self.placement()
        return {
            **room_overview(self),
            "recording": self._host_snapshot.get("recording"),
            "fanouts": {kind: {"packets_in": t.packets_in, "packets_out": t.packets_out, "dropped": t.dropped,
                               "retransmitted": t.retransmitted} for kind, t in self.fanouts.items()},
            "workers": workers,
        }


class WorkerRooms:
    """The rooms of this node, their media in ``count`` worker processes (``--workers``)."""

    def __init__(self, settings: Settings, count: int, observer: Optional[LiveObserver] = None) -> None:
        self.settings = settings
        self.observer = observer or LiveObserver()
        self._rooms: dict[str, WorkerRoom] = {}
        self.broadcast_started: list[Listener] = []
        self.broadcast_confirmed: list[Listener] = []
        self.broadcast_ended: list[Listener] = []
        self.pool = WorkerPool(settings, count, self._event, self._worker_gone, self._request)
        self.links = Links(self.pool, self.get)
        self.tickets = itertools.count(1)  #: names a connection handed to a worker in the request about it
        #: ticket -> (room, claim) of an RTMP hand-over whose worker may ask for the claim (``claim``)
        self.claims: dict[int, tuple[str, "PublishClaim"]] = {}
        self.tasks = TaskOwner(log)
        self.pulls = Pulls(self.pool, self.links, self.least_loaded, self.tasks)
        self.udp_mux = None
        #: worker -> its load at its latest snapshot (``WorkerMetrics.load``: pid, cpu_s, at, lag_s)
        self.loads: dict[int, dict] = {}
        #: (worker, session id) of sessions whose ``closed`` news came before the reply that
        #: made them (the channel resolves the reply, then reads the next line before the
        #: waiting coroutine runs): ``settle`` ends them once they exist
        self._closed_early: OrderedDict[tuple[int, str], None] = OrderedDict()

    def get(self, name: str) -> Optional[WorkerRoom]:
        return self._rooms.get(name)

    async def settle(self, session: WorkerSession) -> None:
        """End a session just made whose worker already said it closed (``_closed_early``)."""
        if self._closed_early.pop((session.worker, session.id), False) is None:
            session.log.info("closed in its worker before the control plane knew it")
            await session.ended()

    def open(self, name: str) -> WorkerRoom:
        room = self._rooms.get(name)
        if room is None:
            room = self._rooms[name] = WorkerRoom(self, name)
        return room

    def __iter__(self) -> Iterator[WorkerRoom]:
        return iter(list(self._rooms.values()))

    def least_loaded(self) -> int:
        """The running worker with the fewest sessions (publishers, pulls from an origin node
        and viewers), then the lowest index."""
        alive = self.pool.alive()
        if not alive:
            raise WorkerGone("no media worker is running")
        load = dict.fromkeys(alive, 0)
        for room in self._rooms.values():
            for session in [room.publisher, room.edge, *room.subscribers.values()]:
                if session is not None and session.worker in load:
                    load[session.worker] += 1
        return min(alive, key=lambda w: (load[w], w))

    def on_air(self) -> list[dict]:
        rooms = [
            {"room": r.name, "phase": r.phase, "viewers": r.viewer_count(),
             "broadcast": {"id": r.broadcast.id, "t_ms": r.broadcast.t_ms()}}
            for r in self._rooms.values() if r.broadcast is not None and r.phase in ("live", "reconnecting")
        ]
        return sorted(rooms, key=lambda r: (-r["viewers"], r["room"]))

    def audience(self) -> dict[str, int]:
        return {r.name: n for r in self._rooms.values() if (n := r.viewer_count())}

    async def start(self, worker: int = 0) -> None:
        await self.pool.start()

    # ------------------------------------------------------------ news from the workers
    async def _event(self, worker: int, name: str, data: dict) -> None:
        if name == "snapshot":
            if "load" in data:
                self.loads[worker] = data["load"]
            rooms = data["rooms"]
            for room in self._rooms.values():
                if room.name in rooms:
                    room.snapshots[worker] = rooms[room.name]
                else:
                    room.snapshots.pop(worker, None)
            return
        if name == "first_media":
            self.observer.viewer_first_media(data["seconds"])
            return
        if name == "peer_failed":
            self.observer.peer_failed(data["role"], data["stage"], data["cause"])
            return
        room = self._rooms.get(data.get("room", ""))
        if room is None:
            return
        if name == "closed":
            session = room.session(data["session"])
            if session is not None and session.worker == worker:
                await session.ended()
            elif session is None:
                self._closed_early[(worker, data["session"])] = None
                while len(self._closed_early) > CLOSED_EARLY_KEPT:
                    self._closed_early.popitem(last=False)
        elif name == "broadcast_started":
            await room.started(worker, Broadcast(id=data["id"], started_at=data["started_at"]))
        elif name == "broadcast_confirmed":
            await room.confirmed(worker, data["id"])
        elif name == "broadcast_ended":
            await room.ended(worker, data["id"], discarded=bool(data.get("discarded")))
        elif name == "pipe_idle":
            self.tasks.spawn(self.links.idle(worker, room.name, data["channel"]), name=f"pipe-idle-{room.name}")
        elif name == "pull_closed":
            await self.pulls.ended(room, worker, data["source"])

    async def _request(self, worker: int, op: str, data: dict) -> Optional[dict]:
        """A worker's request: ``exchange`` carries its pull's offer to the origin node,
        ``claim`` claims an RTMP encoder's room for this node."""
        if op == "exchange":
            return await self.pulls.exchanges.answer(data["pull"], data["offer"])
        if op == "claim":
            return {"lost": await self.claim(data["ticket"])}
        raise ValueError(f"no operation {op!r}")

    async def claim(self, ticket: int) -> Optional[str]:
        """Claim the room of the RTMP hand-over ``ticket`` for this node (its worker accepted
        the encoder and waits for this before it answers ``Publish.Start``): why not, or
        None. A hand-over this process gave up on (its request timed out) is not claimed."""
        found = self.claims.get(ticket)
        if found is None:
            return "the control plane gave up on this encoder; try again"
        room, claim = found
        return await claim(room)

    async def _worker_gone(self, worker: int) -> None:
        """Worker ``worker`` died: its sessions end here, the rooms it hosted lose their host."""
        await self.links.worker_gone(worker)
        self.loads.pop(worker, None)
        for room in list(self._rooms.values()):
            room.snapshots.pop(worker, None)
            for session in [s for s in list(room.subscribers.values()) + [room.publisher]
                            if s is not None and s.worker == worker]:
                await session.ended()
            if room.host == worker:
                await room.lost_host()
            if room.edge is not None and room.edge.worker == worker:
                room.log.warning("media worker %d gone: its pull from node %s ended", worker, room.edge.origin)
                await self.pulls.ended(room, worker, room.edge.source)

    async def close(self) -> None:
        await self.tasks.close()
        await self.pool.close()
        for room in list(self._rooms.values()):
            for session in list(room.subscribers.values()) + ([room.publisher] if room.publisher else []):
                await session.ended()
            edge, room.edge = room.edge, None
            if edge is not None:  # the edge leaves the origin's session, as one process does
                await edge.closed()
        self._rooms.clear()
