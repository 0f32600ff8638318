"""``LoopLagSampler``: how late a process's event loop runs, the one figure that says a
Python media server is overloaded. Every process that forwards media samples its own:
the single process and the control plane (``ops.metrics.Metrics``), each media worker
(``mediaserver.workers.worker_metrics``)."""

from __future__ import annotations

import asyncio
import logging
from typing import Optional

from prometheus_client import CollectorRegistry, Histogram

from core.tasks import TaskOwner

__all__ = ["LAG_BUCKETS", "LoopLagSampler", "lag_histogram"]

log = logging.getLogger("stagepass.metrics")

LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def lag_histogram(registry: CollectorRegistry) -> Histogram:
    """``stagepass_event_loop_lag_seconds`` in ``registry`` (one definition for every process)."""
    return Histogram("stagepass_event_loop_lag_seconds", "How late a 100 ms sleep of the event loop wakes up",
                     buckets=LAG_BUCKETS, registry=registry)


class LoopLagSampler:
    """Sleeps ``interval`` (100 ms) and records how much longer it took."""

    def __init__(self, histogram: Histogram, interval: float = 0.1) -> None:
        self._histogram = histogram
        self.interval = interval
        self.last_lag: Optional[float] = None  #: seconds, the latest sample
        self._tasks = TaskOwner(log)

    def start(self) -> None:
        self._tasks.spawn(self._run(), name="event-loop-lag")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(self.interval)
            lag = max(0.0, loop.time() - started - self.interval)
            self.last_lag = lag
            self._histogram.observe(lag)

    async def close(self) -> None:
        await self._tasks.close()
