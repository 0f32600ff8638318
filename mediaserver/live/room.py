"""``Room`` and ``RoomRegistry``: the live domain, with no HTTP in it.

A room has at most one live publisher, any number of subscribers, and one ``Fanout``
per media kind that outlives publishers (so viewers stay connected while the creator
reconnects). Publisher policy: the first publisher holds the room; a second one is
refused (``RoomBusy``) unless the current one is gone or has sent no media for
``publisher_stale_seconds``, in which case the newcomer replaces it. Closing cascades:
room -> publisher and subscribers -> their peer connections and tasks.

The room keeps its sessions: which source feeds it (a publisher, or an edge or relay
source) and who watches. Its broadcasts (opened by a POST, confirmed by first media or
discarded, ended, recorded, told to listeners) are its ``BroadcastLifecycle``
(``mediaserver.live.broadcast_lifecycle``); what each viewer watches for its network (the
full video, the low rendition or audio only) is its ``RoomRenditions``
(``mediaserver.live.room_renditions``).
"""

from __future__ import annotations

import asyncio
from typing import Callable, Optional, TypeVar

from core.settings import Settings
from mediaserver.live.broadcast import Broadcast, BroadcastListener
from mediaserver.live.broadcast_lifecycle import BroadcastLifecycle
from mediaserver.live.errors import RoomBusy
from mediaserver.live.overview import LiveObserver, room_overview
from mediaserver.sfu.fanout import Fanout
from core.logs import context_logger
from mediaserver.live.edge_source import EdgeSource, Exchange
from mediaserver.live.peer_session import PeerSession
from mediaserver.live.publisher import LivePublisher, Publisher
from mediaserver.recording.recorder import Recorder
from mediaserver.live.low_rendition import LowRendition
from mediaserver.live.rendition_switcher import RenditionSwitcher
from mediaserver.live.room_renditions import RoomRenditions
from mediaserver.live.subscriber import Subscriber
from core.tasks import TaskOwner
from mediaserver.sfu.udp_mux import UdpMux

__all__ = ["Broadcast", "LiveObserver", "Room", "RoomRegistry", "room_overview"]

S = TypeVar("S", bound=LivePublisher)


