"""Real Prometheus and Redis servers for the operations tests, each on a free port, a
viewer that loses packets on purpose (``LossyViewer``), and ``scrape``: a test server's
``/metrics`` (with ``METRICS_TOKEN``) read back into numbers.

``PrometheusServer`` runs Debian's ``/usr/bin/prometheus`` (the ``prometheus`` package)
with a scrape config pointing at a test server every second; ``PrivateRedis`` runs a
``redis-server`` of the test's own (nothing saved to disk) that a test may stop and start
again on the same port. A missing binary skips, or fails under CI (tests/support/missing_tools.py).
"""

from __future__ import annotations

import asyncio
import random
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any, Optional

import aiohttp

from tests.support.missing_tools import missing_tool
from tests.support.peers import Viewer


METRICS_TOKEN = "metrics-token-for-tests-0123456789"


async def get(url: str, token: str | None = None) -> tuple[int, str, str]:
    """``GET url`` (with ``Authorization: Bearer token``): status, content type, body."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers=headers) as r:
            return r.status, r.headers.get("Content-Type", ""), await r.text()


#: series only a server with media workers exports (the deploy files may use them)
WORKER_ONLY_METRICS = frozenset({"stagepass_media_worker_up", "stagepass_media_worker_cpu_seconds_total",
                                 "stagepass_media_worker_restarts_total"})
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


async def scrape(base: str) -> dict[str, dict[tuple, float]]:
    """``base``'s ``/metrics``: sample name (counters keep ``_total``) -> {sorted label
    pairs: value}. The exposition must have one ``TYPE`` line per family."""
    from prometheus_client.parser import text_string_to_metric_families

    status, _, body = await get(base + "/metrics", token=METRICS_TOKEN)
    assert status == 200, body
    types = [line.split()[2] for line in body.splitlines() if line.startswith("# TYPE ")]
    assert len(types) == len(set(types)), sorted(t for t in types if types.count(t) > 1)
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def exported_names(exposition: str) -> set[str]:
    """Every series name a scrape can hold (counters' _total, histograms' _bucket...)."""
    from prometheus_client.parser import text_string_to_metric_families

    names = set()
    for family in text_string_to_metric_families(exposition):
        names.add(family.name)
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}.get(family.type, ())
        names.update(family.name + s for s in suffixes)
    return names


def deploy_metric_names() -> set[str]:
    """The ``stagepass_*`` names the Grafana dashboard and the alert rules in ``deploy/`` use."""
    import json
    import re

    dashboard = json.loads((DEPLOY / "grafana" / "stagepass-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    alerts = (DEPLOY / "stagepass-alerts.yml").read_text()
    return set(re.findall(r"stagepass_[a-z_]+", " ".join(exprs) + alerts))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    async with aiohttp.ClientSession() as http:
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"{proc.args[0]} exited with {proc.returncode}")
            try:
                async with http.get(url) as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{url} did not answer within {timeout:g} s")
            await asyncio.sleep(0.2)


class PrometheusServer:
    """One Prometheus scraping ``target`` (host:port) every second with a bearer token."""

    def __init__(self, workdir: Path, target: str, token: str) -> None:
        binary = shutil.which("prometheus") or ("/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None)
        if binary is None:
            missing_tool("Prometheus is not installed (Debian package 'prometheus')")
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = workdir / "prometheus.yml"
        self.config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n"
            "  - job_name: stagepass\n    scrape_interval: 1s\n    scrape_timeout: 1s\n"
            "    metrics_path: /metrics\n"
            f"    authorization:\n      type: Bearer\n      credentials: {token}\n"
            f"    static_configs:\n      - targets: ['{target}']\n"
        )
        self.proc: Optional[subprocess.Popen] = None
        self.log = workdir / "prometheus.log"

    async def start(self) -> "PrometheusServer":
        self.proc = subprocess.Popen(
            [self.binary, f"--config.file={self.config}", f"--web.listen-address=127.0.0.1:{self.port}",
             f"--storage.tsdb.path={self.workdir / 'tsdb'}", "--storage.tsdb.retention.time=1h"],
            stdout=subprocess.DEVNULL, stderr=self.log.open("wb"))
        await _wait_http(self.url + "/-/ready", self.proc)
        return self

    async def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant vector ``promql`` evaluates to now (``[{metric, value}]``)."""
        async with aiohttp.ClientSession() as http:
            async with http.get(self.url + "/api/v1/query", params={"query": promql}) as r:
                body = await r.json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    async def scalar(self, promql: str) -> Optional[float]:
        """The single value of ``promql`` now, or None while it has none."""
        result = await self.query(promql)
        return float(result[0]["value"][1]) if result else None

    async def targets(self) -> list[dict]:
        async with aiohttp.ClientSession() as http:
            async with http.get(self.url + "/api/v1/targets") as r:
                return (await r.json())["data"]["activeTargets"]

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class PrivateRedis:
    """A ``redis-server`` of one test's own, on a free port, keeping nothing on disk."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            missing_tool("redis-server is not installed")
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: Optional[subprocess.Popen] = None

    async def start(self) -> "PrivateRedis":
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        from redis.asyncio import Redis

        client = Redis.from_url(self.url)
        try:
            for _ in range(100):
                if self.proc.poll() is not None:
                    raise AssertionError(f"redis-server exited with {self.proc.returncode}")
                try:
                    await client.ping()
                    return self
                except Exception:
                    await asyncio.sleep(0.1)
            raise AssertionError("redis-server did not answer")
        finally:
            await client.aclose()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


class LossyViewer(Viewer):
    """A ticket holder's player that drops ``loss`` of its incoming video packets before
    aiortc sees them (a user-space shim), so its receiver reports show the loss and its
    jitter buffer NACKs the gaps. Other options are ``Viewer``'s (``report_interval``)."""

    def __init__(self, base_url: str, loss: float, seed: int = 20, **options: Any) -> None:
        super().__init__(base_url, **options)
        self.dropped = 0
        rng = random.Random(seed)
        receiver = next(t.receiver for t in self.pc.getTransceivers() if t.kind == "video")
        deliver = receiver._handle_rtp_packet

        async def lossy(packet, arrival_time_ms):
            if rng.random() < loss:
                self.dropped += 1
                return
            await deliver(packet, arrival_time_ms)

        receiver._handle_rtp_packet = lossy

    async def play_with(self, room: str, token: str) -> int:
        return await self.post(f"/whep/{room}", token=token)
