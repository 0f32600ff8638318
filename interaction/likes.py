"""Likes: clients send counts, the server broadcasts room totals a few times a second.

A client sends ``like {count}`` (1-50 likes in one event: a page collects taps for a
moment and sends them together). Each user may add at most ``user_rate`` likes a second
(50, with a burst of 50); more is refused with ``rate_limited`` and counts nothing.
The room gets ``likes {total, recent}`` at most every ``interval`` (250 ms) while likes
arrive -- never one frame per like. ``total`` counts the likes of the current broadcast
(it starts again at 0 when a new broadcast starts); ``recent`` is how many arrived since
this node's previous frame (for the page's animation). A joining socket gets the
current total.

The total is a counter of the ``Cluster`` (expiring after two days): in memory on one
node (a restart forgets it); with Redis, shared by every node, and every frame carries
the cluster total read when it is sent. ``recent`` stays per node: with several nodes
every node sends its own frames (the Socket.IO manager delivers them to every client), so
pages should show the largest ``total`` they have seen.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from core.cluster import Cluster

from core.access import Refusal

from .ratelimit import UserBuckets
from .throttle import Throttle
from .server import Client, InteractionServer

__all__ = ["LikeService"]

log = logging.getLogger("stagepass.interaction")

MAX_PER_EVENT = 50
TOTAL_TTL = 2 * 86400


@dataclass
class _Tally:
    broadcast: str
    total: int = 0
    recent: int = 0


def _count(data: Any) -> int:
    if not isinstance(data, dict):
        raise Refusal(400, "invalid_payload", "send {count}")
    count = data.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_PER_EVENT:
        raise Refusal(400, "invalid_count", f"count: an integer from 1 to {MAX_PER_EVENT}")
    return count


class LikeService:
    def __init__(self, server: InteractionServer, cluster: Cluster,
                 user_rate: float = 50.0, user_burst: int = 50, interval: float = 0.25) -> None:
        if user_burst < MAX_PER_EVENT:
            raise ValueError(f"user_burst must allow a full event ({MAX_PER_EVENT})")
        self.server = server
        self.cluster = cluster
        self.buckets = UserBuckets(user_rate, user_burst)
        self._tallies: dict[str, _Tally] = {}  # room -> likes of its current broadcast
        self.throttle = Throttle(self._flush, server.tasks, interval, "likes")
        server.on("like", self.like)
        server.on_connect(self._send_total)
        server.on_disconnect(self._left)

    @staticmethod
    def _key(room: str, broadcast: str) -> str:
        return f"likes:{room}:{broadcast or 'offair'}"

    def _tally(self, room: str, broadcast: str) -> _Tally:
        tally = self._tallies.get(room)
        if tally is None or tally.broadcast != broadcast:
            tally = self._tallies[room] = _Tally(broadcast)
        return tally

    async def like(self, client: Client, data: Any) -> dict:
        count = _count(data)
        if not self.buckets.take(client, count):
            raise Refusal(429, "rate_limited", "too many likes; slow down")
        broadcast, _ = self.server.t_ms(client.room)
        cluster_total = await self.cluster.incr(self._key(client.room, broadcast), count, ttl=TOTAL_TTL)
        tally = self._tally(client.room, broadcast)
        tally.total = max(tally.total, cluster_total)
        tally.recent += count
        self.throttle.mark(client.room)
        return {"total": tally.total}

    async def total(self, room: str) -> int:
        """Likes of the room's current broadcast in the cluster (what this node counted
        while the shared store is unreachable)."""
        broadcast, _ = self.server.t_ms(room)
        tally = self._tallies.get(room)
        local = tally.total if tally is not None and tally.broadcast == broadcast else 0
        try:
            return max(local, int(await self.cluster.get(self._key(room, broadcast)) or 0))
        except Exception:  # Redis trouble: show what this node knows
            log.warning("reading the like total of %s from the cluster failed", room, exc_info=True)
            return local

    async def _flush(self, room: str) -> None:
        tally = self._tallies.get(room)
        if tally is None:
            return
        recent, tally.recent = tally.recent, 0
        total = await self.total(room)
        await self.server.emit_room(room, "likes", {"total": total, "recent": recent})

    async def _send_total(self, client: Client) -> None:
        try:
            total = await self.total(client.room)
        except Exception:
            log.exception("like total for a joining socket in %s", client.room)
            return
        if total:
            await self.server.sio.emit("likes", {"total": total, "recent": 0}, to=client.sid)

    async def _left(self, client: Client) -> None:
        self.buckets.forget(client)
