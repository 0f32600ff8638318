"""What danmaku share between processes and nodes: rate limits, slow mode, row ids. All of
danmaku's own Redis use lives here (two Lua scripts on the cluster's Redis client), so it
can move behind the cluster seam (``Cluster``) as a token-bucket primitive.

``LocalDanmakuCluster`` (one process, no Redis) keeps token buckets and slow-mode stamps in
memory and numbers rows from the database's largest id. ``RedisDanmakuCluster`` keeps the
same buckets in Redis, taken atomically by one Lua script on Redis's clock (one round trip
per danmaku), so a user with sockets on two processes has one quota and the room one
ceiling; row ids come in blocks from a Redis counter that never falls below the
database's largest id.
"""

from __future__ import annotations

import time
from typing import Any, Optional, Protocol

from core.cluster import Cluster

from .ratelimit import TokenBucket, UserBuckets

__all__ = ["BusDanmakuCluster", "DanmakuCluster", "LocalDanmakuCluster", "Refusal", "RedisDanmakuCluster", "danmaku_cluster"]

#: (code, milliseconds to wait) when a danmaku is refused by a limit
Refusal = tuple[str, int]

ID_BLOCK = 100


def danmaku_cluster(cluster: Cluster, user_rate: float, user_burst: int, room_rate: float) -> "DanmakuCluster":
    """Redis-backed when the node's cluster is Redis, this process's memory otherwise."""
    redis = getattr(cluster, "redis", None)
    if cluster.shared and redis is not None:
        return RedisDanmakuCluster(redis, user_rate, user_burst, room_rate)
    provide = getattr(cluster, "provide", None)
    if cluster.shared and provide is not None:  # the node's local bus: one set of buckets, in the control plane
        provide("danmaku", lambda: LocalDanmakuCluster(user_rate, user_burst, room_rate))
        return BusDanmakuCluster(cluster)
    return LocalDanmakuCluster(user_rate, user_burst, room_rate)


class DanmakuCluster(Protocol):
    async def take(self, room: str, user_id: int, slow_seconds: int) -> Optional[Refusal]:
        """Take one danmaku from the room's and the user's buckets (and the user's slow-mode
        interval when ``slow_seconds``); a refusal changes nothing."""

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

    async def take(self, room: str, user_id: int, slow_seconds: int) -> Optional[Refusal]:
        bucket = self._rooms.get(room)
        if bucket is None:
            bucket = self._rooms[room] = TokenBucket(self._room_rate, max(1, int(self._room_rate)))
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

    def forget(self, room: str, user_id: int) -> None:
        self._users.forget(_Who(room, user_id))

    async def next_id(self, floor: int) -> int:
        self._last_id = max(self._last_id, floor) + 1
        return self._last_id

    def next_block(self, floor: int, size: int) -> int:
        """Reserve ``size`` ids above ``floor`` for another process; the last of them."""
        self._last_id = max(self._last_id, floor) + size
        return self._last_id


class BusDanmakuCluster:
    """The control plane's ``LocalDanmakuCluster``, reached over the node's local bus
    (``core.cluster.linked``) from every interaction process of the node."""

    def __init__(self, cluster: Any) -> None:
        self._call = cluster.call
        self._ids: list[int] = []  # this process's block, next id last (one round trip per ``ID_BLOCK``)

    async def take(self, room: str, user_id: int, slow_seconds: int) -> Optional[Refusal]:
        refusal = await self._call("danmaku", "take", room, user_id, slow_seconds)
        return None if refusal is None else (str(refusal[0]), int(refusal[1]))

    def forget(self, room: str, user_id: int) -> None:
        """Nothing: the user may still have a socket on another process."""

    async def next_id(self, floor: int) -> int:
        if not self._ids:
            last = int(await self._call("danmaku", "next_block", floor, ID_BLOCK))
            self._ids = list(range(last, last - ID_BLOCK, -1))
        return self._ids.pop()


class _Who:
    __slots__ = ("room", "user_id")

    def __init__(self, room: str, user_id: int) -> None:
        self.room, self.user_id = room, user_id


# Buckets are hashes {tokens, stamp}; the clock is Redis's own (TIME), so every process agrees.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function level(key, rate, burst)
  local v = redis.call('HMGET', key, 'tokens', 'stamp')
  local tokens, stamp = tonumber(v[1]), tonumber(v[2])
  if tokens == nil or stamp == nil then return burst end
  return math.min(burst, tokens + math.max(0, now - stamp) * rate / 1000)
end
local user_rate, user_burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local room_rate, room_burst = tonumber(ARGV[3]), tonumber(ARGV[4])
local slow_ms = tonumber(ARGV[5])
local room = level(KEYS[2], room_rate, room_burst)
if room < 1 then return {'room_busy', math.ceil((1 - room) * 1000 / room_rate)} end
if slow_ms > 0 then
  local left = redis.call('PTTL', KEYS[3])
  if left > 0 then return {'slow_mode', left} end
end
local user = level(KEYS[1], user_rate, user_burst)
if user < 1 then return {'rate_limited', math.ceil((1 - user) * 1000 / user_rate)} end
redis.call('HSET', KEYS[1], 'tokens', user - 1, 'stamp', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(user_burst * 1000 / user_rate) + 1000)
redis.call('HSET', KEYS[2], 'tokens', room - 1, 'stamp', now)
redis.call('PEXPIRE', KEYS[2], math.ceil(room_burst * 1000 / room_rate) + 1000)
if slow_ms > 0 then redis.call('SET', KEYS[3], 1, 'PX', slow_ms) end
return {'ok', 0}
"""

_NEXT_BLOCK = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
return redis.call('INCRBY', KEYS[1], ARGV[2])
"""


class RedisDanmakuCluster:
    def __init__(self, redis: Any, user_rate: float, user_burst: int, room_rate: float) -> None:
        self._redis = redis
        self._args = (user_rate, user_burst, room_rate, max(1, int(room_rate)))
        self._take = redis.register_script(_TAKE)
        self._next_block = redis.register_script(_NEXT_BLOCK)
        self._ids: list[int] = []  # this process's block, next id last

    async def take(self, room: str, user_id: int, slow_seconds: int) -> Optional[Refusal]:
        keys = [f"stagepass:danmaku:bucket:{room}:{user_id}", f"stagepass:danmaku:room:{room}",
                f"stagepass:danmaku:slow:{room}:{user_id}"]
        code, wait = await self._take(keys=keys, args=[*self._args, slow_seconds * 1000])
        code = code.decode() if isinstance(code, bytes) else code
        return None if code == "ok" else (code, int(wait))

    def forget(self, room: str, user_id: int) -> None:
        """Nothing to do: Redis expires full buckets by itself."""

    async def next_id(self, floor: int) -> int:
        if not self._ids:
            last = int(await self._next_block(keys=["stagepass:danmaku:last_id"], args=[floor, ID_BLOCK]))
            self._ids = list(range(last, last - ID_BLOCK, -1))
        return self._ids.pop()
