"""A node's load as its registry entry and the admin view carry it: CPU, event loop lag,
live rooms, publishers and viewers, and with media workers each worker's (``WorkerLoads``).

``NodeLoad.read`` is the ``NodeRegistry``'s ``load`` source, called at every heartbeat, so
every node of a cluster sees every other node's load in the registry (``GET
/api/admin/nodes``) without asking it over HTTP.
"""

from __future__ import annotations

import resource
import time
from typing import Optional

from core.loop_lag import LoopLagSampler
from mediaserver.live.collectors import on_air
from mediaserver.live.room import RoomRegistry
from mediaserver.workers.remote import WorkerRooms

__all__ = ["CpuMeter", "NodeLoad", "WorkerLoads"]


class CpuMeter:
    """This process's CPU time as a % of one core, between two readings (``None`` for the
    first, or when the readings are under ``min_interval`` seconds apart)."""

    def __init__(self, min_interval: float = 0.2) -> None:
        self.min_interval = min_interval
        self._last: Optional[tuple[float, float]] = None  # (monotonic time, CPU seconds)

    def rate(self, reading: Optional[tuple[float, float]] = None) -> Optional[float]:
        """``reading``: another process's ``(monotonic time, CPU seconds)``; by default this one's, now."""
        if reading is None:
            usage = resource.getrusage(resource.RUSAGE_SELF)
            reading = (time.monotonic(), usage.ru_utime + usage.ru_stime)
        now, cpu = reading
        previous = self._last
        if previous is not None and now - previous[0] < self.min_interval:
            return None  # too close to say; keep the older reading for the next call
        self._last = (now, cpu)
        if previous is None:
            return None
        return round((cpu - previous[1]) / (now - previous[0]) * 100, 1)


class WorkerLoads:
    """Each media worker as the admin view shows it: ``[{worker, pid, state (running,
    restarting), sessions, rooms_hosted, cpu_pct, event_loop_lag_ms}]``, from the workers'
    half-second snapshots (``cpu_pct`` between two snapshots at least 0.4 s apart, the
    latest such figure while no newer snapshot came; ``None`` until there is one, and after
    a restart)."""

    def __init__(self, rooms: WorkerRooms) -> None:
        self._rooms = rooms
        self._cpu: dict[int, CpuMeter] = {}  # pid -> its meter (a restart starts a new one)
        self._pct: dict[int, float] = {}  # pid -> its latest CPU figure

    def read(self) -> list[dict]:
        rooms, pool = self._rooms, self._rooms.pool
        alive = set(pool.alive())
        sessions = dict.fromkeys(range(pool.count), 0)
        hosted = dict.fromkeys(range(pool.count), 0)
        for room in rooms:
            for session in ([room.publisher] if room.publisher else []) + list(room.subscribers.values()):
                sessions[session.worker] = sessions.get(session.worker, 0) + 1
            if room.host is not None:
                hosted[room.host] = hosted.get(room.host, 0) + 1
        out = []
        for index in range(pool.count):
            process = pool.workers.get(index)
            load = rooms.loads.get(index) if index in alive else None
            cpu = lag = None
            if load is not None:
                pid = load["pid"]
                rate = self._cpu.setdefault(pid, CpuMeter(min_interval=0.4)).rate((load["at"], load["cpu_s"]))
                if rate is not None:
                    self._pct[pid] = rate
                cpu = self._pct.get(pid)
                lag = None if load["lag_s"] is None else round(load["lag_s"] * 1000, 2)
            out.append({"worker": index, "pid": process.pid if process is not None else None,
                        "state": "running" if index in alive else "restarting",
                        "sessions": sessions.get(index, 0), "rooms_hosted": hosted.get(index, 0),
                        "cpu_pct": cpu, "event_loop_lag_ms": lag})
        running = {load["pid"] for load in rooms.loads.values()}
        for pid in set(self._cpu) - running:
            del self._cpu[pid]
            self._pct.pop(pid, None)
        return out


class NodeLoad:
    """What this node carries now: ``{cpu_pct, event_loop_lag_ms, rooms_live, publishers,
    viewers}`` (``cpu_pct`` since the previous read, ``None`` at the first: this process's,
    the control plane's with workers) and, with media workers, ``workers``
    (``WorkerLoads``)."""

    def __init__(self, rooms: RoomRegistry | WorkerRooms, lag: LoopLagSampler) -> None:
        self._rooms = rooms
        self._lag = lag
        self._cpu = CpuMeter()
        self._workers = WorkerLoads(rooms) if isinstance(rooms, WorkerRooms) else None

    def read(self) -> dict:
        live = [room for room in list(self._rooms) if on_air(room)]
        lag = self._lag.last_lag
        load = {
            "cpu_pct": self._cpu.rate(),
            "event_loop_lag_ms": None if lag is None else round(lag * 1000, 2),
            "rooms_live": len(live),
            "publishers": sum(1 for room in live if room.publisher is not None),
            "viewers": sum(room.viewer_count() for room in live),
        }
        if self._workers is not None:
            load["workers"] = self._workers.read()
        return load
