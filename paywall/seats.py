"""Seats: how many devices may use one ticket at once.

A seat is held by a session (a WHEP player, a chat connection) under a key
``<room>:<user>``. Taking a seat beyond the limit evicts the oldest holders, and every
node hosting an evicted session hears about it (``on_evict(holder, reason)``) and ends it.
The reason is ``SEAT_TAKEN`` (a newer device) or the one given to ``evict_all``
(``REVOKED``: a refund). The seats live in the ``Cluster``: in process on one node, in
Redis (an ordered set per key, evictions on a channel) across nodes.
"""

from __future__ import annotations

import json
import logging
from typing import Awaitable, Callable, Optional

from core.cluster import Cluster, LocalCluster, Subscription

__all__ = ["REVOKED", "SEAT_TAKEN", "Seats"]

log = logging.getLogger("stagepass.seats")
#: (holder, reason)
EvictHandler = Callable[[str, str], Awaitable[None]]
SEAT_TAKEN = "seat_taken"
REVOKED = "revoked"
CHANNEL = "seats:evicted"


class Seats:
    def __init__(self, cluster: Optional[Cluster] = None, ttl: float = 86400) -> None:
        self.cluster = cluster or LocalCluster()
        self.ttl = ttl
        self.on_evict: Optional[EvictHandler] = None
        self._subscription: Optional[Subscription] = None

    async def start(self) -> None:
        """Hear the evictions of every node (this one's included); idempotent, and done
        by the first ``take`` at the latest (a node without seats has nobody to end)."""
        if self._subscription is None:
            self._subscription = await self.cluster.subscribe(CHANNEL, self._evicted)

    async def _evicted(self, text: str) -> None:
        """A message ``{"holder", "reason"}`` (a bare holder from an older node: seat taken)."""
        try:
            message = json.loads(text)
            holder, reason = str(message["holder"]), str(message.get("reason") or SEAT_TAKEN)
        except (ValueError, TypeError, KeyError):
            holder, reason = text, SEAT_TAKEN
        if self.on_evict is not None:
            await self.on_evict(holder, reason)

    async def _publish(self, holders: list[str], reason: str) -> None:
        for holder in holders:
            await self.cluster.publish(CHANNEL, json.dumps({"holder": holder, "reason": reason}))

    @staticmethod
    def _key(key: str) -> str:
        return f"seats:{key}"

    async def take(self, key: str, holder: str, limit: int) -> list[str]:
        """Seat ``holder`` under ``key``; the oldest holders beyond ``limit`` are evicted
        (everywhere) and returned."""
        await self.start()
        evicted = await self.cluster.ordered_add(self._key(key), holder, limit=limit, ttl=self.ttl)
        await self._publish(evicted, SEAT_TAKEN)
        return evicted

    async def release(self, key: str, holder: str) -> None:
        await self.cluster.ordered_remove(self._key(key), holder)

    async def evict_all(self, key: str, reason: str = REVOKED) -> list[str]:
        await self.start()
        evicted = await self.cluster.ordered_pop_all(self._key(key))
        await self._publish(evicted, reason)
        return evicted

    async def close(self) -> None:
        if self._subscription is not None:
            await self._subscription.close()
            self._subscription = None
