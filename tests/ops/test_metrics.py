"""Operating Stagepass: ``/metrics`` (token-gated, scraped by a real Prometheus),
``/healthz`` and ``/readyz`` (a private Redis stopped and started again), and each viewer's
quality from its RTCP receiver reports (a viewer dropping 10% of its packets)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import statistics

import pytest
from prometheus_client.parser import text_string_to_metric_families

from stagepass.app import create_app
from core.settings import Settings
from core.logs import JsonFormatter
from tests.support.live_server import KEY, media_server
from tests.support.ops_tools import (DEPLOY, METRICS_TOKEN, WORKER_ONLY_METRICS, LossyViewer, PrivateRedis,
                                    PrometheusServer, deploy_metric_names, exported_names, get)
from tests.support.paywall_fixtures import Api, buy, paid_room, paywall_settings, view_token
from tests.support.peers import Publisher, Viewer

pytestmark = pytest.mark.inprocess

TOKEN = METRICS_TOKEN


async def eventually(check, timeout: float = 30.0, interval: float = 0.5):
    """Await ``check()`` until it returns something true; its last value on timeout fails."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met in {timeout:g} s (last value {value!r})")
        await asyncio.sleep(interval)


# ---------------------------------------------------------------------------- /metrics
async def test_metrics_answers_only_with_its_token(aiohttp_server, tmp_path):
    _, base, _ = await media_server(aiohttp_server, tmp_path, metrics_token=TOKEN)
    status, _, body = await get(base + "/metrics")
    assert status == 401 and '"unauthorized"' in body
    status, _, body = await get(base + "/metrics", token="not-the-metrics-token")
    assert status == 401 and TOKEN not in body
    status, content_type, body = await get(base + "/metrics", token=TOKEN)
    assert status == 200 and content_type.startswith("text/plain")
    names = {family.name for family in text_string_to_metric_families(body)}
    for name in ("stagepass_viewers", "stagepass_publishers", "stagepass_forwarded_packets",
                 "stagepass_forwarded_bytes", "stagepass_dropped_packets", "stagepass_keyframe_requests",
                 "stagepass_nacks", "stagepass_rtx_sent", "stagepass_join_seconds",
                 "stagepass_event_loop_lag_seconds", "stagepass_peer_failures", "stagepass_http_requests",
                 "stagepass_http_request_seconds"):
        assert name in names, name
    # the 401s above were counted by route template and status
    assert 'stagepass_http_requests_total{method="GET",route="/metrics",status="401"} 2.0' in body


async def test_metrics_are_off_without_a_token(aiohttp_server, tmp_path):
    _, base, _ = await media_server(aiohttp_server, tmp_path)
    status, _, body = await get(base + "/metrics", token=TOKEN)
    assert status == 404 and '"not_found"' in body


def test_metrics_token_must_be_long_enough(tmp_path):
    from core.settings import ConfigError

    with pytest.raises(ConfigError, match="metrics_token"):
        Settings.load([], {"STAGEPASS_METRICS_TOKEN": "short", "STAGEPASS_DATA_DIR": str(tmp_path)})
    assert Settings.load(["--metrics-token", TOKEN], {}).ops.metrics_token == TOKEN


# ---------------------------------------------------------------------------- health
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_readyz_names_redis_while_it_is_down_and_healthz_stays_up(aiohttp_server, tmp_path, database_url):
    redis = await PrivateRedis(tmp_path).start()
    try:
        app = create_app(paywall_settings(tmp_path, database_url, redis_url=redis.url))
        base = str((await aiohttp_server(app)).make_url("")).rstrip("/")

        status, _, body = await get(base + "/readyz")
        assert status == 200, body
        ready = json.loads(body)
        assert ready["status"] == "ready"
        assert {"database", "redis", "data_dir"} <= set(ready["checks"]), ready
        assert all(check["ok"] for check in ready["checks"].values()), ready

        redis.stop()
        status, _, body = await get(base + "/readyz")
        assert status == 503, body
        down = json.loads(body)
        assert down["failed"] == ["redis"], down
        assert down["checks"]["database"]["ok"] and not down["checks"]["redis"]["ok"]
        assert down["error"]["code"] == "not_ready" and "redis" in down["error"]["message"]
        status, _, body = await get(base + "/healthz")
        assert status == 200 and '"ok"' in body

        await redis.start()  # back, on the same port
        status, _, body = await eventually(lambda: _ready(base), timeout=15)
        assert status == 200, body
        status, _, _ = await get(base + "/healthz")
        assert status == 200
    finally:
        redis.stop()


