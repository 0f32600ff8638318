"""Every media worker's figures in the control plane's ``/metrics`` and admin view
(``--workers 2``: the control plane in the test's process, its two workers as processes).

A publisher and three viewers spread over both workers: ``/metrics`` (scraped by us and
by a real Prometheus) shows each worker's forwarded packets rising under its ``worker``
label, viewers gauges that sum to the room's viewers, keyframe requests, each worker's
event loop lag and the joins the workers reported; the admin API lists both workers
(pid, running, sessions, rooms hosted, CPU, loop lag) and the room's keyframes, ingest
bitrate and loss, and so does the admin page (Chromium); the viewers API has every
viewer's quality and worker. Then the worker with viewers only is killed (SIGKILL):
``/readyz`` names it, its series go while it is down and come back after its restart,
and no scrape fails."""

from __future__ import annotations

import json
import os
import signal

import pytest
from paywall.http import PAYWALL
from signalling.whip import ROOMS
from stagepass.app import create_app
from tests.support.browser import SCREENSHOTS, open_page, wait_state
from tests.support.frames import until
from tests.support.ops_tools import (METRICS_TOKEN, WORKER_ONLY_METRICS, PrometheusServer, deploy_metric_names,
                                    exported_names, get, scrape)
from tests.support.paywall_fixtures import Api, paywall_settings
from tests.support.peers import Publisher, Viewer
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.inprocess, pytest.mark.e2e]

KEY = "open-room-key"  # the open room of ``paywall_settings``


def by_worker(samples: dict[str, dict[tuple, float]], name: str, **labels: str) -> dict[str, float]:
    """Per ``worker`` label: the sum of the samples ``name`` whose labels include ``labels``."""
    out: dict[str, float] = {}
    for pairs, value in samples.get(name, {}).items():
        found = dict(pairs)
        if "worker" in found and all(found.get(k) == v for k, v in labels.items()):
            out[found["worker"]] = out.get(found["worker"], 0.0) + value
    return out


