"""``Room`` and ``RoomRegistry``: the live domain, with no HTTP in it.

A room has at most one live publisher, any number of subscribers, and one ``Fanout``
per media kind that outlives publishers (so viewers stay connected while the creator
reconnects). Publisher policy: the first publisher holds the room; a second one is
refused (``RoomBusy``) unless the current one is gone or has sent no media for
``publisher_stale_seconds``, in which case the newcomer replaces it. Closing cascades:
room -> publisher and subscribers -> their peer connections and tasks.

A broadcast opens with the POST that is accepted (so the studio, chat and recorder have
its id at once) but only counts once media arrives: until then the room is not live and
keeps its phase, and if the publisher whose POST opened it leaves without sending any
(ICE or DTLS failed, it never connected, or it sent nothing for ``connect_timeout`` after
its POST was accepted and was closed for it) the broadcast is discarded, the room stays in
its previous phase (never "reconnecting"), the empty recording is removed instead of
packaged, and the end listeners are told with ``Broadcast.discarded`` set. Its first
media confirms it: the ``broadcast_confirmed`` listeners are told then, once (the
publisher's ``first_media`` future says when; nothing polls).
"""

from __future__ import annotations

import asyncio
import shutil
from typing import Callable, Optional, TypeVar

from core.settings import Settings
from mediaserver.live.broadcast import Broadcast, BroadcastListener, tell
from mediaserver.live.errors import RoomBusy
from mediaserver.live.overview import LiveObserver, room_overview
from mediaserver.sfu.fanout import Fanout
from core.logs import context_logger
from mediaserver.live.edge_source import EdgeSource, Exchange
from mediaserver.live.peer_session import PeerSession
from mediaserver.live.publisher import LivePublisher, Publisher
from mediaserver.recording.recorder import Recorder
from mediaserver.live.adaptation import RENDITIONS
from mediaserver.live.low_rendition import LowRendition
from mediaserver.live.rendition_switcher import RenditionSwitcher
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
        self.broadcast: Optional[Broadcast] = None
        self.recorder: Optional[Recorder] = None  #: the current broadcast's recording
        #: the last broadcast that ended, until a new one starts ("ended" phase)
        self.ended_broadcast: Optional[Broadcast] = None
        #: called with (room, broadcast) when a broadcast opens (its POST), is confirmed (its
        #: first media: "live now"), ends (paid-question refunds...)
        self.broadcast_started: list[BroadcastListener] = []
        self.broadcast_confirmed: list[BroadcastListener] = []
        self.broadcast_ended: list[BroadcastListener] = []
        #: (publisher, ended_broadcast before it) while the broadcast that publisher's POST
        #: opened has seen no media: discarded if it leaves without sending any
        self._unconfirmed: Optional[tuple[LivePublisher, Optional[Broadcast]]] = None
        #: closes the unconfirmed broadcast's publisher if it sends nothing (``connect_timeout``)
        self._silence: Optional[asyncio.TimerHandle] = None
        self._publish_lock = asyncio.Lock()
        #: a pulled source that stays without viewers here (``pull(held=True)``)
        self._held: Optional[LivePublisher] = None
        self._closed = False
        #: kind -> totals of the viewers that left (NACKed sequence numbers, payload bytes),
        #: so the room's totals only grow
        self.departed_nacked: dict[str, int] = {}
        self.departed_octets: dict[str, int] = {}
        #: the low rendition for weak networks, while some viewer needs it
        self.low: Optional[LowRendition] = None
        #: moves viewers between renditions (``low_rendition`` on), from the first viewer
        self.switcher: Optional[RenditionSwitcher] = None

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
                and not self._awaiting_first_media())

    def _awaiting_first_media(self) -> bool:
        """The broadcast was opened by the current publisher's POST and no media came yet."""
        unconfirmed = self._unconfirmed
        return (unconfirmed is not None and unconfirmed[0] is self.publisher
                and unconfirmed[0].last_media() is None)

    @property
    def phase(self) -> str:
        """What a viewer should be told: "live"; "reconnecting" (the broadcast is open but
        its publisher dropped); "ended" (the creator ended it; its replay is on the way);
        "idle" (nothing broadcast yet on this node). A broadcast whose first media has not
        come yet does not count: the room stays in the phase it was in."""
        if self.live:
            return "live"
        if self.broadcast is not None and not self._awaiting_first_media():
            return "reconnecting"
        if self._awaiting_first_media():
            return "ended" if self._unconfirmed[1] is not None else "idle"  # type: ignore[index]
        return "ended" if self.ended_broadcast is not None else "idle"

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
            await self._tell(self.broadcast_started, started, "broadcast-start")
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
            await self._tell(self.broadcast_started, started, "broadcast-start")
        return source

    def _refuse_if_busy(self) -> None:
        # an edge source gives way: the caller checked that no other node originates the room
        if self.publisher is not None and not self.publisher.is_stale() and self.origin is None:
            raise RoomBusy(f"room {self.name!r} already has a live publisher")

    async def _accept(self, publisher: LivePublisher) -> Optional[Broadcast]:
        """Make ``publisher`` the room's (under the publish lock): open a broadcast if none
        is open, attach it to the fanouts, close the stale one it replaces. The broadcast it
        opened, if it did (its listeners are told after the lock)."""
        started: Optional[Broadcast] = None
        previous, self.publisher = self.publisher, publisher
        self.origin = None
        if self.broadcast is None:
            self._unconfirmed = (publisher, self.ended_broadcast)
            self.broadcast = Broadcast()
            self.ended_broadcast = None
            self.log.info("broadcast %s started", self.broadcast.id)
            self._start_recorder(self.broadcast, publisher.codecs)
            started = self.broadcast
            self._confirm_at_first_media(publisher, started)
        elif self._unconfirmed is not None and self._unconfirmed[0] is previous:
            self._unconfirmed = (publisher, self._unconfirmed[1])  # still no media
            self._confirm_at_first_media(publisher, self.broadcast)
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
        if self.settings.media.low_rendition and "video" in kinds and self.switcher is None:
            self.switcher = RenditionSwitcher(lambda: list(self.subscribers.values()), self.set_rendition, self.log)
            self.tasks.spawn(self.switcher.run(), name="rendition-switcher")
        return subscriber, answer

    # ------------------------------------------------------------ weak networks
    async def set_rendition(self, subscriber: Subscriber, rendition: str) -> None:
        """Give a viewer the full video, the room's low rendition (started for the first
        viewer that needs it, stopped after the last) or audio only."""
        if rendition not in RENDITIONS:
            raise ValueError(f"rendition: one of {', '.join(RENDITIONS)}")
        if rendition == subscriber.rendition or subscriber.closed:
            return
        target = None
        if rendition == "low":
            if self.low is None:
                self.low = LowRendition(self.fanouts["video"], self.tasks, self.log,
                                        self.settings.media.keyframe_min_interval)
            self.low.start()
            target = self.low.fanout
        elif rendition == "full":
            target = self.fanouts["video"]
        subscriber.switch_video(target, rendition)
        await self._stop_unwatched_rendition()

    async def _stop_unwatched_rendition(self) -> None:
        if self.low is not None and self.low.running and not any(
                s.rendition == "low" for s in self.subscribers.values() if not s.closed):
            await self.low.stop()

    async def end_broadcast(self) -> None:
        """The creator ended the live session (the publisher's WHIP DELETE)."""
        ended, self.broadcast = self.broadcast, None
        if ended is None:
            return
        self._unconfirmed = None  # its publisher leaving now does not undo this end
        self.ended_broadcast = ended
        self.log.info("broadcast %s ended after %d s", ended.id, ended.t_ms() // 1000)
        await self._stop_recorder("broadcast_end")
        for fanout in self.fanouts.values():
            fanout.release()
        await self._tell(self.broadcast_ended, ended, "broadcast-end")

    async def _tell(self, listeners: list[BroadcastListener], broadcast: Broadcast, what: str) -> None:
        await tell(listeners, self, broadcast, what, self.log)

    def _confirm_at_first_media(self, publisher: LivePublisher, broadcast: Broadcast) -> None:
        """Confirm ``broadcast`` when ``publisher``'s first media arrives, if the broadcast
        is still the room's and still waits for that publisher's media by then (a stale
        publisher replaced before sending any hands the wait on to its successor). A
        publisher that sent nothing ``connect_timeout`` after it was accepted (connected
        but silent) is closed, which discards the broadcast."""
        timeout = self.settings.media.connect_timeout

        def waiting() -> bool:
            unconfirmed = self._unconfirmed
            return (self.broadcast is broadcast and not broadcast.confirmed
                    and unconfirmed is not None and unconfirmed[0] is publisher)

        def arrived(first_media: asyncio.Future) -> None:
            silence.cancel()
            if not first_media.cancelled() and waiting():
                self.tasks.spawn(self._confirm(broadcast), name=f"confirm-{broadcast.id}")

        def silent() -> None:
            if waiting() and not publisher.closed:
                publisher.log.warning("no media %.0f s after it was accepted, closing", timeout)
                self.tasks.spawn(publisher.close(), name=f"close-silent-{publisher.id[:8]}")

        if self._silence is not None:  # the publisher it was set for was replaced
            self._silence.cancel()
        silence = self._silence = asyncio.get_running_loop().call_later(timeout, silent)
        publisher.first_media.add_done_callback(arrived)

    async def _confirm(self, broadcast: Broadcast) -> None:
        if broadcast.confirmed:
            return
        broadcast.confirmed = True
        self._unconfirmed = None
        self.log.info("broadcast %s confirmed: its first media arrived", broadcast.id)
        await self._tell(self.broadcast_confirmed, broadcast, "broadcast-confirm")

    async def _discard_unconfirmed(self, publisher: LivePublisher) -> None:
        """The publisher whose POST opened the broadcast left without ever sending media
        (ICE or DTLS failed, it never connected, or it was closed for sending nothing):
        there was no broadcast. The room goes
        back to what it was, and the empty recording is removed, not packaged."""
        if publisher.last_media() is not None:  # it left before its ``first_media`` callback ran
            if self.broadcast is not None:
                await self._confirm(self.broadcast)
            self._unconfirmed = None
            return
        broadcast, (_, self.ended_broadcast) = self.broadcast, self._unconfirmed
        self._unconfirmed = None
        self.broadcast = None
        recorder, self.recorder = self.recorder, None
        self.log.info("broadcast %s discarded: its publisher left without sending media",
                      broadcast.id if broadcast else "?")
        if recorder is not None:
            try:
                await recorder.stop("no_media")
                await asyncio.to_thread(shutil.rmtree, recorder.directory, True)
            except Exception:
                self.log.exception("removing the empty recording failed")
        if broadcast is not None:  # its start listeners were told at the POST
            broadcast.discarded = True
            await self._tell(self.broadcast_ended, broadcast, "broadcast-end")

    def _start_recorder(self, broadcast: Broadcast, codecs: dict[str, str]) -> None:
        """Record the broadcast (unless recordings are off); the live path never waits
        for it and goes on if it cannot start."""
        if not self.settings.recording.recordings or not codecs:
            return
        try:
            recorder = Recorder(
                self.name, broadcast, codecs, self.settings.server.data_dir, self.log,
                request_keyframe=lambda kind: self.fanouts[kind].request_keyframe(),
                keyframe_interval=self.settings.recording.recording_keyframe_interval,
            )
            recorder.start()
            recorder.attach(self.fanouts)
        except Exception:
            self.log.exception("broadcast %s: the recorder did not start", broadcast.id)
            return
        self.recorder = recorder

    async def _stop_recorder(self, ended_by: str) -> None:
        recorder, self.recorder = self.recorder, None
        if recorder is not None:
            try:
                await recorder.stop(ended_by)
            except Exception:
                self.log.exception("stopping the recorder failed")

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
            if self._unconfirmed is not None and self._unconfirmed[0] is session:
                await self._discard_unconfirmed(session)
        elif self.subscribers.pop(session.id, None) is not None:
            for kind, n in session.nacked.items():  # type: ignore[attr-defined]
                self.departed_nacked[kind] = self.departed_nacked.get(kind, 0) + n
            for kind, n in session.octets_sent().items():  # type: ignore[attr-defined]
                self.departed_octets[kind] = self.departed_octets.get(kind, 0) + n
            self.log.info("viewer %s left (%d watching)", session.id[:8], len(self.subscribers))
            await self._stop_unwatched_rendition()
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
        if self._silence is not None:
            self._silence.cancel()
        sessions: list[PeerSession | LivePublisher] = list(self.subscribers.values())
        if self.publisher is not None:
            sessions.append(self.publisher)
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
        await self._stop_recorder("shutdown")
        if self.low is not None:
            await self.low.stop()
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
            room.broadcast_ended = self.broadcast_ended
            room.broadcast_started = self.broadcast_started
            room.broadcast_confirmed = self.broadcast_confirmed
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
