"""``Metrics``: one process's Prometheus metrics, in a registry of its own.

Collection costs nothing per forwarded packet. The media figures are counters the live
path keeps anyway (``Fanout.stats``, each viewer's ``SenderPort``, the keyframe
requester, the rooms' viewers); ``LiveCollector`` (``mediaserver.live.collectors``) reads
them when Prometheus scrapes. Only events that happen once per viewer, per request, per
danmaku or per failure are observed as they happen (join time, HTTP requests, danmaku
delivery delay, peer failures), and the event loop's lag is sampled every 100 ms by
``LoopLagSampler``, a task the app owns.

With media workers (``--workers N``) the control plane has no media of its own: each
worker keeps the live collectors and its loop lag in a registry of its own, and
``WorkerCollector`` (``worker_metrics.py``) serves their samples labelled ``worker``;
the workers' join times and peer failures reach this process's observer as events.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Iterable, Optional

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from core.loop_lag import LAG_BUCKETS, LoopLagSampler, lag_histogram
from mediaserver.live.collectors import KINDS, LiveCollector, UdpMuxCollector, on_air
from mediaserver.live.room import LiveObserver, RoomRegistry
from mediaserver.workers.remote import WorkerRooms

from .worker_metrics import WorkerCollector

__all__ = ["KINDS", "LAG_BUCKETS", "LiveCollector", "LoopLagSampler", "Metrics", "SourcesCollector", "on_air"]

log = logging.getLogger("stagepass.metrics")

# no ``*_created`` series: they double every counter's series for a figure Prometheus
# does not use (process-wide setting of prometheus-client)
disable_created_metrics()

JOIN_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PACKAGING_BUCKETS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
DANMAKU_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)


class SourcesCollector(Collector):
    """Process-wide figures known outside the media domain (Socket.IO connections,
    packaging jobs, orders...): each ``extra`` callable returns ``None`` while its source
    does not exist yet."""

    def __init__(self, extra: dict[str, Callable[[], Optional[dict]]]) -> None:
        self._extra = extra

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        for name, read in self._extra.items():
            try:
                values = read()
            except Exception:  # a scrape never fails because of one source
                log.exception("metrics source %s failed", name)
                continue
            if values is None:
                continue
            for metric_name, (kind, help_text, value) in values.items():
                # value: a number, or [((label, value) pairs, number)] for a labelled family
                samples = value if isinstance(value, list) else [((), value)]
                labels = [name for name, _ in samples[0][0]] if samples else []
                family = (CounterMetricFamily if kind == "counter" else GaugeMetricFamily)(
                    metric_name, help_text, labels=labels)
                for pairs, number in samples:
                    family.add_metric([v for _, v in pairs], number)
                yield family


class Metrics(LiveObserver):
    """The registry of one process, its event-driven metrics, and the live collector.

    It is the rooms' ``LiveObserver`` (join times, peer failures)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.join_seconds = Histogram("stagepass_join_seconds", "WHEP POST to the first media packet sent",
                                      buckets=JOIN_BUCKETS, registry=r)
        self.loop_lag = lag_histogram(r)
        self.peer_failures = Counter("stagepass_peer_failures", "WebRTC connections that failed",
                                     ["role", "stage", "cause"], registry=r)
        self.http_requests = Counter("stagepass_http_requests", "HTTP requests answered",
                                     ["method", "route", "status"], registry=r)
        self.http_seconds = Histogram("stagepass_http_request_seconds", "Time to answer an HTTP request",
                                      ["method", "route"], buckets=HTTP_BUCKETS, registry=r)
        self.packaging_seconds = Histogram("stagepass_packaging_seconds",
                                           "Time to package a recording into an HLS replay",
                                           ["status", "video"], buckets=PACKAGING_BUCKETS, registry=r)
        self.danmaku_delay = Histogram(
            "stagepass_danmaku_delivery_seconds",
            "A danmaku's acceptance (its sent_at stamp) to its room's frame handed to the sockets",
            buckets=DANMAKU_BUCKETS, registry=r)
        self.lag_sampler = LoopLagSampler(self.loop_lag)
        self.workers: Optional[WorkerCollector] = None  #: with media workers
        self._started = time.time()

    def watch(self, rooms: RoomRegistry | WorkerRooms,
              extra: Optional[dict[str, Callable[[], Optional[dict]]]] = None) -> None:
        """Collect the live figures of ``rooms`` and of their UDP mux (once): read here in
        one process, from each media worker with workers. ``extra``: ``SourcesCollector``'s."""
        if isinstance(rooms, WorkerRooms):
            self.workers = WorkerCollector(rooms)
            self.registry.register(self.workers)
        else:
            self.registry.register(LiveCollector(rooms))
            self.registry.register(UdpMuxCollector(rooms))
        self.registry.register(SourcesCollector(extra or {}))

    async def refresh(self) -> None:
        """Before a scrape: fetch the media workers' samples (nothing to do in one process)."""
        if self.workers is not None:
            await self.workers.refresh()

    # LiveObserver
    def viewer_first_media(self, seconds: float) -> None:
        self.join_seconds.observe(seconds)

    def peer_failed(self, role: str, stage: str, cause: str) -> None:
        self.peer_failures.labels(role, stage, cause).inc()

    def recording_packaged(self, path: object, manifest: dict) -> None:
        """A ``PackagingJobs`` listener: how long the job took, by outcome and video mode
        (``copy``: remuxed, ``mixed``, ``reencode``, ``none``)."""
        packaging = manifest.get("packaging") or {}
        seconds = packaging.get("seconds")
        if seconds is None:
            return
        video = (manifest.get("video") or {}).get("mode", "none")
        self.packaging_seconds.labels(str(manifest.get("status", "unknown")), str(video)).observe(seconds)

    def danmaku_written(self, accepted: list[float]) -> None:
        """A danmaku batcher's ``written`` hook: for each danmaku this process accepted, the
        delay from its acceptance (``time.time()`` stamps) to its frame being written."""
        now = time.time()
        observe = self.danmaku_delay.observe
        for stamp in accepted:
            observe(max(0.0, now - stamp))

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format (call ``refresh`` first)."""
        return generate_latest(_Merged(self.registry))


class _Merged:
    """A registry's families, those of one name merged into one (the control plane's own
    event loop lag and its workers' ``worker``-labelled one): the text format allows one
    ``TYPE`` per name."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Metric]:
        merged: dict[str, Metric] = {}
        for family in self._registry.collect():
            first = merged.setdefault(family.name, family)
            if first is not family:
                first.samples.extend(family.samples)
        return merged.values()
