"""``PasswordPool``: argon2 hashing and verification off the event loop.

argon2 costs about 0.2 s of CPU per hash by design; on the event loop that forwards media,
20 sign-ups froze every live viewer for seconds. Here each hash or check runs in a small
pool of low-priority threads (``core.cpu``; argon2-cffi releases the GIL), owned by
the paywall and shut down with it. The number of waiting jobs is bounded too: beyond
``max_waiting`` a request is refused at once with 503 ``busy`` instead of queueing minutes
of hashing behind it.

``weak_cost_warning`` says when the configured cost is below OWASP's recommendation for
argon2id (the Password Storage Cheat Sheet's equivalent pairs: 46 MiB with 1 pass, 19 MiB
with 2, 12 MiB with 3, 9 MiB with 4, 7 MiB with 5 or more). Such a cost is not refused: the
test suite hashes at the cheapest cost on purpose; a server is told at start-up.
"""

from __future__ import annotations

import asyncio
from typing import Optional

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from core.cpu import background_executor

from core.access import Refusal

__all__ = ["PasswordPool", "OWASP_ARGON2ID", "weak_cost_warning"]

#: OWASP's argon2id minimums: (time cost, memory KiB) pairs of equal strength, one parallel lane
OWASP_ARGON2ID = ((1, 47104), (2, 19456), (3, 12288), (4, 9216), (5, 7168))


def weak_cost_warning(time_cost: int, memory_kib: int) -> Optional[str]:
    """None when ``time_cost`` passes over ``memory_kib`` KiB meet one of OWASP's pairs (as
    many passes or more, as much memory or more), else the warning that names the settings."""
    if any(time_cost >= passes and memory_kib >= least for passes, least in OWASP_ARGON2ID):
        return None
    pairs = ", ".join(f"{least // 1024} MiB with {passes}" for passes, least in OWASP_ARGON2ID)
    return (f"WEAK PASSWORD HASHES: STAGEPASS_ARGON2_TIME_COST={time_cost} with STAGEPASS_ARGON2_MEMORY_KIB="
            f"{memory_kib} is below OWASP's recommendation for argon2id (memory with time cost: {pairs} or more "
            f"passes); a leaked database's passwords are cheap to guess. The defaults (3 passes, 65536 KiB) meet it")


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
