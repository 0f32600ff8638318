"""``WorkerCollector``: the media workers' Prometheus figures in the control plane's ``/metrics``.

With ``--workers N`` the control plane forwards no media: the live figures (forwarded
packets and bytes, drops, NACKs, retransmissions, keyframe requests, renditions and
their switches, recordings, the UDP mux, each worker's event loop lag) are in each
worker's own registry (``mediaserver.workers.worker_metrics``). Before a scrape is
answered, ``refresh`` asks every running worker for its samples over its channel, all at
once, within ``timeout``; ``collect`` then serves them with a ``worker`` label (the
worker's index, never its pid, so a restarted worker continues the same series from
zero, which Prometheus' ``rate`` reads as a counter reset).

A worker that is not running (killed, restarting) has no samples: its series go until
it is back, and ``stagepass_media_worker_up{worker}`` says 0. A running worker that
does not answer in time keeps its previous samples for this scrape. A scrape never
fails because of a worker.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mediaserver.workers.remote import WorkerRooms

__all__ = ["WorkerCollector"]

log = logging.getLogger("stagepass.metrics")


class WorkerCollector(Collector):
    def __init__(self, rooms: WorkerRooms, timeout: float = 2.0) -> None:
        self._rooms = rooms
        self.timeout = timeout
        self.latest: dict[int, list] = {}  #: worker -> its serialised families at the last refresh

    def describe(self) -> Iterable[Metric]:
        return []

    async def refresh(self) -> None:
        pool = self._rooms.pool
        alive = pool.alive()
        for gone in set(self.latest) - set(alive):
            del self.latest[gone]
        answers = await asyncio.gather(*(asyncio.wait_for(pool.request(w, "metrics"), self.timeout)
                                         for w in alive), return_exceptions=True)
        for worker, answer in zip(alive, answers):
            if isinstance(answer, BaseException):
                log.warning("media worker %d's metrics: %s", worker, type(answer).__name__ if isinstance(
                    answer, asyncio.TimeoutError) else answer)
                continue
            self.latest[worker] = answer["families"]

    def collect(self) -> Iterable[Metric]:
        families: dict[str, Metric] = {}
        for worker, serialised in sorted(self.latest.items()):
            index = str(worker)
            for name, kind, help_text, samples in serialised:
                family = families.get(name)
                if family is None:
                    family = families[name] = Metric(name, help_text, kind)
                for sample_name, labels, value in samples:
                    family.add_sample(sample_name, {**labels, "worker": index}, value)
        yield from families.values()
        pool = self._rooms.pool
        alive = set(pool.alive())
        up = GaugeMetricFamily("stagepass_media_worker_up", "1 while a media worker runs, 0 while it restarts",
                               labels=["worker"])
        cpu = CounterMetricFamily("stagepass_media_worker_cpu_seconds", "CPU time a media worker used (since its "
                                  "start: a restart resets it)", labels=["worker"])
        for worker in range(pool.count):
            up.add_metric([str(worker)], 1 if worker in alive else 0)
            load = self._rooms.loads.get(worker)
            if load is not None and worker in alive:
                cpu.add_metric([str(worker)], load["cpu_s"])
        yield up
        yield cpu
        yield CounterMetricFamily("stagepass_media_worker_restarts", "Media workers restarted after they exited",
                                  value=pool.restarts)