async def _ready(base: str):
    status, content_type, body = await get(base + "/readyz")
    return (status, content_type, body) if status == 200 else None


async def test_healthz_reports_event_loop_lag(aiohttp_server, tmp_path):
    _, base, _ = await media_server(aiohttp_server, tmp_path)
    await asyncio.sleep(0.35)  # a few 100 ms samples
    status, _, body = await get(base + "/healthz")
    assert status == 200
    lag = json.loads(body)["event_loop_lag_ms"]
    assert lag is not None and lag >= 0


# ---------------------------------------------------------------------------- Prometheus
@pytest.mark.slow
async def test_prometheus_scrapes_viewers_and_forwarded_packets(aiohttp_server, tmp_path):
    server, base, _ = await media_server(aiohttp_server, tmp_path, metrics_token=TOKEN)
    (tmp_path / "prometheus").mkdir()
    prometheus = PrometheusServer(tmp_path / "prometheus", f"{server.host}:{server.port}", TOKEN)
    publisher = Publisher(base)
    viewers = [Viewer(base) for _ in range(3)]
    try:
        await prometheus.start()
        assert await publisher.publish("demo", KEY) == 201
        for viewer in viewers:
            assert await viewer.play("demo") == 201
        for viewer in viewers:
            await asyncio.wait_for(asyncio.shield(viewer.first_frame), 30)

        async def three_viewers():
            return await prometheus.scalar("sum(stagepass_viewers)") == 3

        await eventually(three_viewers)
        assert await prometheus.scalar('stagepass_publishers{room="demo"}') == 1
        targets = await prometheus.targets()
        assert [t["health"] for t in targets] == ["up"], targets
        first = await prometheus.scalar("sum(stagepass_forwarded_packets_total)")
        assert first and first > 0

        async def rising():
            now = await prometheus.scalar("sum(stagepass_forwarded_packets_total)")
            return now is not None and now > first

        await eventually(rising)
        assert await prometheus.scalar('sum(rate(stagepass_forwarded_packets_total{kind="video"}[5s]))') > 0
        assert await prometheus.scalar("sum(stagepass_forwarded_bytes_total)") > 0

        async def three_joins():
            return await prometheus.scalar("stagepass_join_seconds_count") == 3

        await eventually(three_joins)

        for viewer in viewers:
            assert await viewer.delete() == 200

        async def no_viewers():
            return await prometheus.scalar("sum(stagepass_viewers)") == 0

        await eventually(no_viewers)
        # the publisher still forwards to nobody: the counter stays, viewers' bytes included
        assert await prometheus.scalar("sum(stagepass_forwarded_bytes_total)") > 0
    finally:
        prometheus.close()
        for viewer in viewers:
            await viewer.close()
        await publisher.close()


