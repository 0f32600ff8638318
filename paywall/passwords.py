"""``PasswordPool``: argon2 hashing and verification off the event loop.

argon2 costs about 0.2 s of CPU per hash by design; on the event loop that forwards media,
20 sign-ups froze every live viewer for seconds. Here each hash or check runs in a small
pool of low-priority threads (``core.cpu``; argon2-cffi releases the GIL), owned by
the paywall and shut down with it. The number of waiting jobs is bounded too: beyond
``max_waiting`` a request is refused at once with 503 ``busy`` instead of queueing minutes
of hashing behind it.
"""

from __future__ import annotations

import asyncio
from typing import Optional

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from core.cpu import background_executor

from core.access import Refusal

__all__ = ["PasswordPool"]


class PasswordPool:
    def __init__(self, workers: int = 1, max_waiting: int = 64, hasher: Optional[PasswordHasher] = None) -> None:
        self.hasher = hasher or PasswordHasher()
        self.max_waiting = max_waiting
        # the lowest priority: a hash may wait, a live frame may not (argon2's lane threads inherit it)
        self._executor = background_executor("argon2", workers, niceness=19)
        self._waiting = 0

    async def _run(self, fn, *args):
        if self._waiting >= self.max_waiting:
            raise Refusal(503, "busy", "too many sign-ups and logins at once; retry in a few seconds")
        self._waiting += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        finally:
            self._waiting -= 1

    async def hash(self, password: str) -> str:
        return await self._run(self.hasher.hash, password)

    async def verify(self, stored_hash: str, password: str) -> bool:
        return await self._run(self._verify, stored_hash, password)

    def _verify(self, stored_hash: str, password: str) -> bool:
        try:
            return self.hasher.verify(stored_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
