"""Rate limits: ``TokenBucket`` (``rate`` tokens a second, at most ``burst`` saved up) and
``UserBuckets`` (one bucket per user of a room, forgotten once full again)."""

from __future__ import annotations

import time
from typing import Any

__all__ = ["TokenBucket", "UserBuckets"]


class TokenBucket:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp: float | None = None

    def _refill(self, now: float) -> None:
        if self.stamp is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def allows(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= 1

    def take(self, now: float, n: int = 1) -> bool:
        """Take ``n`` tokens if there are that many; False changes nothing."""
        self._refill(now)
        if self.tokens < n:
            return False
        self.tokens -= n
        return True

    def spend(self, now: float, n: int = 1) -> None:
        """Take ``n`` tokens spent elsewhere (another process), even below zero: the
        bucket refuses until it has refilled past them (never below ``-burst``)."""
        self._refill(now)
        self.tokens = max(-self.burst, self.tokens - n)


class UserBuckets:
    """One ``TokenBucket`` per (room, user), shared by that user's sockets in the room.

    A full bucket is the same as no bucket, so full ones are forgotten (on disconnect,
    and in a sweep when there are many): the dict holds only recently active users.
    """

    SWEEP_AT = 10_000

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[tuple[str, int], TokenBucket] = {}

    def take(self, client: Any, n: int = 1) -> bool:
        """Take ``n`` tokens (n <= burst) if there are that many; False changes nothing."""
        now = time.monotonic()
        return self._bucket(client, now).take(now, n)

    def spend(self, client: Any, n: int = 1) -> None:
        """Spend ``n`` tokens the user used on another process (``TokenBucket.spend``)."""
        now = time.monotonic()
        self._bucket(client, now).spend(now, n)

    def _bucket(self, client: Any, now: float) -> TokenBucket:
        """The user's bucket in the client's room, a full one if it had none."""
        key = (client.room, client.user_id)
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.SWEEP_AT:
                self._sweep(now)
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst)
        return bucket

    def forget(self, client: Any) -> None:
        """Drop the user's bucket if it is full again (on disconnect)."""
        key = (client.room, client.user_id)
        bucket = self._buckets.get(key)
        if bucket is not None and bucket.allows(time.monotonic()) and bucket.tokens >= bucket.burst:
            del self._buckets[key]

    def _sweep(self, now: float) -> None:
        for key, bucket in list(self._buckets.items()):
            if bucket.allows(now) and bucket.tokens >= bucket.burst:
                del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)