# ---------------------------------------------------------------------------- quality
#: seconds between the lossy viewer's receiver reports (a browser's pace; aiortc's own is about 1 s)
REPORT_INTERVAL = 0.5


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_viewer_quality_shows_its_loss_and_nacks(aiohttp_server, tmp_path, database_url):
    # the rendition switcher is off: at 10 % random loss it may move the viewer to the low
    # rendition and, while the estimate settles after that switch, on to audio only, where
    # no video figures are left to read (its own tests: tests/mediaserver/live/test_low_rendition.py)
    app = create_app(paywall_settings(tmp_path, database_url, low_rendition=False))
    base = str((await aiohttp_server(app)).make_url("")).rstrip("/")
    creator = await Api.sign_up(base, "creator")
    room = await paid_room(creator)
    buyer = await Api.sign_up(base)
    await buy(buyer, "maths")
    publisher = Publisher(base)
    viewer = LossyViewer(base, loss=0.10, report_interval=REPORT_INTERVAL)
    json_lines = io.StringIO()
    handler = logging.StreamHandler(json_lines)
    handler.setFormatter(JsonFormatter())
    stagepass_log = logging.getLogger("stagepass")
    level = stagepass_log.level
    stagepass_log.addHandler(handler)
    stagepass_log.setLevel(logging.INFO)
    try:
        assert await publisher.publish("maths", room["stream_key"]) == 201
        assert await viewer.play_with("maths", await view_token(buyer, "maths")) == 201
        await asyncio.wait_for(asyncio.shield(viewer.first_frame), 30)

        # who may look
        assert (await Api(base).get("/api/rooms/maths/viewers"))[0] == 401
        status, body = await buyer.get("/api/rooms/maths/viewers")
        assert status == 403 and body["error"]["code"] == "not_your_room"
        status, body = await creator.get("/api/rooms/nowhere/viewers")
        assert status == 404

        losses: list[float] = []
        nacked: list[int] = []
        rtts: list[float] = []
        seen_reports: set = set()
        for _ in range(20):  # 6 s: about 12 receiver reports
            await asyncio.sleep(0.3)
            status, body = await creator.get("/api/rooms/maths/viewers")
            assert status == 200, body
            [entry] = body["viewers"]
            assert entry["user_id"] == buyer.user["id"]
            video = entry["video"]
            nacked.append(video["nacked"])
            if video["fraction_lost"] is not None:
                key = (video["packets_lost"], video["fraction_lost"])
                if key not in seen_reports:  # one sample per receiver report
                    seen_reports.add(key)
                    losses.append(video["fraction_lost"])
            if video["rtt_ms"] is not None:
                rtts.append(video["rtt_ms"])
        assert viewer.dropped > 0
        assert len(losses) >= 4, losses
        assert 0.04 <= statistics.mean(losses) <= 0.2, losses
        assert nacked[-1] > nacked[len(nacked) // 2] > 0, nacked
        assert entry["video"]["retransmitted"] > 0
        assert entry["video"]["packets_sent"] > 0 and entry["video"]["bytes_sent"] > 0
        assert rtts and 0 <= rtts[-1] < 1000, rtts
        # its bandwidth estimate (REMB), and the rendition it plays
        assert entry["video"]["estimate_kbps"] is not None and entry["video"]["estimate_kbps"] > 0
        assert entry["rendition"] == "full"
        # the audio the viewer gets whole reports (almost) no loss
        assert entry["audio"]["fraction_lost"] is not None and entry["audio"]["fraction_lost"] < 0.04
        # JSON logs name the viewer's session and user as fields
        logged = [json.loads(line) for line in json_lines.getvalue().splitlines()]
        mine = [e for e in logged if e.get("session") == entry["id"]]
        assert mine and all(e["room"] == "maths" for e in mine), logged[-20:]
        assert any(e.get("user") == buyer.user["id"] for e in mine), mine
        assert room["stream_key"] not in json_lines.getvalue()
    finally:
        stagepass_log.removeHandler(handler)
        stagepass_log.setLevel(level)
        await viewer.close()
        await publisher.close()


async def test_a_viewer_that_never_connects_is_counted_as_a_peer_failure(aiohttp_server, tmp_path):
    _, base, app = await media_server(aiohttp_server, tmp_path, metrics_token=TOKEN, connect_timeout=1.0)
    viewer = Viewer(base)
    try:
        assert await viewer.play("demo") == 201
    finally:
        await viewer.close()  # gone before ICE could connect

    async def counted():
        _, _, body = await get(base + "/metrics", token=TOKEN)
        return body if 'stagepass_peer_failures_total{cause="timeout",role="viewer",stage="connect"} 1.0' in body \
            else None

    body = await eventually(counted, timeout=15)
    # the WHEP POST was counted under its route template, never the room's name
    assert 'stagepass_http_requests_total{method="POST",route="/whep/{room}",status="201"} 1.0' in body
    assert 'route="/whep/demo"' not in body


# ---------------------------------------------------------------------------- deploy/
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_deploy_files_use_only_exported_metrics_and_pass_promtool(aiohttp_server, tmp_path, database_url):
    import shutil
    import subprocess

    from tests.support.missing_tools import missing_tool

    app = create_app(paywall_settings(tmp_path, database_url, metrics_token=TOKEN))  # the whole server
    base = str((await aiohttp_server(app)).make_url("")).rstrip("/")
    _, _, body = await get(base + "/metrics", token=TOKEN)
    exported = exported_names(body)
    used = deploy_metric_names()
    # the media workers' own series: tests/ops/test_worker_metrics.py checks them on a server with workers
    assert used and used - WORKER_ONLY_METRICS <= exported, sorted(used - WORKER_ONLY_METRICS - exported)

    promtool = shutil.which("promtool")
    if promtool is None:
        missing_tool("promtool is not installed (Debian package 'prometheus')")
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    config = tmp_path / "prometheus.yml"
    config.write_text((DEPLOY / "prometheus.yml").read_text()
                      .replace("/etc/prometheus/stagepass-metrics-token", str(token_file)))
    shutil.copy(DEPLOY / "stagepass-alerts.yml", tmp_path / "stagepass-alerts.yml")
    result = subprocess.run([promtool, "check", "config", str(config)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 6 rules found" in result.stdout + result.stderr


# ---------------------------------------------------------------------------- business
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_orders_socketio_and_danmaku_reach_metrics(aiohttp_server, tmp_path, database_url):
    from tests.support.paywall_fixtures import connected

    app = create_app(paywall_settings(tmp_path, database_url, metrics_token=TOKEN, metrics_orders_seconds=0.2))
    base = str((await aiohttp_server(app)).make_url("")).rstrip("/")
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator)
    await paid_room(creator, slug="art")
    buyer = await Api.sign_up(base)
    await buy(buyer, "maths")
    status, body = await buyer.post("/api/orders", {"room": "art", "product": "ticket", "idempotency_key": "art-ticket-1"})
    assert status == 201 and body["order"]["status"] == "pending", body  # never paid
    chat = await connected(base, buyer)
    try:
        assert (await chat.call("danmaku:send", {"text": "hello"}))["ok"]

        async def scraped():
            _, _, body = await get(base + "/metrics", token=TOKEN)
            wanted = ('stagepass_orders{product="ticket",provider="dev",status="paid"} 1.0',
                      'stagepass_orders{product="ticket",provider="dev",status="pending"} 1.0',
                      "stagepass_socketio_connections 1.0", "stagepass_danmaku_delivered_total 1.0")
            return body if all(w in body for w in wanted) else None

        body = await eventually(scraped, timeout=10, interval=0.2)
        # its delay from acceptance to the room's frame written: one sample, within the
        # batch window (100 ms) and the event loop's turns of a test server
        delay = {s.name: s.value for f in text_string_to_metric_families(body)
                 if f.name == "stagepass_danmaku_delivery_seconds" for s in f.samples}
        assert delay["stagepass_danmaku_delivery_seconds_count"] == 1.0, delay
        assert 0.0 <= delay["stagepass_danmaku_delivery_seconds_sum"] < 2.0, delay
        for _ in range(3):
            assert (await chat.call("danmaku:send", {"text": "again"}))["ok"]

        async def counted():
            _, _, body = await get(base + "/metrics", token=TOKEN)
            return "stagepass_danmaku_delivery_seconds_count 4.0" in body

        await eventually(counted, timeout=10, interval=0.2)
    finally:
        await chat.close()


@pytest.mark.slow
async def test_recording_and_packaging_reach_metrics(aiohttp_server, tmp_path):
    _, base, app = await media_server(aiohttp_server, tmp_path, metrics_token=TOKEN)
    publisher = Publisher(base)
    try:
        assert await publisher.publish("demo", KEY) == 201

        async def recording():
            _, _, body = await get(base + "/metrics", token=TOKEN)
            for family in text_string_to_metric_families(body):
                if family.name == "stagepass_recording_bytes":
                    return any(s.labels == {"room": "demo"} and s.value > 20000 for s in family.samples)
            return False

        await eventually(recording, timeout=30)
        assert await publisher.delete() == 200  # the creator ends the broadcast: packaging starts

        async def packaged():
            _, _, body = await get(base + "/metrics", token=TOKEN)
            counts = [s for f in text_string_to_metric_families(body) if f.name == "stagepass_packaging_seconds"
                      for s in f.samples if s.name == "stagepass_packaging_seconds_count"]
            return counts if any(s.labels.get("status") == "ready" and s.value == 1 for s in counts) else None

        counts = await eventually(packaged, timeout=60)
        [video] = [s.labels["video"] for s in counts if s.value]
        assert video in ("copy", "mixed", "reencode")  # how the video went into the replay
        _, _, body = await get(base + "/metrics", token=TOKEN)
        assert "stagepass_packaging_jobs_finished_total 1.0" in body
        assert 'stagepass_recording_bytes{room="demo"}' not in body  # off air: its labels are gone
    finally:
        await publisher.close()


async def test_readyz_names_the_replay_store_while_it_fails(aiohttp_server, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the replay store should be")
    _, base, _ = await media_server(aiohttp_server, tmp_path / "node",
                                    storage_url=f"file://{blocker}/replays")
    status, _, body = await get(base + "/readyz")
    assert status == 503, body
    down = json.loads(body)
    assert down["failed"] == ["storage"] and down["checks"]["data_dir"]["ok"], down
    blocker.unlink()  # the store can be created now
    status, _, body = await get(base + "/readyz")
    assert status == 200 and set(json.loads(body)["checks"]) == {"data_dir", "storage"}, body
