"""``RedisCluster``: the cluster shared by every node through one Redis.

One ``redis.asyncio`` client (one connection pool) serves the whole process: commands
borrow a connection for their duration, and every pub/sub channel shares one more
(``SharedSubscriber``). Keys get the prefix (``stagepass:``); channels the prefix and the
database number (``stagepass:<db>:``), because Redis pub/sub is server-wide, not per
database: two deployments (or test runs) on different database numbers of one Redis never
hear each other. Operations that read and write together are Lua scripts, atomic on the
server.
"""

from __future__ import annotations

import re
from typing import Any, Optional

from redis.asyncio import BlockingConnectionPool, Redis

from .base import Cluster, MessageHandler, Subscription
from .redis_pubsub import SharedSubscriber

__all__ = ["RedisCluster"]

_ORDERED_ADD = """
local seq = redis.call('INCR', KEYS[2])
if ARGV[4] == '1' then
  redis.call('ZADD', KEYS[1], 'NX', seq, ARGV[1])
else
  redis.call('ZADD', KEYS[1], seq, ARGV[1])
end
local evicted = {}
if ARGV[2] ~= '' then
  local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[2])
  if over > 0 then
    evicted = redis.call('ZRANGE', KEYS[1], 0, over - 1)
    redis.call('ZREMRANGEBYRANK', KEYS[1], 0, over - 1)
  end
end
if ARGV[3] ~= '' then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
return evicted
"""
_ORDERED_POP_ALL = """
local all = redis.call('ZRANGE', KEYS[1], 0, -1)
redis.call('DEL', KEYS[1], KEYS[2])
return all
"""
_COMPARE_AND_SET = """
local current = redis.call('GET', KEYS[1])
if ARGV[1] == '0' then
  if current then return 0 end
elseif current ~= ARGV[2] then
  return 0
end
if ARGV[3] == '0' then
  redis.call('DEL', KEYS[1])
elseif ARGV[5] ~= '' then
  redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[5])
else
  redis.call('SET', KEYS[1], ARGV[4])
end
return 1
"""
_HASH_INCR = """
local value = redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
if value <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
elseif ARGV[3] ~= '' then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return value
"""


def _ms(ttl: Optional[float]) -> str:
    """A ttl as a script argument: milliseconds, or '' for none."""
    return "" if ttl is None else str(max(1, int(ttl * 1000)))


class RedisCluster(Cluster):
    kind = "redis"
    shared = True

    def __init__(self, redis: Redis, prefix: str = "stagepass") -> None:
        """``redis`` must decode responses (``decode_responses=True``); ``from_url`` makes one."""
        self.redis = redis
        self.prefix = f"{prefix}:" if prefix else ""
        db = redis.connection_pool.connection_kwargs.get("db", 0)
        self.channel_prefix = f"{self.prefix}{db}:"
        self._subscriber = SharedSubscriber(redis)
        self._ordered_add = redis.register_script(_ORDERED_ADD)
        self._ordered_pop_all = redis.register_script(_ORDERED_POP_ALL)
        self._compare_and_set = redis.register_script(_COMPARE_AND_SET)
        self._hash_incr = redis.register_script(_HASH_INCR)

    @classmethod
    def from_url(cls, url: str, prefix: str = "stagepass", **options: Any) -> "RedisCluster":
        """The process's one client (one pool). It connects on first use; a Redis that
        does not answer a connection in 5 s counts as down. The pool blocks (up to 5 s) when
        all its connections are busy instead of raising: redis-py's plain pool refuses the
        101st concurrent command, which a burst of disconnects reached."""
        options.setdefault("socket_connect_timeout", 5.0)
        pool = BlockingConnectionPool.from_url(url, decode_responses=True,
                                               max_connections=options.pop("max_connections", 100),
                                               timeout=options.pop("pool_timeout", 5.0), **options)
        return cls(Redis.from_pool(pool), prefix)

    def _k(self, key: str) -> str:
        return self.prefix + key

    # ------------------------------------------------------------ strings
    async def get(self, key: str) -> Optional[str]:
        return await self.redis.get(self._k(key))

    async def set(self, key: str, value: str, ttl: Optional[float] = None) -> None:
        await self.redis.set(self._k(key), value, px=int(_ms(ttl)) if ttl is not None else None)

    async def set_if_absent(self, key: str, value: str, ttl: Optional[float] = None) -> bool:
        return bool(await self.redis.set(self._k(key), value, nx=True,
                                         px=int(_ms(ttl)) if ttl is not None else None))

    async def compare_and_set(self, key: str, expected: Optional[str], value: Optional[str],
                              ttl: Optional[float] = None) -> bool:
        args = ["0" if expected is None else "1", expected or "", "0" if value is None else "1", value or "", _ms(ttl)]
        return bool(await self._compare_and_set(keys=[self._k(key)], args=args))

    async def delete(self, key: str) -> bool:
        return bool(await self.redis.delete(self._k(key)))

    async def expire(self, key: str, ttl: float) -> bool:
        return bool(await self.redis.pexpire(self._k(key), int(_ms(ttl))))

    async def keys(self, prefix: str) -> list[str]:
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", self._k(prefix)) + "*"
        cut = len(self.prefix)
        return [k[cut:] async for k in self.redis.scan_iter(match=pattern, count=500)]

    # ------------------------------------------------------------ counters and hashes
    async def incr(self, key: str, amount: int = 1, ttl: Optional[float] = None) -> int:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incrby(self._k(key), amount)
            if ttl is not None:
                pipe.pexpire(self._k(key), int(_ms(ttl)))
            results = await pipe.execute()
        return int(results[0])

    async def hash_incr(self, key: str, field: str, amount: int = 1, ttl: Optional[float] = None) -> int:
        return int(await self._hash_incr(keys=[self._k(key)], args=[field, amount, _ms(ttl)]))

    async def hash_get_all(self, key: str) -> dict[str, str]:
        return await self.redis.hgetall(self._k(key))

    # ------------------------------------------------------------ ordered sets
    async def ordered_add(self, key: str, member: str, limit: Optional[int] = None,
                          ttl: Optional[float] = None, keep_place: bool = False) -> list[str]:
        full = self._k(key)
        args = [member, "" if limit is None else limit, _ms(ttl), "1" if keep_place else "0"]
        return list(await self._ordered_add(keys=[full, full + ":seq"], args=args))

    async def ordered_remove(self, key: str, member: str) -> bool:
        return bool(await self.redis.zrem(self._k(key), member))

    async def ordered_members(self, key: str) -> list[str]:
        return list(await self.redis.zrange(self._k(key), 0, -1))

    async def ordered_pop_all(self, key: str) -> list[str]:
        full = self._k(key)
        return list(await self._ordered_pop_all(keys=[full, full + ":seq"]))

    # ------------------------------------------------------------ pub/sub
    async def publish(self, channel: str, message: str) -> None:
        await self.redis.publish(self.channel_prefix + channel, message)

    async def subscribe(self, channel: str, handler: MessageHandler) -> Subscription:
        return await self._subscriber.add(self.channel_prefix + channel, channel, handler)

    # ------------------------------------------------------------ lifecycle
    async def ping(self) -> None:
        await self.redis.ping()

    async def close(self) -> None:
        await self._subscriber.close()
        await self.redis.aclose()
