"""``WorkerCollector`` and the merged exposition, without processes: a worker's registry
serialised as a media worker sends it, served with its ``worker`` label beside the control
plane's own series (one ``TYPE`` per family); a worker that does not answer keeps its last
samples, a worker that is not running loses them; a scrape never fails."""

from __future__ import annotations

import asyncio
import json

import pytest
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from core.loop_lag import lag_histogram
from mediaserver.workers.channel import WorkerGone
from mediaserver.workers.worker_metrics import serialise
from ops.metrics import Metrics
from ops.worker_metrics import WorkerCollector

pytestmark = pytest.mark.unit


class FakePool:
    """What ``WorkerCollector`` reads of a ``WorkerPool``: each worker's registry answers
    ``metrics`` as a media worker does (through JSON, as over its channel)."""

    def __init__(self, registries: list[CollectorRegistry]) -> None:
        self.registries = registries
        self.count = len(registries)
        self.restarts = 0
        self.running = set(range(self.count))
        self.silent: set[int] = set()  # running, but not answering

    def alive(self) -> list[int]:
        return sorted(self.running)

    async def request(self, index: int, op: str) -> dict:
        assert op == "metrics"
        if index not in self.running:
            raise WorkerGone(f"media worker {index} is not running")
        if index in self.silent:
            await asyncio.sleep(10)
        return json.loads(json.dumps({"families": serialise(self.registries[index]), "load": {}}))


class FakeRooms:
    def __init__(self, pool: FakePool) -> None:
        self.pool = pool
        self.loads = {i: {"pid": 100 + i, "cpu_s": 1.5 * (i + 1), "at": 0.0, "lag_s": 0.001}
                      for i in range(pool.count)}


def worker_registry(forwarded: int, lag: float) -> tuple[CollectorRegistry, Counter]:
    """A worker's registry (its forwarded packets, its loop lag) and its packet counter."""
    registry = CollectorRegistry(auto_describe=False)
    counter = Counter("stagepass_forwarded_packets", "RTP packets forwarded to viewers", ["kind"], registry=registry)
    counter.labels("video").inc(forwarded)
    lag_histogram(registry).observe(lag)
    return registry, counter


def samples(metrics: Metrics) -> dict[str, dict[tuple, float]]:
    body = metrics.exposition().decode()
    types = [line.split()[2] for line in body.splitlines() if line.startswith("# TYPE ")]
    assert len(types) == len(set(types)), types
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


async def test_workers_samples_are_labelled_merged_kept_and_dropped():
    (first, first_counter), (second, second_counter) = worker_registry(10, 0.002), worker_registry(20, 0.3)
    pool = FakePool([first, second])
    metrics = Metrics()
    collector = WorkerCollector(FakeRooms(pool), timeout=0.2)  # type: ignore[arg-type]
    metrics.workers = collector
    metrics.registry.register(collector)
    metrics.loop_lag.observe(0.004)  # the control plane's own lag: no worker label

    await metrics.refresh()
    seen = samples(metrics)
    assert seen["stagepass_forwarded_packets_total"] == {
        (("kind", "video"), ("worker", "0")): 10.0, (("kind", "video"), ("worker", "1")): 20.0}
    lag = seen["stagepass_event_loop_lag_seconds_count"]
    assert lag == {(): 1.0, (("worker", "0"),): 1.0, (("worker", "1"),): 1.0}, lag
    assert seen["stagepass_event_loop_lag_seconds_bucket"][(("le", "0.5"), ("worker", "1"))] == 1.0
    assert seen["stagepass_media_worker_up"] == {(("worker", "0"),): 1.0, (("worker", "1"),): 1.0}
    assert seen["stagepass_media_worker_cpu_seconds_total"][(("worker", "1"),)] == 3.0

    # worker 1 stops answering: its last samples stay; worker 0's move on
    pool.silent.add(1)
    first_counter.labels("video").inc(5)
    second_counter.labels("video").inc(5)
    await metrics.refresh()
    forwarded = samples(metrics)["stagepass_forwarded_packets_total"]
    assert forwarded[(("kind", "video"), ("worker", "0"))] == 15.0
    assert forwarded[(("kind", "video"), ("worker", "1"))] == 20.0

    # worker 1 dies: its series go, it is marked down, the scrape still answers
    pool.silent.clear()
    pool.running.discard(1)
    await metrics.refresh()
    seen = samples(metrics)
    assert set(seen["stagepass_forwarded_packets_total"]) == {(("kind", "video"), ("worker", "0"))}
    assert seen["stagepass_media_worker_up"] == {(("worker", "0"),): 1.0, (("worker", "1"),): 0.0}
    assert (("worker", "1"),) not in seen["stagepass_media_worker_cpu_seconds_total"]

    # restarted: a fresh process, its counters from zero under the same label
    pool.registries[1] = worker_registry(0, 0.001)[0]
    pool.running.add(1)
    pool.restarts = 1
    await metrics.refresh()
    seen = samples(metrics)
    assert seen["stagepass_forwarded_packets_total"][(("kind", "video"), ("worker", "1"))] == 0.0
    assert seen["stagepass_media_worker_restarts_total"] == {(): 1.0}