class Room:
    def __init__(self, name: str, settings: Settings, observer: Optional[LiveObserver] = None) -> None:
        self.name = name
        self.settings = settings
        self.observer = observer or LiveObserver()
        self.log = context_logger("stagepass.room", name)
        self.tasks = TaskOwner(self.log)
        self.fanouts: dict[str, Fanout] = {
            kind: Fanout(kind, self.tasks, self.log, settings.media.keyframe_min_interval)
            for kind in ("video", "audio")
        }
        #: the process's shared UDP port (set by the registry), None: a port per peer
        self.udp_mux: Optional[UdpMux] = None
        self.publisher: Optional[LivePublisher] = None
        #: the node this room is pulled from while its source is an ``EdgeSource``
        self.origin: Optional[str] = None
        self.subscribers: dict[str, Subscriber] = {}
        #: the open broadcast, the last one that ended, its recording and its listeners
        self.lifecycle = BroadcastLifecycle(self, name, settings, self.fanouts, self.tasks, self.log)
        self._publish_lock = asyncio.Lock()
        #: a pulled source that stays without viewers here (``pull(held=True)``)
        self._held: Optional[LivePublisher] = None
        self._closed = False
        #: kind -> totals of the viewers that left (NACKed sequence numbers, payload bytes),
        #: so the room's totals only grow
        self.departed_nacked: dict[str, int] = {}
        self.departed_octets: dict[str, int] = {}
        #: what each viewer watches: the full video, the low rendition or audio only
        self.renditions = RoomRenditions(lambda: list(self.subscribers.values()), self.fanouts,
                                         settings, self.tasks, self.log)

    # ------------------------------------------------------------ its broadcasts
    @property
    def broadcast(self) -> Optional[Broadcast]:
        """The open broadcast (live, awaiting its first media, or its creator reconnecting)."""
        return self.lifecycle.broadcast

    @property
    def ended_broadcast(self) -> Optional[Broadcast]:
        """The last broadcast that ended, until a new one starts ("ended" phase)."""
        return self.lifecycle.ended_broadcast

    @property
    def recorder(self) -> Optional[Recorder]:
        """The current broadcast's recording."""
        return self.lifecycle.recorder

    @property
    def broadcast_started(self) -> list[BroadcastListener]:
        """Called with (room, broadcast) when a broadcast opens (its POST)."""
        return self.lifecycle.started

    @property
    def broadcast_confirmed(self) -> list[BroadcastListener]:
        """Called with (room, broadcast) when a broadcast's first media arrives ("live now")."""
        return self.lifecycle.confirmed

    @property
    def broadcast_ended(self) -> list[BroadcastListener]:
        """Called with (room, broadcast) when a broadcast ends or is discarded (refunds...)."""
        return self.lifecycle.ended

    async def end_broadcast(self) -> None:
        """The creator ended the live session (the publisher's WHIP DELETE)."""
        await self.lifecycle.end()

    # ------------------------------------------------------------ its source
    def _session_args(self) -> dict:
        return dict(
            room_name=self.name,
            ice_servers=self.settings.media.ice_servers,
            connect_timeout=self.settings.media.connect_timeout,
            on_closed=self._forget,
            room_tasks=self.tasks,
            on_failed=self.observer.peer_failed,
            udp_mux=self.udp_mux,
        )

    @property
    def live(self) -> bool:
        return (self.publisher is not None and not self.publisher.is_stale()
                and not self.lifecycle.awaiting_first_media(self.publisher))

    @property
    def phase(self) -> str:
        """What a viewer should be told: "live"; "reconnecting" (the broadcast is open but
        its publisher dropped); "ended" (the creator ended it; its replay is on the way);
        "idle" (nothing broadcast yet on this node). A broadcast whose first media has not
        come yet does not count: the room stays in the phase it was in."""
        return "live" if self.live else self.lifecycle.phase_off_air(self.publisher)

    async def publish(self, offer_sdp: str, plan: dict[str, str]) -> tuple[Publisher, str]:
        """Accept a publisher (``plan``: kind -> codec key); ``RoomBusy`` if one is live."""
        async with self._publish_lock:
            self._refuse_if_busy()
            publisher = Publisher(
                **self._session_args(), stale_after=self.settings.media.publisher_stale_seconds
            )
            try:
                answer = await publisher.start(offer_sdp, plan, self.fanouts)
            except BaseException:
                await publisher.close()
                raise
            started = await self._accept(publisher)
        if started is not None:
            await self.lifecycle.tell_started(started)
        return publisher, answer

    async def publish_ingest(self, make_source: Callable[..., S]) -> S:
        """Accept a publisher that is not a WebRTC peer (the RTMP ingest) under the same
        policy as WHIP: ``RoomBusy`` if one is live. ``make_source(room_name, on_closed,
        room_tasks, stale_after, fanouts)`` builds it once the room is known to be free."""
        async with self._publish_lock:
            self._refuse_if_busy()
            source = make_source(room_name=self.name, on_closed=self._forget, room_tasks=self.tasks,
                                 stale_after=self.settings.media.publisher_stale_seconds, fanouts=self.fanouts)
            started = await self._accept(source)
        if started is not None:
            await self.lifecycle.tell_started(started)
        return source

    def _refuse_if_busy(self) -> None:
        # an edge source gives way: the caller checked that no other node originates the room
        if self.publisher is not None and not self.publisher.is_stale() and self.origin is None:
            raise RoomBusy(f"room {self.name!r} already has a live publisher")

    async def _accept(self, publisher: LivePublisher) -> Optional[Broadcast]:
        """Make ``publisher`` the room's (under the publish lock): open a broadcast if none
        is open, attach it to the fanouts, close the stale one it replaces. The broadcast it
        opened, if it did (its listeners are told after the lock)."""
        previous, self.publisher = self.publisher, publisher
        self.origin = None
        started = self.lifecycle.publisher_accepted(publisher, previous)
        publisher.attach()
        if previous is not None:
            self.log.info("publisher %s replaces stale %s", publisher.id[:8], previous.id[:8])
            await previous.close()
        self.log.info("publisher %s accepted", publisher.id[:8])
        return started

    async def pull(self, origin: str, exchange: Exchange, held: bool = False) -> LivePublisher:
        """Make this room an edge of node ``origin``: its source becomes an ``EdgeSource``
        negotiated through ``exchange``, unless a live source is already here (returned).
        An edge neither opens a broadcast nor records: the origin does both. ``held``: the
        pull stays when the room's last viewer here leaves (a media worker's pull serves
        the node's other workers too: the control plane lets go of it)."""
        async with self._publish_lock:
            if self.publisher is not None and not self.publisher.is_stale():
                return self.publisher
            source = EdgeSource(**self._session_args(), stale_after=self.settings.media.publisher_stale_seconds)
            try:
                await source.pull(exchange, self.fanouts)
            except BaseException:
                await source.close()
                raise
            await self._take_source(source, origin)
            self._held = source if held else None
        self.log.info("pulling from node %s as edge source %s", origin, source.id[:8])
        return source

    async def relay_from(self, origin: str, make_source: Callable[..., S]) -> S:
        """Relay this room from ``origin`` (another media worker of this machine): the source
        ``make_source(room_name, on_closed, room_tasks, stale_after, fanouts)`` builds
        replaces whatever source was here. Like an edge, a relay neither opens a broadcast nor
        records, and it is let go of when the room's last viewer here leaves."""
        async with self._publish_lock:
            source = make_source(room_name=self.name, on_closed=self._forget, room_tasks=self.tasks,
                                 stale_after=self.settings.media.publisher_stale_seconds, fanouts=self.fanouts)
            await self._take_source(source, origin)
        self.log.info("relaying from %s as source %s", origin, source.id[:8])
        return source

    async def _take_source(self, source: LivePublisher, origin: str) -> None:
        previous, self.publisher, self.origin = self.publisher, source, origin
        source.attach()
        if previous is not None:
            await previous.close()

    # ------------------------------------------------------------ its viewers
    def viewer_count(self) -> int:
        """Viewers watching here, not counting other nodes' edge sources pulling from this one."""
        return sum(1 for s in self.subscribers.values() if not s.relay)

    async def subscribe(self, offer_sdp: str, kinds: list[str]) -> tuple[Subscriber, str]:
        subscriber = Subscriber(
            **self._session_args(), buffer_limit=self.settings.media.subscriber_buffer_bytes,
            on_first_media=self.observer.viewer_first_media,
        )
        try:
            answer = await subscriber.start(offer_sdp, kinds, self.fanouts)
        except BaseException:
            await subscriber.close()
            raise
        self.subscribers[subscriber.id] = subscriber
        self.log.info("viewer %s joined (%d watching)", subscriber.id[:8], len(self.subscribers))
        self.renditions.viewer_joined(kinds)
        return subscriber, answer

    # ------------------------------------------------------------ weak networks
    async def set_rendition(self, subscriber: Subscriber, rendition: str) -> None:
        """Give a viewer the full video, the room's low rendition or audio only."""
        await self.renditions.set(subscriber, rendition)

    @property
    def low(self) -> Optional[LowRendition]:
        """The low rendition for weak networks, while some viewer needs it."""
        return self.renditions.low

    @property
    def switcher(self) -> Optional[RenditionSwitcher]:
        """Moves viewers between renditions (``low_rendition`` on), from the first viewer."""
        return self.renditions.switcher

    def session(self, session_id: str) -> Optional[PeerSession | LivePublisher]:
        if self.publisher is not None and self.publisher.id == session_id:
            return self.publisher
        return self.subscribers.get(session_id)

    async def end_sessions_of(self, user_id: int, why: str) -> int:
        """Close every viewer session of ``user_id`` on this node (a ban); how many there were."""
        ended = [s for s in self.subscribers.values() if s.user_id == user_id and not s.closed]
        for session in ended:
            session.log.info("%s: ending session", why)
            await session.close()
        return len(ended)

    async def _forget(self, session: PeerSession | LivePublisher) -> None:
        if session is self.publisher:
            self.publisher = None
            self.origin = None
            self._held = None
            self.log.info("publisher %s left", session.id[:8])
            await self.lifecycle.publisher_left(session)
        elif self.subscribers.pop(session.id, None) is not None:
            for kind, n in session.nacked.items():  # type: ignore[attr-defined]
                self.departed_nacked[kind] = self.departed_nacked.get(kind, 0) + n
            for kind, n in session.octets_sent().items():  # type: ignore[attr-defined]
                self.departed_octets[kind] = self.departed_octets.get(kind, 0) + n
            self.log.info("viewer %s left (%d watching)", session.id[:8], len(self.subscribers))
            await self.renditions.stop_unwatched()
            if (self.origin is not None and not self.subscribers and self.publisher is not None
                    and self.publisher is not self._held):
                self.log.info("last viewer left: letting go of origin %s", self.origin)
                self.tasks.spawn(self.publisher.close(), name="let-go-of-origin")

    def stats(self) -> dict:
        return {
            **room_overview(self),
            "recording": self.recorder.state() if self.recorder else None,
            "fanouts": {kind: f.stats.as_dict() for kind, f in self.fanouts.items()},
            "keyframe_requests": {
                "requested": self.fanouts["video"].keyframes.requested,
                "sent": self.fanouts["video"].keyframes.sent,
            },
        }

    async def close(self) -> None:
        """Close the publisher, every subscriber and the room's tasks; idempotent."""
        if self._closed:
            return
        self._closed = True
        self.lifecycle.stop_waiting()
        sessions: list[PeerSession | LivePublisher] = list(self.subscribers.values())
        if self.publisher is not None:
            sessions.append(self.publisher)
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
        await self.lifecycle.stop_recorder("shutdown")
        await self.renditions.close()
        for fanout in self.fanouts.values():
            fanout.release()
        await self.tasks.close()


