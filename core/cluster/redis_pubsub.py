"""``SharedSubscriber``: every channel a process listens to, on one Redis connection.

redis-py's ``pubsub.listen()`` ends with ``ConnectionError`` when the connection drops;
a bare ``async for`` then stops for good and the node silently stops hearing the
cluster (seat evictions, bans). The subscriber logs, backs off, subscribes again to every
channel and goes on until it is closed. A channel stays subscribed in Redis until the
subscriber closes (a process listens to a few fixed channels); a closed ``Subscription``
only stops its handler.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Optional

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .base import MessageHandler, Subscription

__all__ = ["SharedSubscriber"]

log = logging.getLogger("stagepass.cluster")
SUBSCRIBE_TIMEOUT = 5.0


class _RedisSubscription(Subscription):
    def __init__(self, subscriber: "SharedSubscriber", channel: str, handler: MessageHandler) -> None:
        self.channel = channel  # as given (without the cluster's prefix)
        self.handler = handler
        self._subscriber = subscriber

    async def close(self) -> None:
        self._subscriber.remove(self)


class SharedSubscriber:
    def __init__(self, redis: Any, max_backoff: float = 5.0) -> None:
        self._redis = redis
        self._max_backoff = max_backoff
        self._handlers: dict[str, list[_RedisSubscription]] = {}  # full channel name -> handlers
        self._confirmed: dict[str, asyncio.Event] = {}
        self._pubsub: Any = None
        self._task: Optional[asyncio.Task] = None
        self._lock = asyncio.Lock()

    async def add(self, full_channel: str, channel: str, handler: MessageHandler) -> Subscription:
        """Subscribe ``handler``; returns once Redis confirmed the channel's subscription."""
        subscription = _RedisSubscription(self, channel, handler)
        async with self._lock:
            if full_channel in self._handlers:
                self._handlers[full_channel].append(subscription)
                return subscription
            confirmed = self._confirmed[full_channel] = asyncio.Event()
            if self._pubsub is None:
                self._pubsub = self._redis.pubsub()
            await self._pubsub.subscribe(full_channel)
            self._handlers[full_channel] = [subscription]
            if self._task is None:
                self._task = asyncio.create_task(self._run(), name="cluster-pubsub")
            await asyncio.wait_for(confirmed.wait(), SUBSCRIBE_TIMEOUT)
        return subscription

    def remove(self, subscription: _RedisSubscription) -> None:
        for handlers in self._handlers.values():
            if subscription in handlers:
                handlers.remove(subscription)

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            try:
                async for message in self._pubsub.listen():
                    backoff = 0.1
                    await self._dispatch(message)
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                log.warning("lost the Redis subscription to %s (%s); subscribing again",
                            ", ".join(self._handlers), exc)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._max_backoff)
            try:
                await self._resubscribe()
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                log.warning("subscribing again to %s failed (%s)", ", ".join(self._handlers), exc)

    async def _dispatch(self, message: dict) -> None:
        channel = message.get("channel")
        channel = channel.decode() if isinstance(channel, bytes) else channel
        if message.get("type") == "subscribe":
            event = self._confirmed.get(channel)
            if event is not None:
                event.set()
            return
        if message.get("type") != "message":
            return
        data = message["data"]
        data = data.decode() if isinstance(data, bytes) else data
        for subscription in list(self._handlers.get(channel, ())):
            try:
                await subscription.handler(data)
            except Exception:
                log.exception("handling a message on %s failed", channel)

    async def _resubscribe(self) -> None:
        async with self._lock:
            if self._pubsub is not None:
                await self._pubsub.aclose()
            self._pubsub = self._redis.pubsub()
            if self._handlers:
                await self._pubsub.subscribe(*self._handlers)

    @property
    def connection(self) -> Any:
        """The pub/sub connection (tests cut it), ``None`` before the first subscription."""
        return self._pubsub.connection if self._pubsub is not None else None

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._pubsub is not None:
            await self._pubsub.aclose()
            self._pubsub = None
        self._handlers.clear()
