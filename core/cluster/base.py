"""``Cluster``: the state and messages shared by every process of a deployment.

Like python-socketio's client managers or LiveKit's routers, one interface with an
in-process implementation (``LocalCluster``: one node, nothing leaves the process) and a
Redis one (``RedisCluster``: every node sees the same keys and channels). The features
(seats, likes, tips, presence, the interaction bus, the node registry) are written once
against these primitives; which implementation runs is decided once, in the assembly.

Keys and channels are plain strings (``RedisCluster`` puts its prefix in front); values
are strings. ``ttl`` is in seconds; ``None`` keeps a key until it is deleted.
"""

from __future__ import annotations

import abc
from typing import Awaitable, Callable, Optional

__all__ = ["Cluster", "MessageHandler", "Subscription"]

#: receives each message published on a channel (the text as published)
MessageHandler = Callable[[str], Awaitable[None]]


class Subscription(abc.ABC):
    """One handler's subscription to one channel; ``close`` ends it (idempotent)."""

    channel: str

    @abc.abstractmethod
    async def close(self) -> None: ...


class Cluster(abc.ABC):
    #: "local" or "redis": names the readiness check of a shared cluster
    kind: str = ""
    #: True when other processes see what this one writes (and hear what it publishes)
    shared: bool = False

    # ------------------------------------------------------------ strings
    @abc.abstractmethod
    async def get(self, key: str) -> Optional[str]:
        """The value of a string key, ``None`` when absent or expired."""

    @abc.abstractmethod
    async def set(self, key: str, value: str, ttl: Optional[float] = None) -> None: ...

    @abc.abstractmethod
    async def set_if_absent(self, key: str, value: str, ttl: Optional[float] = None) -> bool:
        """Store ``value`` only if ``key`` is absent; True if it was stored (a claim)."""

    @abc.abstractmethod
    async def compare_and_set(self, key: str, expected: Optional[str], value: Optional[str],
                              ttl: Optional[float] = None) -> bool:
        """Atomically: if ``key`` holds ``expected`` (``None``: absent), store ``value``
        (``None``: delete the key) with ``ttl``; True if it did."""

    @abc.abstractmethod
    async def delete(self, key: str) -> bool:
        """Remove a key of any type; True if it existed."""

    @abc.abstractmethod
    async def expire(self, key: str, ttl: float) -> bool:
        """Give an existing key a new time to live; False if there is no such key."""

    @abc.abstractmethod
    async def keys(self, prefix: str) -> list[str]:
        """Every live key starting with ``prefix``, in no particular order."""

    # ------------------------------------------------------------ counters
    @abc.abstractmethod
    async def incr(self, key: str, amount: int = 1, ttl: Optional[float] = None) -> int:
        """Add ``amount`` to an integer key (absent: 0) and return the new value; ``ttl``
        is set again on every call."""

    # ------------------------------------------------------------ hashes
    @abc.abstractmethod
    async def hash_incr(self, key: str, field: str, amount: int = 1, ttl: Optional[float] = None) -> int:
        """Add ``amount`` to one field of a hash and return it; a field that reaches 0 or
        less is removed (and the hash with its last field)."""

    @abc.abstractmethod
    async def hash_get_all(self, key: str) -> dict[str, str]: ...

    # ------------------------------------------------------------ ordered sets
    @abc.abstractmethod
    async def ordered_add(self, key: str, member: str, limit: Optional[int] = None,
                          ttl: Optional[float] = None, keep_place: bool = False) -> list[str]:
        """Add ``member`` as the newest of a set kept in arrival order (a member already
        there moves to the newest place, or keeps its place with ``keep_place``); with
        ``limit``, the oldest members beyond it are removed and returned, oldest first."""

    @abc.abstractmethod
    async def ordered_remove(self, key: str, member: str) -> bool: ...

    @abc.abstractmethod
    async def ordered_members(self, key: str) -> list[str]:
        """The members, oldest first."""

    @abc.abstractmethod
    async def ordered_pop_all(self, key: str) -> list[str]:
        """Remove the whole set atomically and return its members, oldest first."""

    # ------------------------------------------------------------ pub/sub
    @abc.abstractmethod
    async def publish(self, channel: str, message: str) -> None:
        """Send ``message`` to every subscriber of ``channel`` on every node, this one
        included."""

    @abc.abstractmethod
    async def subscribe(self, channel: str, handler: MessageHandler) -> Subscription:
        """Call ``handler`` with every message published on ``channel`` from now on
        (nothing published after this returns is missed). A failing handler is logged."""

    # ------------------------------------------------------------ lifecycle
    @abc.abstractmethod
    async def ping(self) -> None:
        """Raise if the shared store cannot be reached."""

    @abc.abstractmethod
    async def close(self) -> None:
        """End every subscription and give back the connections."""
