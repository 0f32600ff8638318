"""``Links``: the pipes between media workers, one per (room, relaying worker), from the
room's host worker (``pipe.py`` carries the packets; this keeps which exist)."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from typing import Any, Callable, Optional

from mediaserver.workers.channel import RemoteError, WorkerGone
from mediaserver.workers.supervisor import WorkerPool

__all__ = ["Links"]


@dataclass
class _Link:
    room: str
    source: int
    to: int


class Links:
    """The pipes between workers: one per (room, relaying worker), from the room's host."""

    def __init__(self, pool: WorkerPool, room: Callable[[str], Optional[Any]]) -> None:
        self._pool = pool
        self._room = room  #: the ``WorkerRoom`` of a name
        self._ids = itertools.count(1)
        self.by_channel: dict[int, _Link] = {}
        self.by_target: dict[tuple[str, int], int] = {}  # (room, worker) -> channel
        self._lock = asyncio.Lock()

    async def follow_host(self, room: Any) -> None:
        """The room has a (new) host: every worker with viewers of it relays from there."""
        for worker in sorted({s.worker for s in room.subscribers.values()}):
            await self.ensure(room, worker)

    async def ensure(self, room: Any, worker: int) -> None:
        """Worker ``worker`` relays ``room`` from its host, unless it is the host or does."""
        async with self._lock:
            host = room.host
            if host is None or host == worker or not room.viewers_on(worker):
                return
            channel = self.by_target.get((room.name, worker))
            if channel is not None and self.by_channel[channel].source == host:
                return
            pool = self._pool
            channel = next(self._ids)
            try:
                await pool.request(worker, "pipe_in", room=room.name, channel=channel, origin=host)
                self.by_channel[channel] = _Link(room.name, host, worker)
                self.by_target[(room.name, worker)] = channel
                await pool.request(host, "pipe_out", room=room.name, channel=channel, to=worker)
            except (WorkerGone, RemoteError) as exc:
                room.log.warning("piping worker %d -> %d failed: %s", host, worker, exc)
                return
            room.log.info("worker %d relays the room from worker %d (channel %d)", worker, host, channel)

    async def idle(self, worker: int, room_name: str, channel: int) -> None:
        """Worker ``worker`` let go of the relay on ``channel`` (its last viewer left, or a
        newer pipe replaced it): close the sending end; relay again if viewers came back."""
        async with self._lock:
            link = self.by_channel.pop(channel, None)
            if link is None:
                return
            if self.by_target.get((room_name, worker)) == channel:
                del self.by_target[(room_name, worker)]
            await self._stop(link.source, channel)
        room = self._room(room_name)
        if room is not None and room.viewers_on(worker):
            await self.ensure(room, worker)

    async def _stop(self, worker: int, channel: int) -> None:
        try:
            await self._pool.request(worker, "pipe_stop", channel=channel)
        except (WorkerGone, RemoteError):
            pass

    async def worker_gone(self, worker: int) -> None:
        """Drop every pipe from or to ``worker``; the other end is closed."""
        async with self._lock:
            for channel, link in list(self.by_channel.items()):
                if worker not in (link.source, link.to):
                    continue
                del self.by_channel[channel]
                if self.by_target.get((link.room, link.to)) == channel:
                    del self.by_target[(link.room, link.to)]
                await self._stop(link.to if link.source == worker else link.source, channel)
