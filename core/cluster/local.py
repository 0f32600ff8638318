"""``LocalCluster``: the cluster of a single process, kept in memory.

Values expire like Redis keys (checked on access, and swept once a minute so keys
nobody reads again do not pile up). ``publish`` calls the channel's handlers before it
returns, in subscription order.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Optional

from .base import Cluster, MessageHandler, Subscription

__all__ = ["LocalCluster"]

log = logging.getLogger("stagepass.cluster")
SWEEP_SECONDS = 60.0


@dataclass
class _Entry:
    value: Any  # str, int, dict[str, int] (hash) or OrderedDict[str, None] (ordered set)
    expires: Optional[float] = None  # monotonic


class _LocalSubscription(Subscription):
    def __init__(self, cluster: "LocalCluster", channel: str, handler: MessageHandler) -> None:
        self.channel = channel
        self.handler = handler
        self._cluster = cluster

    async def close(self) -> None:
        handlers = self._cluster._channels.get(self.channel, [])
        if self in handlers:
            handlers.remove(self)


class LocalCluster(Cluster):
    kind = "local"
    shared = False

    def __init__(self) -> None:
        self._data: dict[str, _Entry] = {}
        self._channels: dict[str, list[_LocalSubscription]] = {}
        self._next_sweep = time.monotonic() + SWEEP_SECONDS

    # ------------------------------------------------------------ storage
    def _entry(self, key: str, kind: Any) -> Optional[_Entry]:
        """The live entry of ``key`` (``None``: absent or expired); ``kind``: the type (or
        tuple of types) it must hold, as Redis refuses a command on a key of another type."""
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry.expires is not None and entry.expires <= time.monotonic():
            del self._data[key]
            return None
        if not isinstance(entry.value, kind):
            raise TypeError(f"{key!r} holds a {type(entry.value).__name__}, not what this command reads")
        return entry

    def _store(self, key: str, value: Any, ttl: Optional[float]) -> _Entry:
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + SWEEP_SECONDS
            for k in [k for k, e in self._data.items() if e.expires is not None and e.expires <= now]:
                del self._data[k]
        entry = self._data[key] = _Entry(value, now + ttl if ttl is not None else None)
        return entry

    def _touch(self, entry: _Entry, ttl: Optional[float]) -> None:
        if ttl is not None:
            entry.expires = time.monotonic() + ttl

    # ------------------------------------------------------------ strings
    async def get(self, key: str) -> Optional[str]:
        entry = self._entry(key, object)
        if entry is None:
            return None
        if not isinstance(entry.value, (str, int)):
            raise TypeError(f"{key!r} holds a {type(entry.value).__name__}, not a string")
        return str(entry.value)

    async def set(self, key: str, value: str, ttl: Optional[float] = None) -> None:
        self._store(key, value, ttl)

    async def set_if_absent(self, key: str, value: str, ttl: Optional[float] = None) -> bool:
        if self._entry(key, object) is not None:
            return False
        self._store(key, value, ttl)
        return True

    async def compare_and_set(self, key: str, expected: Optional[str], value: Optional[str],
                              ttl: Optional[float] = None) -> bool:
        if await self.get(key) != expected:
            return False
        if value is None:
            self._data.pop(key, None)
        else:
            self._store(key, value, ttl)
        return True

    async def delete(self, key: str) -> bool:
        existed = self._entry(key, object) is not None
        self._data.pop(key, None)
        return existed

    async def expire(self, key: str, ttl: float) -> bool:
        entry = self._entry(key, object)
        if entry is None:
            return False
        self._touch(entry, ttl)
        return True

    async def keys(self, prefix: str) -> list[str]:
        return [k for k in list(self._data) if k.startswith(prefix) and self._entry(k, object) is not None]

    # ------------------------------------------------------------ counters and hashes
    async def incr(self, key: str, amount: int = 1, ttl: Optional[float] = None) -> int:
        entry = self._entry(key, (int, str))
        value = int(entry.value) + amount if entry is not None else amount
        if entry is None:
            entry = self._store(key, value, ttl)
        else:
            entry.value = value
            self._touch(entry, ttl)
        return value

    async def hash_incr(self, key: str, field: str, amount: int = 1, ttl: Optional[float] = None) -> int:
        entry = self._entry(key, dict) or self._store(key, {}, ttl)
        value = entry.value.get(field, 0) + amount
        if value > 0:
            entry.value[field] = value
        else:
            entry.value.pop(field, None)
        if not entry.value:
            del self._data[key]
        else:
            self._touch(entry, ttl)
        return value

    async def hash_get_all(self, key: str) -> dict[str, str]:
        entry = self._entry(key, dict)
        return {f: str(v) for f, v in entry.value.items()} if entry is not None else {}

    # ------------------------------------------------------------ ordered sets
    async def ordered_add(self, key: str, member: str, limit: Optional[int] = None,
                          ttl: Optional[float] = None, keep_place: bool = False) -> list[str]:
        entry = self._entry(key, OrderedDict) or self._store(key, OrderedDict(), ttl)
        members: OrderedDict[str, None] = entry.value
        if member in members and not keep_place:
            members.move_to_end(member)
        members.setdefault(member, None)
        evicted = []
        while limit is not None and len(members) > limit:
            evicted.append(members.popitem(last=False)[0])
        if not members:
            del self._data[key]
        else:
            self._touch(entry, ttl)
        return evicted

    async def ordered_remove(self, key: str, member: str) -> bool:
        entry = self._entry(key, OrderedDict)
        if entry is None or member not in entry.value:
            return False
        del entry.value[member]
        if not entry.value:
            del self._data[key]
        return True

    async def ordered_members(self, key: str) -> list[str]:
        entry = self._entry(key, OrderedDict)
        return list(entry.value) if entry is not None else []

    async def ordered_pop_all(self, key: str) -> list[str]:
        members = await self.ordered_members(key)
        self._data.pop(key, None)
        return members

    # ------------------------------------------------------------ pub/sub
    async def publish(self, channel: str, message: str) -> None:
        for subscription in list(self._channels.get(channel, ())):
            try:
                await subscription.handler(message)
            except Exception:
                log.exception("handling a message on %s failed", channel)

    async def subscribe(self, channel: str, handler: MessageHandler) -> Subscription:
        subscription = _LocalSubscription(self, channel, handler)
        self._channels.setdefault(channel, []).append(subscription)
        return subscription

    # ------------------------------------------------------------ lifecycle
    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._channels.clear()
        self._data.clear()
