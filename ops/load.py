"""A node's load as its registry entry and the admin view carry it: CPU, event loop lag,
live rooms, publishers and viewers.

``NodeLoad.read`` is the ``NodeRegistry``'s ``load`` source, called at every heartbeat, so
every node of a cluster sees every other node's load in the registry (``GET
/api/admin/nodes``) without asking it over HTTP.
"""

from __future__ import annotations

import resource
import time
from typing import Optional

from mediaserver.live.room import RoomRegistry

from .metrics import LoopLagSampler, on_air

__all__ = ["CpuMeter", "NodeLoad"]


class CpuMeter:
    """This process's CPU time as a % of one core, between two readings (``None`` for the
    first, or when the readings are under ``min_interval`` seconds apart)."""

    def __init__(self, min_interval: float = 0.2) -> None:
        self.min_interval = min_interval
        self._last: Optional[tuple[float, float]] = None  # (monotonic time, CPU seconds)

    def rate(self) -> Optional[float]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        now, cpu = time.monotonic(), usage.ru_utime + usage.ru_stime
        previous = self._last
        if previous is not None and now - previous[0] < self.min_interval:
            return None  # too close to say; keep the older reading for the next call
        self._last = (now, cpu)
        if previous is None:
            return None
        return round((cpu - previous[1]) / (now - previous[0]) * 100, 1)


class NodeLoad:
    """What this node carries now: ``{cpu_pct, event_loop_lag_ms, rooms_live, publishers,
    viewers}`` (``cpu_pct`` since the previous read, ``None`` at the first)."""

    def __init__(self, rooms: RoomRegistry, lag: LoopLagSampler) -> None:
        self._rooms = rooms
        self._lag = lag
        self._cpu = CpuMeter()

    def read(self) -> dict:
        live = [room for room in list(self._rooms) if on_air(room)]
        lag = self._lag.last_lag
        return {
            "cpu_pct": self._cpu.rate(),
            "event_loop_lag_ms": None if lag is None else round(lag * 1000, 2),
            "rooms_live": len(live),
            "publishers": sum(1 for room in live if room.publisher is not None),
            "viewers": sum(room.viewer_count() for room in live),
        }
