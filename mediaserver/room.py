"""``Room`` and ``RoomRegistry``: the live domain, with no HTTP in it.

A room has at most one live publisher, any number of subscribers, and one ``Fanout``
per media kind that outlives publishers (so viewers stay connected while the creator
reconnects). Publisher policy: the first publisher holds the room; a second one is
refused (``RoomBusy``) unless the current one is gone or has sent no media for
``publisher_stale_seconds``, in which case the newcomer replaces it. Closing cascades:
room -> publisher and subscribers -> their peer connections and tasks.
"""

from __future__ import annotations

import asyncio
from typing import Optional

from .config import Settings
from .errors import RoomBusy
from .fanout import Fanout
from .logs import context_logger
from .peer_session import PeerSession
from .publisher import Publisher
from .subscriber import Subscriber
from .tasks import TaskOwner

__all__ = ["Room", "RoomRegistry"]


class Room:
    def __init__(self, name: str, settings: Settings) -> None:
        self.name = name
        self.settings = settings
        self.log = context_logger("stagepass.room", name)
        self.tasks = TaskOwner(self.log)
        self.fanouts: dict[str, Fanout] = {
            kind: Fanout(kind, self.tasks, self.log, settings.keyframe_min_interval)
            for kind in ("video", "audio")
        }
        self.publisher: Optional[Publisher] = None
        self.subscribers: dict[str, Subscriber] = {}
        self._publish_lock = asyncio.Lock()
        self._closed = False

    def _session_args(self) -> dict:
        return dict(
            room_name=self.name,
            ice_servers=self.settings.ice_servers,
            connect_timeout=self.settings.connect_timeout,
            on_closed=self._forget,
        )

    @property
    def live(self) -> bool:
        return self.publisher is not None and not self.publisher.is_stale()

    async def publish(self, offer_sdp: str, plan: dict[str, str]) -> tuple[Publisher, str]:
        """Accept a publisher (``plan``: kind -> codec key); ``RoomBusy`` if one is live."""
        async with self._publish_lock:
            if self.publisher is not None and not self.publisher.is_stale():
                raise RoomBusy(f"room {self.name!r} already has a live publisher")
            publisher = Publisher(
                **self._session_args(), stale_after=self.settings.publisher_stale_seconds
            )
            try:
                answer = await publisher.start(offer_sdp, plan, self.fanouts)
            except BaseException:
                await publisher.close()
                raise
            previous, self.publisher = self.publisher, publisher
            publisher.attach()
            if previous is not None:
                self.log.info("publisher %s replaces stale %s", publisher.id[:8], previous.id[:8])
                await previous.close()
        self.log.info("publisher %s accepted", publisher.id[:8])
        return publisher, answer

    async def subscribe(self, offer_sdp: str, kinds: list[str]) -> tuple[Subscriber, str]:
        subscriber = Subscriber(
            **self._session_args(), buffer_limit=self.settings.subscriber_buffer_bytes
        )
        try:
            answer = await subscriber.start(offer_sdp, kinds, self.fanouts)
        except BaseException:
            await subscriber.close()
            raise
        self.subscribers[subscriber.id] = subscriber
        self.log.info("viewer %s joined (%d watching)", subscriber.id[:8], len(self.subscribers))
        return subscriber, answer

    def session(self, session_id: str) -> Optional[PeerSession]:
        if self.publisher is not None and self.publisher.id == session_id:
            return self.publisher
        return self.subscribers.get(session_id)

    async def _forget(self, session: PeerSession) -> None:
        if session is self.publisher:
            self.publisher = None
            self.log.info("publisher %s left", session.id[:8])
        elif self.subscribers.pop(session.id, None) is not None:
            self.log.info("viewer %s left (%d watching)", session.id[:8], len(self.subscribers))

    def stats(self) -> dict:
        return {
            "room": self.name,
            "live": self.live,
            "viewers": len(self.subscribers),
            "codecs": dict(self.publisher.codecs) if self.publisher else {},
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
        sessions: list[PeerSession] = list(self.subscribers.values())
        if self.publisher is not None:
            sessions.append(self.publisher)
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
        await self.tasks.close()


class RoomRegistry:
    """The rooms of this node, created on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._rooms: dict[str, Room] = {}

    def get(self, name: str) -> Optional[Room]:
        return self._rooms.get(name)

    def open(self, name: str) -> Room:
        room = self._rooms.get(name)
        if room is None:
            room = self._rooms[name] = Room(name, self.settings)
        return room

    def __iter__(self):
        return iter(self._rooms.values())

    async def close(self) -> None:
        rooms, self._rooms = list(self._rooms.values()), {}
        await asyncio.gather(*(r.close() for r in rooms), return_exceptions=True)
