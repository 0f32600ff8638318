"""``Metrics``: one process's Prometheus metrics, in a registry of its own.

Collection costs nothing per forwarded packet. The media figures are counters the live
path keeps anyway (``Fanout.stats``, each viewer's ``SenderPort``, the keyframe
requester, the rooms' viewers); ``LiveCollector`` reads them when Prometheus scrapes.
Only events that happen once per viewer, per request, per danmaku or per failure are
observed as they happen (join time, HTTP requests, danmaku delivery delay, peer
failures), and the event loop's lag is sampled
every 100 ms by ``LoopLagSampler``, a task the app owns.

Room labels stay bounded: a room appears while it has a publisher, viewers or an open
broadcast, and disappears with them. Counters summed over rooms only grow: a room keeps
the totals of the viewers that left, and rooms are never dropped from the registry while
the process runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable, Iterable, Optional

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from mediaserver.live.adaptation import RENDITIONS
from mediaserver.live.room import LiveObserver, Room, RoomRegistry
from core.tasks import TaskOwner

from .udp_metrics import UdpMuxCollector

__all__ = ["LiveCollector", "LoopLagSampler", "Metrics", "on_air"]

log = logging.getLogger("stagepass.metrics")

# no ``*_created`` series: they double every counter's series for a figure Prometheus
# does not use (process-wide setting of prometheus-client)
disable_created_metrics()

JOIN_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PACKAGING_BUCKETS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
DANMAKU_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)
KINDS = ("audio", "video")


def on_air(room: Room) -> bool:
    """A room counts (and has labels) while it has a publisher, viewers or an open broadcast."""
    return room.publisher is not None or bool(room.subscribers) or room.broadcast is not None


class LiveCollector(Collector):
    """The live rooms' figures, read at scrape time from the counters the live path keeps.

    ``extra`` callables add process-wide gauges known elsewhere (Socket.IO connections,
    packaging jobs): each returns ``None`` while its source does not exist yet.
    """

    def __init__(self, rooms: RoomRegistry, extra: Optional[dict[str, Callable[[], Optional[dict]]]] = None) -> None:
        self._rooms = rooms
        self._extra = extra or {}

    def describe(self) -> Iterable[Metric]:
        return []  # names are only known by collecting; the registry does not need them

    def collect(self) -> Iterable[Metric]:
        viewers = GaugeMetricFamily("stagepass_viewers", "Viewers connected to a live room", labels=["room"])
        publishers = GaugeMetricFamily("stagepass_publishers", "Publishers of a live room (0 or 1)",
                                       labels=["room"])
        rooms_live = GaugeMetricFamily("stagepass_rooms_live", "Rooms with a publisher, viewers or an open broadcast")
        received = CounterMetricFamily("stagepass_received_packets", "RTP packets received from publishers",
                                       labels=["kind"])
        forwarded = CounterMetricFamily("stagepass_forwarded_packets", "RTP packets forwarded to viewers",
                                        labels=["kind"])
        forwarded_bytes = CounterMetricFamily("stagepass_forwarded_bytes",
                                              "RTP payload bytes sent to viewers (retransmissions not counted)",
                                              labels=["kind"])
        dropped = CounterMetricFamily("stagepass_dropped_packets", "Packets not delivered to a viewer",
                                      labels=["kind", "reason"])
        nacks = CounterMetricFamily("stagepass_nacks", "Sequence numbers viewers reported lost (RTCP NACK)",
                                    labels=["kind"])
        rtx = CounterMetricFamily("stagepass_rtx_sent", "Packets retransmitted to viewers after a NACK",
                                  labels=["kind"])
        kf_requested = CounterMetricFamily("stagepass_keyframe_requests",
                                           "Keyframe requests (joins, PLI/FIR from viewers, skips, recorder)")
        kf_sent = CounterMetricFamily("stagepass_keyframe_requests_sent",
                                      "PLIs sent to publishers after rate limiting")
        recording_bytes = GaugeMetricFamily("stagepass_recording_bytes", "Bytes written for a live room's recording",
                                            labels=["room"])
        recording_gaps = GaugeMetricFamily("stagepass_recording_gaps", "Gaps in a live room's recording",
                                           labels=["room"])
        renditions = GaugeMetricFamily("stagepass_viewers_by_rendition",
                                       "Viewers by the video they get (full, low rendition, audio only)",
                                       labels=["rendition"])
        encoding = GaugeMetricFamily("stagepass_low_renditions_encoding",
                                     "Rooms whose low rendition is being encoded (a viewer watches it)")
        switches = CounterMetricFamily("stagepass_rendition_switches",
                                       "Viewers moved between renditions by their receiver feedback",
                                       labels=["direction"])
        holds = CounterMetricFamily("stagepass_rendition_holds",
                                    "Steps down not taken: half a room's viewers struggled at once")
        by_rendition = dict.fromkeys(RENDITIONS, 0)
        moved = {"down": 0, "up": 0}
        held = running = 0

        totals = {name: dict.fromkeys(KINDS, 0) for name in
                  ("in", "out", "bytes", "backed_up", "send_error", "duplicate", "too_late", "nacks", "rtx")}
        requested = sent = live = 0
        for room in list(self._rooms):
            for kind, fanout in room.fanouts.items():
                stats = fanout.stats
                totals["in"][kind] += stats.packets_in
                totals["out"][kind] += stats.packets_out
                totals["backed_up"][kind] += stats.dropped
                totals["send_error"][kind] += stats.send_errors
                totals["duplicate"][kind] += getattr(stats, "duplicates", 0)
                totals["too_late"][kind] += getattr(stats, "too_late", 0)
                totals["rtx"][kind] += stats.retransmitted
                if fanout.keyframes is not None:
                    requested += fanout.keyframes.requested
                    sent += fanout.keyframes.sent
            for kind, n in room.departed_octets.items():
                totals["bytes"][kind] += n
            for kind, n in room.departed_nacked.items():
                totals["nacks"][kind] += n
            for subscriber in list(room.subscribers.values()):
                for kind, n in subscriber.octets_sent().items():
                    totals["bytes"][kind] += n
                for kind, n in subscriber.nacked.items():
                    totals["nacks"][kind] += n
            if room.switcher is not None:
                for direction, n in room.switcher.switches.items():
                    moved[direction] += n
                held += room.switcher.held
            running += room.low is not None and room.low.running
            if not on_air(room):
                continue
            live += 1
            for subscriber in list(room.subscribers.values()):
                if not subscriber.relay:
                    by_rendition[subscriber.rendition] = by_rendition.get(subscriber.rendition, 0) + 1
            viewers.add_metric([room.name], room.viewer_count())
            publishers.add_metric([room.name], 1 if room.publisher is not None else 0)
            if room.recorder is not None:
                state = room.recorder.state()
                recording_bytes.add_metric([room.name], state["bytes"] or 0)
                recording_gaps.add_metric([room.name], state["gaps"])
        rooms_live.add_metric([], live)
        for kind in KINDS:
            received.add_metric([kind], totals["in"][kind])
            forwarded.add_metric([kind], totals["out"][kind])
            forwarded_bytes.add_metric([kind], totals["bytes"][kind])
            dropped.add_metric([kind, "viewer_backed_up"], totals["backed_up"][kind])
            dropped.add_metric([kind, "send_error"], totals["send_error"][kind])
            dropped.add_metric([kind, "duplicate"], totals["duplicate"][kind])
            dropped.add_metric([kind, "too_late"], totals["too_late"][kind])
            nacks.add_metric([kind], totals["nacks"][kind])
            rtx.add_metric([kind], totals["rtx"][kind])
        kf_requested.add_metric([], requested)
        kf_sent.add_metric([], sent)
        for rendition, n in by_rendition.items():
            renditions.add_metric([rendition], n)
        encoding.add_metric([], running)
        for direction, n in moved.items():
            switches.add_metric([direction], n)
        holds.add_metric([], held)
        yield from (viewers, publishers, rooms_live, received, forwarded, forwarded_bytes, dropped, nacks, rtx,
                    kf_requested, kf_sent, recording_bytes, recording_gaps, renditions, encoding, switches, holds)
        yield from self._collect_extra()

    def _collect_extra(self) -> Iterable[Metric]:
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


class LoopLagSampler:
    """How late the event loop runs: sleeps 100 ms and records how much longer it took.
    The one figure that says a Python media server is overloaded."""

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


class Metrics(LiveObserver):
    """The registry of one process, its event-driven metrics, and the live collector.

    It is the rooms' ``LiveObserver`` (join times, peer failures)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.join_seconds = Histogram("stagepass_join_seconds", "WHEP POST to the first media packet sent",
                                      buckets=JOIN_BUCKETS, registry=r)
        self.loop_lag = Histogram("stagepass_event_loop_lag_seconds",
                                  "How late a 100 ms sleep of the event loop wakes up", buckets=LAG_BUCKETS,
                                  registry=r)
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
        self._started = time.time()

    def watch(self, rooms: RoomRegistry, extra: Optional[dict[str, Callable[[], Optional[dict]]]] = None) -> None:
        """Collect the live figures of ``rooms`` and of their UDP mux (once)."""
        self.registry.register(LiveCollector(rooms, extra))
        self.registry.register(UdpMuxCollector(rooms))

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
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)