async def test_each_workers_figures_reach_metrics_and_the_admin_view(aiohttp_server, tmp_path, browser):
    app = create_app(paywall_settings(tmp_path, f"sqlite:///{tmp_path / 'paywall.db'}", workers=2,
                                      metrics_token=METRICS_TOKEN))
    server = await aiohttp_server(app)
    base = str(server.make_url("")).rstrip("/")
    admin = await Api.sign_up(base, "viewer")
    await app[PAYWALL].accounts.set_role(admin.user["email"], "admin")
    (tmp_path / "prometheus").mkdir()
    prometheus = PrometheusServer(tmp_path / "prometheus", f"{server.host}:{server.port}", METRICS_TOKEN)
    rooms = app[ROOMS]
    pool = rooms.pool
    peers: list = []
    log: list[str] = []
    try:
        await prometheus.start()
        publisher = Publisher(base)
        peers.append(publisher)
        assert await publisher.publish("open", KEY) == 201
        room = rooms.get("open")
        await wait_for(lambda: room.live, timeout=20)
        host, other = room.host, 1 - room.host
        viewers = [Viewer(base) for _ in range(3)]
        peers += viewers
        for viewer in viewers:
            assert await viewer.play("open") == 201
        for viewer in viewers:
            await wait_for(lambda: len(viewer.numbers) >= 15, timeout=30)
        assert room.viewers_on(host) >= 1 and room.viewers_on(other) >= 1, room.placement()

        # /metrics: each worker's figures under its index
        first = await scrape(base)
        forwarded = by_worker(first, "stagepass_forwarded_packets_total")
        assert set(forwarded) == {"0", "1"} and all(n > 0 for n in forwarded.values()), forwarded
        viewers_by_worker = by_worker(first, "stagepass_viewers", room="open")
        assert sum(viewers_by_worker.values()) == 3, viewers_by_worker
        assert viewers_by_worker == {str(w): room.viewers_on(w) for w in (0, 1)}, viewers_by_worker
        assert by_worker(first, "stagepass_publishers", room="open") == {str(host): 1, str(other): 0}
        assert sum(by_worker(first, "stagepass_keyframe_requests_total").values()) > 0
        assert by_worker(first, "stagepass_media_worker_up") == {"0": 1, "1": 1}
        # each worker's own event loop lag, beside the control plane's (no worker label)
        lag = by_worker(first, "stagepass_event_loop_lag_seconds_count")
        assert set(lag) == {"0", "1"} and all(n > 0 for n in lag.values()), lag
        assert any("worker" not in dict(pairs) for pairs in first["stagepass_event_loop_lag_seconds_count"])
        # the UDP mux of each worker, and the joins the workers reported to the control plane
        assert set(by_worker(first, "stagepass_udp_sent_datagrams_total")) == {"0", "1"}
        assert first["stagepass_join_seconds_count"] == {(): 3.0}, first["stagepass_join_seconds_count"]
        # the deploy files' worker panels use only series this server exports
        _, _, body = await get(base + "/metrics", token=METRICS_TOKEN)
        assert WORKER_ONLY_METRICS <= deploy_metric_names() <= exported_names(body), \
            sorted(deploy_metric_names() - exported_names(body))

        async def rising() -> bool:
            now = by_worker(await scrape(base), "stagepass_forwarded_packets_total")
            return all(now.get(w, 0) > forwarded[w] for w in ("0", "1"))

        await until(rising, 30, what="each worker's forwarded packets rising", interval=0.5)

        # a real Prometheus reads the same: both workers' series, viewers summing to 3
        async def prometheus_sees_both() -> bool:
            result = await prometheus.query("sum by (worker) (stagepass_forwarded_packets_total)")
            return {r["metric"].get("worker") for r in result} == {"0", "1"} and \
                await prometheus.scalar("sum(stagepass_viewers)") == 3

        await until(prometheus_sees_both, 30, what="Prometheus scraping both workers' series", interval=0.5)
        assert [t["health"] for t in await prometheus.targets()] == ["up"]

        # the admin API: both workers, and the room's figures from them
        status, live = await admin.get("/api/admin/live")  # the first reading of the rates
        assert status == 200, live

        async def rates_known() -> dict | None:
            _, body = await admin.get("/api/admin/live")
            workers = body["node"]["workers"]
            (open_room,) = body["rooms"]
            ready = all(w["cpu_pct"] is not None for w in workers) and open_room["publisher"]["ingest_kbps"] \
                and open_room["loss"]["mean"] is not None
            return body if ready else None

        # polled as the page does, not faster: a rate needs two readings some time apart
        live = await until(rates_known, 30, what="the workers' CPU, the ingest bitrate and the viewers' loss",
                           interval=1.0)
        workers = live["node"]["workers"]
        assert [w["worker"] for w in workers] == [0, 1]
        assert {w["worker"]: w["pid"] for w in workers} == {i: p.pid for i, p in pool.workers.items()}
        assert all(w["state"] == "running" and w["event_loop_lag_ms"] is not None for w in workers), workers
        assert sum(w["sessions"] for w in workers) == 4  # the publisher and three viewers
        assert [w["rooms_hosted"] for w in workers] == [1 if i == host else 0 for i in (0, 1)]
        (open_room,) = live["rooms"]
        assert open_room["viewers"] == 3 and open_room["keyframe_requests"]["requested"] > 0, open_room
        assert 0 < open_room["publisher"]["ingest_kbps"] < 20_000, open_room
        assert open_room["workers"][str(host)]["host"] and open_room["workers"][str(other)]["viewers"] >= 1
        # the node's heartbeat carries its workers too
        status, cluster = await admin.get("/api/admin/nodes")
        assert status == 200 and [w["worker"] for w in cluster["nodes"][0]["load"]["workers"]] == [0, 1], cluster

        # the admin page shows both workers running, and the room's figures from them
        page = await open_page(browser, base, "admin", log, login=admin.token)
        await page.goto(f"{base}/static/admin.html")
        await wait_state(page, "ok")
        for index in (0, 1):
            worker_row = page.locator(f'#workers-table tr[data-worker="{index}"][data-state="running"]')
            await worker_row.wait_for()
            assert (await worker_row.locator(".sessions").text_content()) == str(room.viewers_on(index) + (index == host))
        room_row = page.locator('#rooms-table tr[data-room="open"]')
        await room_row.locator(".viewers", has_text="3").wait_for()
        assert f"host {host}" in await room_row.locator(".workers").text_content()
        assert " / " in await room_row.locator(".keyframes").text_content()
        await page.locator('#room-viewers tr[data-viewer]').nth(2).wait_for()
        shown = [await cell.text_content() for cell in await page.locator("#room-viewers td.worker").all()]
        assert sorted(shown) == sorted(str(s.worker) for s in room.subscribers.values()), shown
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SCREENSHOTS / "admin-workers.png"), full_page=True)
        await page.context.close()
        assert not [line for line in log if "pageerror" in line], log

        # per-viewer quality, whichever worker the viewer is on
        status, listing = await admin.get("/api/rooms/open/viewers")
        assert status == 200, listing
        assert sorted(v["worker"] for v in listing["viewers"]) == sorted(s.worker for s in room.subscribers.values())
        for entry in listing["viewers"]:
            assert entry["video"]["packets_sent"] > 0 and entry["first_media_ms"] is not None, entry

        # the worker with viewers only dies: /readyz names it, its series go, the scrape goes on
        killed = pool.workers[other].pid
        os.kill(killed, signal.SIGKILL)

        async def readyz_names_it() -> str | None:
            # the first 503 may come before the pool has reaped the worker ("not running
            # (restarting)"); the exit is named once it has, until the worker is back
            status, _, body = await get(base + "/readyz")
            return body if status == 503 and f"pid {killed} exited" in body else None

        body = json.loads(await until(readyz_names_it, 30, what="/readyz 503 naming the exit", interval=0.05))
        assert body["failed"] == ["media_workers"], body
        assert f"media worker {other} not running (pid {killed} exited with signal 9" in body["error"]["message"]

        async def series_gone() -> bool:
            now = await scrape(base)
            return other_label not in by_worker(now, "stagepass_forwarded_packets_total") \
                and by_worker(now, "stagepass_media_worker_up")[other_label] == 0

        other_label = str(other)
        await until(series_gone, 30, what="the dead worker's series gone", interval=0.05)

        async def back() -> bool:
            now = await scrape(base)
            return by_worker(now, "stagepass_media_worker_up") == {"0": 1, "1": 1} and \
                other_label in by_worker(now, "stagepass_forwarded_packets_total")

        await until(back, 30, what="the restarted worker's series back", interval=0.3)
        await wait_for(lambda: room.viewers_on(other) == 0, timeout=10)  # its viewers were forgotten
        after = await scrape(base)
        assert sum(by_worker(after, "stagepass_viewers", room="open").values()) == room.viewer_count()
        assert by_worker(after, "stagepass_forwarded_packets_total")[other_label] == 0
        status, _, _ = await get(base + "/readyz")
        assert status == 200

        # a viewer placed on the restarted worker: its forwarded packets rise again
        again = Viewer(base)
        peers.append(again)
        assert await again.play("open") == 201
        await wait_for(lambda: len(again.numbers) >= 15, timeout=30)
        assert room.viewers_on(other) == 1

        async def forwarding_again() -> bool:
            now = by_worker(await scrape(base), "stagepass_forwarded_packets_total")
            return now.get(other_label, 0) > 0

        await until(forwarding_again, 30, what="the restarted worker forwarding", interval=0.5)
        _, live = await admin.get("/api/admin/live")
        restarted = live["node"]["workers"][other]
        assert restarted["pid"] != killed and restarted["state"] == "running" and restarted["sessions"] == 1
        # Prometheus never saw a failed scrape
        assert [t["health"] for t in await prometheus.targets()] == ["up"]
        assert await prometheus.scalar('sum(up{job="stagepass"})') == 1
        assert await prometheus.scalar('min_over_time(up{job="stagepass"}[1m])') == 1
    finally:
        prometheus.close()
        for peer in peers:
            await peer.close()

