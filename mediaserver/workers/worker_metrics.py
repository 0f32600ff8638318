"""``WorkerMetrics``: a media worker's Prometheus figures, for the control plane's ``/metrics``.

A worker keeps the live path's collectors (``LiveCollector``, ``UdpMuxCollector``) and
its event loop's lag in a registry of its own, exactly as one process does; the control
plane asks for them over the worker's channel (``metrics``) when it is scraped and
serves them labelled ``worker`` (``ops.worker_metrics.WorkerCollector``). Collection
therefore costs the worker nothing until someone scrapes. Events that happen once per
viewer (join time, a failed peer) go up the channel as they happen, to the control
plane's observer. ``load`` is the little the worker says every half second in its
snapshot (pid, CPU seconds, latest loop lag) for the admin view and the node's load.

prometheus-client's multiprocess mode does not fit here: the live figures are read by
custom collectors at scrape time (the mode only aggregates the library's own counters
and gauges from per-pid files), live rooms' gauges must disappear when a room ends, and
a dead worker's series must go with it.
"""

from __future__ import annotations

import os
import resource
import time
from typing import Callable, Optional

from prometheus_client import CollectorRegistry, disable_created_metrics

from core.loop_lag import LoopLagSampler, lag_histogram
from mediaserver.live.collectors import LiveCollector, UdpMuxCollector
from mediaserver.live.room import LiveObserver, RoomRegistry

__all__ = ["WorkerMetrics", "serialise"]

Emit = Callable[..., None]

# no ``*_created`` series, as in the control plane (``ops.metrics``): a process-wide setting
disable_created_metrics()


def serialise(registry: CollectorRegistry) -> list:
    """``registry``'s families as JSON: ``[[name, type, help, [[sample, labels, value]...]]...]``."""
    return [[family.name, family.type, family.documentation,
             [[s.name, s.labels, s.value] for s in family.samples]] for family in registry.collect()]


class WorkerMetrics(LiveObserver):
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.lag_sampler = LoopLagSampler(lag_histogram(self.registry))
        self.emit: Optional[Emit] = None  #: the channel's ``emit``, once it is open

    def watch(self, rooms: RoomRegistry) -> None:
        self.registry.register(LiveCollector(rooms))
        self.registry.register(UdpMuxCollector(rooms))

    def start(self, emit: Emit) -> None:
        self.emit = emit
        self.lag_sampler.start()

    async def close(self) -> None:
        await self.lag_sampler.close()

    def samples(self) -> list:
        return serialise(self.registry)

    def load(self) -> dict:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        lag = self.lag_sampler.last_lag
        return {"pid": os.getpid(), "cpu_s": usage.ru_utime + usage.ru_stime, "at": time.monotonic(),
                "lag_s": lag}

    # LiveObserver: to the control plane's observer
    def viewer_first_media(self, seconds: float) -> None:
        if self.emit is not None:
            self.emit("first_media", seconds=seconds)

    def peer_failed(self, role: str, stage: str, cause: str) -> None:
        if self.emit is not None:
            self.emit("peer_failed", role=role, stage=stage, cause=cause)
