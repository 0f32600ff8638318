"""Readiness checks: can this process serve? (``GET /readyz``)

Each check answers within ``timeout`` seconds with ``(ok, detail)``; ``Readiness.run``
runs them concurrently and reports every one, so a load balancer's 503 names the
dependency that is down (the database, Redis, the data directory, the replay store).
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Optional

from core.cluster import Cluster

__all__ = ["Readiness", "cluster_check", "database_check", "data_dir_check", "storage_check"]

Check = Callable[[], Awaitable[Optional[str]]]  # None when fine, else what is wrong


class Readiness:
    def __init__(self, timeout: float = 2.0) -> None:
        self.timeout = timeout
        self._checks: dict[str, Check] = {}

    def add(self, name: str, check: Check) -> None:
        self._checks[name] = check

    async def run(self) -> dict[str, dict[str, Any]]:
        """``{name: {"ok": bool, "ms": float, "error"?: str}}`` for every check."""
        names = list(self._checks)
        results = await asyncio.gather(*(self._one(self._checks[n]) for n in names))
        return dict(zip(names, results))

    async def _one(self, check: Check) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            error = await asyncio.wait_for(check(), self.timeout)
        except asyncio.TimeoutError:
            error = f"no answer within {self.timeout:g} s"
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        result: dict[str, Any] = {"ok": error is None, "ms": round((time.perf_counter() - started) * 1000, 1)}
        if error is not None:
            result["error"] = error
        return result


def database_check(engine: Any) -> Check:
    """``SELECT 1`` on the paywall's SQLAlchemy async engine."""
    from sqlalchemy import text

    async def check() -> Optional[str]:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return None

    return check


def cluster_check(cluster: Cluster) -> Check:
    """``PING`` through the process's shared cluster (its one Redis pool), so the check
    sees what the seats, chat and likes see."""

    async def check() -> Optional[str]:
        await cluster.ping()
        return None

    return check


def data_dir_check(data_dir: Path) -> Check:
    """The data directory (recordings, replays) exists, or can be made as the recorder
    would, and is writable."""

    async def check() -> Optional[str]:
        try:
            await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
        except OSError as exc:
            return f"{data_dir}: {exc.strerror or exc}"
        if not os.access(data_dir, os.W_OK):
            return f"{data_dir} is not writable"
        return None

    return check


def storage_check(storage: Any) -> Check:
    """The replay store answers (``Storage.check``: for S3 the bucket exists and lists)."""

    async def check() -> Optional[str]:
        await storage.check()
        return None

    return check