class RoomRegistry:
    """The rooms of this node, created on first use."""

    def __init__(self, settings: Settings, observer: Optional[LiveObserver] = None) -> None:
        self.settings = settings
        self.observer = observer or LiveObserver()
        self._rooms: dict[str, Room] = {}
        #: this process's shared UDP port for peer connections (``start``); None: one per peer
        self.udp_mux: Optional[UdpMux] = None
        #: listeners every room calls when one of its broadcasts starts, is confirmed or ends
        self.broadcast_started: list[BroadcastListener] = []
        self.broadcast_confirmed: list[BroadcastListener] = []
        self.broadcast_ended: list[BroadcastListener] = []

    def get(self, name: str) -> Optional[Room]:
        return self._rooms.get(name)

    def open(self, name: str) -> Room:
        room = self._rooms.get(name)
        if room is None:
            room = self._rooms[name] = Room(name, self.settings, self.observer)
            room.udp_mux = self.udp_mux
            room.lifecycle.ended = self.broadcast_ended
            room.lifecycle.started = self.broadcast_started
            room.lifecycle.confirmed = self.broadcast_confirmed
        return room

    def __iter__(self):
        return iter(self._rooms.values())

    def on_air(self) -> list[dict]:
        """Rooms of this node with an open broadcast (live, or its creator reconnecting):
        ``{room, phase, viewers, broadcast: {id, t_ms}}``, most viewers first."""
        rooms = [
            {"room": r.name, "phase": r.phase, "viewers": r.viewer_count(),
             "broadcast": {"id": r.broadcast.id, "t_ms": r.broadcast.t_ms()}}
            for r in self._rooms.values() if r.broadcast is not None and r.phase in ("live", "reconnecting")
        ]
        return sorted(rooms, key=lambda r: (-r["viewers"], r["room"]))

    async def start(self, worker: int = 0) -> None:
        """Bind this process's shared UDP port (``udp_port``; media worker ``worker``
        takes its own port of a range), unless peers bind their own (``off``)."""
        port = self.settings.media.udp_port_for(worker)
        if port is not None and self.udp_mux is None:
            media = self.settings.media
            self.udp_mux = await UdpMux.open(media.udp_host, port, media.public_ip)

    def audience(self) -> dict[str, int]:
        """Viewers watching each room on this node (origin or edge), rooms without any left out."""
        return {r.name: n for r in self._rooms.values() if (n := r.viewer_count())}

    async def close(self) -> None:
        rooms, self._rooms = list(self._rooms.values()), {}
        await asyncio.gather(*(r.close() for r in rooms), return_exceptions=True)
        if self.udp_mux is not None:
            await self.udp_mux.close()
            self.udp_mux = None
