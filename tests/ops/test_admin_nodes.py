"""The admin view of a cluster: two real ``stagepass serve`` nodes sharing one Redis
database (this file's own) and one database list each other, with their public URL, their
load, the rooms they host and their last heartbeat, and which node hosts each live room;
a node that stops leaves the list."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from datetime import datetime

import pytest

from tests.support.paywall_fixtures import Api, flushed_redis
from tests.support.peers import Publisher, Viewer
from tests.support.server_process import ROOT, start_server, stop

pytestmark = [pytest.mark.inprocess, pytest.mark.slow]

REDIS_DB = 10  # this file's own Redis database number
KEY = "open-room-key-123"
SECRET = "n" * 40


async def eventually(check, timeout: float = 20.0, interval: float = 0.2):
    """Await ``check()`` until it returns something true; fails with its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout:g} s (last value {value!r})")
        await asyncio.sleep(interval)


def node_flags(tmp_path) -> list[str]:
    return ["--redis-url", f"redis://127.0.0.1:6379/{REDIS_DB}",
            "--database-url", f"sqlite:///{tmp_path / 'shared.db'}", "--secret", SECRET,
            "--rooms", f"open={KEY}", "--node-heartbeat-seconds", "0.3", "--signups-per-hour", "1000"]


async def make_admin(tmp_path, base: str) -> Api:
    admin = await Api.sign_up(base, email="ops-admin@example.org")
    result = subprocess.run(
        [sys.executable, "-m", "stagepass.cli", "set-role", "ops-admin@example.org", "admin",
         "--data-dir", str(tmp_path / "cli"), "--database-url", f"sqlite:///{tmp_path / 'shared.db'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return admin


async def test_admin_lists_every_node_its_load_and_each_rooms_node(tmp_path):
    procs = []
    publisher = viewer = None
    async with flushed_redis(REDIS_DB):
        try:
            proc_a, base_a = await start_server(tmp_path / "a", *node_flags(tmp_path))
            procs.append(proc_a)
            proc_b, base_b = await start_server(tmp_path / "b", *node_flags(tmp_path))
            procs.append(proc_b)
            id_a = (tmp_path / "a" / "node-id").read_text().strip()
            id_b = (tmp_path / "b" / "node-id").read_text().strip()
            assert id_a != id_b
            admin = await make_admin(tmp_path, base_a)
            viewer_account = await Api.sign_up(base_a)

            # admins only, on every node
            assert (await Api(base_b).get("/api/admin/nodes"))[0] == 401
            status, body = await Api(base_b, viewer_account.token).get("/api/admin/nodes")
            assert status == 403 and body["error"]["code"] == "admin_only", body

            # a broadcast and a viewer on node B
            publisher, viewer = Publisher(base_b), Viewer(base_b)
            assert await publisher.publish("open", KEY) == 201
            assert await viewer.play("open") == 201
            await asyncio.wait_for(asyncio.shield(viewer.first_frame), 30)

            async def both_listed():
                status, body = await Api(base_a, admin.token).get("/api/admin/nodes")
                assert status == 200, body
                nodes = {n["id"]: n for n in body["nodes"]}
                b = nodes.get(id_b)
                ready = (set(nodes) == {id_a, id_b} and b["rooms"] == ["open"] and b["load"]["viewers"] == 1
                         and b["load"]["cpu_pct"] is not None)
                return body if ready else None

            body = await eventually(both_listed)
            assert body["this_node"] == id_a
            nodes = {n["id"]: n for n in body["nodes"]}
            a, b = nodes[id_a], nodes[id_b]
            assert a["this"] and not b["this"]
            assert a["url"] == base_a and b["url"] == base_b
            assert a["rooms"] == [] and a["load"]["viewers"] == 0 and a["load"]["rooms_live"] == 0
            assert b["load"]["rooms_live"] == 1 and b["load"]["publishers"] == 1
            assert b["load"]["event_loop_lag_ms"] is not None and b["load"]["cpu_pct"] >= 0
            for n in (a, b):  # beats every 0.3 s
                assert n["heartbeat_age_s"] < 5
                assert abs(datetime.fromisoformat(n["last_heartbeat"]).timestamp() - time.time()) < 5
            assert body["rooms"] == [{"room": "open", "node": id_b, "url": base_b}]
            # node B answers the same from the same registry
            status, from_b = await Api(base_b, admin.token).get("/api/admin/nodes")
            assert status == 200 and from_b["this_node"] == id_b
            assert {n["id"] for n in from_b["nodes"]} == {id_a, id_b}
            assert from_b["rooms"] == [{"room": "open", "node": id_b, "url": base_b}]

            # the admin ends the broadcast on the node the listing names: the room leaves
            # B's entry; B stops: it leaves the list
            status, ended = await Api(b["url"], admin.token).post("/api/admin/rooms/open/end")
            assert status == 200 and ended["phase"] == "ended", ended

            async def room_gone():
                _, body = await Api(base_a, admin.token).get("/api/admin/nodes")
                return body if body["rooms"] == [] else None

            await eventually(room_gone)
            stop(proc_b)

            async def b_gone():
                _, body = await Api(base_a, admin.token).get("/api/admin/nodes")
                return body if [n["id"] for n in body["nodes"]] == [id_a] else None

            await eventually(b_gone)
        finally:
            if viewer is not None:
                await viewer.close()
            if publisher is not None:
                await publisher.close()
            for proc in procs:
                stop(proc)
