"""What danmaku share between processes and nodes: rate limits, slow mode, row ids.

Limits are decided from memory by the process that holds the sender's socket
(``LocalDanmakuCluster``: a token bucket per room and per user, and slow-mode stamps), with
no round trip per danmaku. They are kept shared through the ``RoomFeed``, which already
carries every accepted danmaku to every other process at once: with each batch of items
it carries their senders' ids, and each receiving process spends them from its own
buckets (``spent``; a bucket may go below zero, and refills at its rate). So a user with
sockets on two processes has one quota and the room one ceiling, up to what the other
processes accept in the time a feed message takes to arrive (a publish on the local bus or
Redis, a few milliseconds): the overshoot is at most the burst and the room's ceiling
accepted once more per other process in that window, never a sustained rate above the limits.

Row ids come from the cluster: in blocks of ``ID_BLOCK`` from the control plane's counter
over the node's local bus (``BusDanmakuIds``) or from a Redis counter that never falls
below the database's largest id (``RedisDanmakuIds``): one round trip per block.
"""

from __future__ import annotations

import time
from typing import Any, Iterable, Optional, Protocol

from core.cluster import Cluster

from .ratelimit import TokenBucket, UserBuckets

__all__ = ["BusDanmakuIds", "DanmakuCluster", "LocalDanmakuCluster", "Refusal", "RedisDanmakuIds", "danmaku_cluster"]

#: (code, milliseconds to wait) when a danmaku is refused by a limit
Refusal = tuple[str, int]

ID_BLOCK = 100


def danmaku_cluster(cluster: Cluster, user_rate: float, user_burst: int, room_rate: float) -> "DanmakuCluster":
    """Limits in this process's memory (shared through the ``RoomFeed``); row ids from Redis
    when the node's cluster is Redis, from the control plane over the local bus, or (one
    process) from the database's largest id."""
    limits = LocalDanmakuCluster(user_rate, user_burst, room_rate)
    redis = getattr(cluster, "redis", None)
    provide = getattr(cluster, "provide", None)
    if cluster.shared and redis is not None:
        limits.ids = RedisDanmakuIds(redis)
    elif cluster.shared and provide is not None:  # the node's local bus: one counter, in the control plane
        provide("danmaku", lambda: LocalDanmakuCluster(user_rate, user_burst, room_rate))
        limits.ids = BusDanmakuIds(cluster)
    return limits


class DanmakuIds(Protocol):
    async def next_id(self, floor: int) -> int:
        """A new danmaku row id, above ``floor`` (the database's largest id at start)."""


class DanmakuCluster(Protocol):
    async def take(self, room: str, user_id: int, slow_seconds: int) -> Optional[Refusal]:
        """Take one danmaku from the room's and the user's buckets (and the user's slow-mode
        interval when ``slow_seconds``); a refusal changes nothing."""

    def spent(self, room: str, user_ids: Iterable[int], slow: bool) -> None:
        """Danmaku another process accepted in ``room`` from ``user_ids`` (one per entry):
        spend them from this process's buckets too (and stamp slow mode when ``slow``)."""

    async def next_id(self, floor: int) -> int:
        """A new danmaku row id, above ``floor`` (the database's largest id at start)."""

    def forget(self, room: str, user_id: int) -> None:
        """The user's last socket in the room left (full buckets may be dropped)."""


class LocalDanmakuCluster:
    def __init__(self, user_rate: float, user_burst: int, room_rate: float) -> None:
        self._users = UserBuckets(user_rate, user_burst)
        self._room_rate = room_rate
        self._rooms: dict[str, TokenBucket] = {}
        self._last_post: dict[tuple[str, int], float] = {}
        self._last_id = 0
        #: where row ids come from when several processes number rows (else this process)
        self.ids: Optional[DanmakuIds] = None

    def _room(self, room: str) -> TokenBucket:
        bucket = self._rooms.get(room)
        if bucket is None:
            bucket = self._rooms[room] = TokenBucket(self._room_rate, max(1, int(self._room_rate)))
        return bucket

    async def take(self, room: str, user_id: int, slow_seconds: int) -> Optional[Refusal]:
        bucket = self._room(room)
        now = time.monotonic()
        if not bucket.allows(now):
            return "room_busy", int(1000 / self._room_rate)
        key = (room, user_id)
        if slow_seconds:
            last = self._last_post.get(key)
            if last is not None and now - last < slow_seconds:
                return "slow_mode", int((slow_seconds - (now - last)) * 1000)
        if not self._users.take(_Who(room, user_id)):
            return "rate_limited", int(1000 / self._users.rate)
        bucket.take(now)
        if slow_seconds:
            self._last_post[key] = now
        return None

    def spent(self, room: str, user_ids: Iterable[int], slow: bool) -> None:
        now = time.monotonic()
        bucket = self._room(room)
        for user_id in user_ids:
            bucket.spend(now)
            self._users.spend(_Who(room, user_id))
            if slow:
                self._last_post[(room, user_id)] = now

    def forget(self, room: str, user_id: int) -> None:
        self._users.forget(_Who(room, user_id))

    async def next_id(self, floor: int) -> int:
        if self.ids is not None:
            return await self.ids.next_id(floor)
        self._last_id = max(self._last_id, floor) + 1
        return self._last_id

    def next_block(self, floor: int, size: int) -> int:
        """Reserve ``size`` ids above ``floor`` for another process; the last of them."""
        self._last_id = max(self._last_id, floor) + size
        return self._last_id


class BusDanmakuIds:
    """Row ids in blocks from the control plane's ``LocalDanmakuCluster``, reached over the
    node's local bus (``core.cluster.linked``) from every interaction process of the node."""

    def __init__(self, cluster: Any) -> None:
        self._call = cluster.call
        self._ids: list[int] = []  # this process's block, next id last (one round trip per ``ID_BLOCK``)

    async def next_id(self, floor: int) -> int:
        if not self._ids:
            last = int(await self._call("danmaku", "next_block", floor, ID_BLOCK))
            self._ids = list(range(last, last - ID_BLOCK, -1))
        return self._ids.pop()


class _Who:
    __slots__ = ("room", "user_id")

    def __init__(self, room: str, user_id: int) -> None:
        self.room, self.user_id = room, user_id


_NEXT_BLOCK = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
return redis.call('INCRBY', KEYS[1], ARGV[2])
"""


class RedisDanmakuIds:
    """Row ids in blocks from a Redis counter that never falls below the database's largest id."""

    def __init__(self, redis: Any) -> None:
        self._next_block = redis.register_script(_NEXT_BLOCK)
        self._ids: list[int] = []  # this process's block, next id last

    async def next_id(self, floor: int) -> int:
        if not self._ids:
            last = int(await self._next_block(keys=["stagepass:danmaku:last_id"], args=[floor, ID_BLOCK]))
            self._ids = list(range(last, last - ID_BLOCK, -1))
        return self._ids.pop()
