"""``WorkerSession``: a publisher's or viewer's session that lives in a media worker, as
the control plane sees it (``remote.py`` makes them)."""

from __future__ import annotations

import time
from typing import Any, Optional

from core.close_listeners import CloseListener, CloseListeners
from core.logs import context_logger
from core.tasks import TaskOwner
from mediaserver.live.remote_candidates import RemoteIce
from mediaserver.workers.channel import RemoteError, WorkerGone
from mediaserver.workers.supervisor import WorkerPool

__all__ = ["WorkerSession"]


class WorkerSession:
    """A publisher's or viewer's session that lives in a worker: what admission, seats and
    the WHIP/WHEP resources use of a ``PeerSession`` (id, user, tasks, close, trickle)."""

    def __init__(self, pool: WorkerPool, room: Any, worker: int, session_id: str, role: str,
                 ice: Optional[dict]) -> None:
        self._pool = pool
        self.room = room  #: its ``WorkerRoom``
        self.worker = worker
        self.id = session_id
        self.role = role
        self.room_name = room.name
        self.created = time.monotonic()
        self.log = context_logger(f"stagepass.{role}", room.name, session_id[:8])
        self.log.extra["worker"] = worker  # type: ignore[index]
        self.tasks = TaskOwner(self.log)
        #: None for an RTMP encoder (no ICE, no WHIP resource)
        self.remote_ice = RemoteIce(ice["ufrag"], ice["pwd"], tuple(ice["mids"])) if ice else None
        self.codecs: dict[str, str] = {}
        self.first_media_seconds: Optional[float] = None
        self.nacked: dict[str, int] = {}
        self._user_id: Optional[int] = None
        self._relay = False
        #: a listener registered after the close runs on the node's room tasks
        self._listeners = CloseListeners(self.log, late=room.tasks)
        self._closed = False

    @property
    def user_id(self) -> Optional[int]:
        return self._user_id

    @user_id.setter
    def user_id(self, value: Optional[int]) -> None:
        self._user_id = value
        if value is not None:
            self.log.extra["user"] = value  # type: ignore[index]
            self.tasks.spawn(self._tell("admitted", user=value), name="admitted")

    @property
    def relay(self) -> bool:
        """Another node's edge pulling the room (a relay grant): not a viewer, no seat."""
        return self._relay

    @relay.setter
    def relay(self, value: bool) -> None:
        self._relay = value
        if value:  # the worker keeps it on the full rendition, as one process does
            self.tasks.spawn(self._tell("relay"), name="relay")

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def state(self) -> str:
        return "closed" if self._closed else "connected"

    @property
    def rendition(self) -> str:
        return self.room.renditions.get(self.id, "full")

    async def _tell(self, op: str, **args: Any) -> dict:
        try:
            return await self._pool.request(self.worker, op, room=self.room_name, session=self.id, **args)
        except (WorkerGone, RemoteError) as exc:
            self.log.info("%s: %s", op, exc)
            return {}

    def trickle(self, candidates: list[tuple[str, str]], end: bool) -> None:
        self.tasks.spawn(self._tell("trickle", candidates=candidates, end=end), name="trickle")

    async def quality(self) -> dict:
        quality = await self._tell("quality")
        if quality.get("first_media_seconds") is not None:
            self.first_media_seconds = quality["first_media_seconds"]
        quality.pop("first_media_seconds", None)
        return quality

    def octets_sent(self) -> dict[str, int]:
        return {}

    async def bytes_received(self) -> Optional[int]:
        return (await self._tell("bytes_received")).get("bytes")

    def on_close(self, listener: CloseListener) -> None:
        """Run ``listener`` once the session has closed; at once if it already has (a session
        can close in its worker before the request that made it returns: ``WorkerRooms.settle``)."""
        self._listeners.add(listener)

    def is_stale(self) -> bool:
        return self._closed

    async def close(self) -> None:
        """End the session in its worker; the session is forgotten here once it closed."""
        if not self._closed:
            await self._tell("close")
            await self.ended()

    async def ended(self) -> None:
        """The session ended in its worker (or the worker died): forget it, tell listeners."""
        if self._closed:
            return
        self._closed = True
        self.room.forget(self)
        await self.tasks.close()
        self.log.info("closed")
        await self._listeners.run()
