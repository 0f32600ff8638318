"""Seats: how many devices may use one ticket at once.

A seat is held by a session (a WHEP player, later a chat connection) under a key
``<room>:<user>``. Taking a seat beyond the limit evicts the oldest holders, and every
node hosting an evicted session hears about it (``on_evict(holder, reason)``) and ends it.
The reason is ``SEAT_TAKEN`` (a newer device) or the one given to ``evict_all``
(``REVOKED``: a refund). In-process by default; ``RedisSeats`` makes the limit hold across
nodes.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from typing import Awaitable, Callable, Optional, Protocol

from core.pubsub import PubSubListener

__all__ = ["LocalSeats", "REVOKED", "RedisSeats", "SEAT_TAKEN", "Seats"]

log = logging.getLogger("stagepass.seats")
#: (holder, reason)
EvictHandler = Callable[[str, str], Awaitable[None]]
SEAT_TAKEN = "seat_taken"
REVOKED = "revoked"


class Seats(Protocol):
    on_evict: Optional[EvictHandler]

    async def take(self, key: str, holder: str, limit: int) -> list[str]: ...

    async def release(self, key: str, holder: str) -> None: ...

    async def evict_all(self, key: str, reason: str = REVOKED) -> list[str]: ...

    async def close(self) -> None: ...


class LocalSeats:
    def __init__(self) -> None:
        self._seats: dict[str, OrderedDict[str, None]] = {}
        self.on_evict: Optional[EvictHandler] = None

    async def take(self, key: str, holder: str, limit: int) -> list[str]:
        seats = self._seats.setdefault(key, OrderedDict())
        seats[holder] = None
        evicted = []
        while len(seats) > limit:
            evicted.append(seats.popitem(last=False)[0])
        await self._notify(evicted, SEAT_TAKEN)
        return evicted

    async def release(self, key: str, holder: str) -> None:
        seats = self._seats.get(key)
        if seats is not None:
            seats.pop(holder, None)
            if not seats:
                del self._seats[key]

    async def evict_all(self, key: str, reason: str = REVOKED) -> list[str]:
        evicted = list(self._seats.pop(key, {}))
        await self._notify(evicted, reason)
        return evicted

    async def _notify(self, holders: list[str], reason: str) -> None:
        for holder in holders:
            if self.on_evict is not None:
                await self.on_evict(holder, reason)

    async def close(self) -> None:
        self._seats.clear()


_TAKE = """
local seq = redis.call('INCR', KEYS[2])
redis.call('ZADD', KEYS[1], seq, ARGV[1])
local n = redis.call('ZCARD', KEYS[1])
local over = n - tonumber(ARGV[2])
local evicted = {}
if over > 0 then
  evicted = redis.call('ZRANGE', KEYS[1], 0, over - 1)
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, over - 1)
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return evicted
"""
_EVICT_ALL = """
local all = redis.call('ZRANGE', KEYS[1], 0, -1)
redis.call('DEL', KEYS[1])
return all
"""


class RedisSeats:
    """Seats in a Redis sorted set per key; evictions broadcast on a pub/sub channel."""

    def __init__(self, redis, prefix: str = "stagepass", ttl: int = 86400) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl = ttl
        self.channel = f"{prefix}:seats:evicted"
        self.on_evict: Optional[EvictHandler] = None
        self._take = redis.register_script(_TAKE)
        self._evict_all = redis.register_script(_EVICT_ALL)
        self._listener = PubSubListener(redis, self.channel, self._evicted)

    async def start(self) -> None:
        await self._listener.start()

    async def _evicted(self, data: bytes | str) -> None:
        """A message ``{"holder", "reason"}`` (a bare holder from an older node: seat taken)."""
        text = data.decode() if isinstance(data, bytes) else data
        try:
            message = json.loads(text)
            holder, reason = str(message["holder"]), str(message.get("reason") or SEAT_TAKEN)
        except (ValueError, TypeError, KeyError):
            holder, reason = text, SEAT_TAKEN
        if self.on_evict is not None:
            await self.on_evict(holder, reason)

    async def _publish(self, holders: list[str], reason: str) -> None:
        for holder in holders:
            await self.redis.publish(self.channel, json.dumps({"holder": holder, "reason": reason}))

    def _key(self, key: str) -> str:
        return f"{self.prefix}:seats:{key}"

    async def take(self, key: str, holder: str, limit: int) -> list[str]:
        evicted = await self._take(keys=[self._key(key), self._key(key) + ":seq"], args=[holder, limit, self.ttl])
        evicted = [e.decode() if isinstance(e, bytes) else e for e in evicted]
        await self._publish(evicted, SEAT_TAKEN)
        return evicted

    async def release(self, key: str, holder: str) -> None:
        await self.redis.zrem(self._key(key), holder)

    async def evict_all(self, key: str, reason: str = REVOKED) -> list[str]:
        evicted = [e.decode() if isinstance(e, bytes) else e for e in await self._evict_all(keys=[self._key(key)])]
        await self._publish(evicted, reason)
        return evicted

    async def close(self) -> None:
        await self._listener.close()
