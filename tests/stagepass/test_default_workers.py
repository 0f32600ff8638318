"""``stagepass serve`` with no worker flags runs one media worker and one interaction worker
per CPU it may use (issues 12 and 22), and serves a WHIP publisher and WHEP viewers through
them; on one CPU (its affinity, as in a container limited to a cpuset), or with
``--workers 1 --interaction-workers 1``, it stays one process, media forwarded in it."""

from __future__ import annotations

import asyncio
import os
import subprocess

import aiohttp
import psutil
import pytest

from tests.support.frames import frames_grow, get_json, in_order, until
from tests.support.peers import Publisher, Viewer
from tests.support.server_process import interaction_worker_pids, start_server, stop, worker_pids

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

KEY = "open-room-key"
FLAGS = ("--rooms", f"open={KEY}", "--rtmp-port", "0", "--recordings", "off", "--log-level", "WARNING")


async def publish_and_view(base: str, viewers: int) -> list[Viewer]:
    """A WHIP publisher on room ``open`` and ``viewers`` WHEP viewers that each decode frames
    in order (the peers are returned for closing, the publisher first)."""
    publisher = Publisher(base)
    peers: list = [publisher]
    try:
        assert await publisher.publish("open", KEY) == 201, publisher.error

        async def live() -> bool:
            return (await get_json(base, "/api/rooms/open"))["live"]

        await until(live, what="the room live")
        for _ in range(viewers):
            viewer = Viewer(base)
            peers.append(viewer)
            assert await viewer.play("open") == 201, viewer.error
        seen = await asyncio.gather(*(frames_grow(v) for v in peers[1:]))
        assert all(in_order(s) for s in seen), seen
        return peers
    except BaseException:
        for peer in peers:
            await peer.close()
        raise


async def close_all(peers: list) -> None:
    for peer in peers:
        await peer.close()


def websockets_per_worker(proc: subprocess.Popen, port: int) -> list[int]:
    """Established connections on the server's port held by each interaction worker."""
    return [sum(1 for c in psutil.Process(pid).net_connections("tcp")
                if c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED)
            for pid in interaction_worker_pids(proc.pid)]


async def test_default_runs_a_media_and_an_interaction_worker_per_cpu(tmp_path):
    cpus = len(os.sched_getaffinity(0))
    if cpus < 2:
        pytest.skip("one CPU: the default is the single process (the test below)")
    proc, base = await start_server(tmp_path, *FLAGS, ready_path="/api/live", pin_workers=False)
    peers: list = []
    try:
        assert sorted(worker_pids(proc.pid)) == list(range(cpus))
        assert len(interaction_worker_pids(proc.pid)) == cpus
        # viewers are placed on the least-loaded workers: with one more viewer than workers,
        # every worker has one, the host's own and the others' relayed through the pipes
        peers = await publish_and_view(base, viewers=cpus + 1)
        room = await get_json(base, "/api/rooms/open")
        assert room["viewers"] == cpus + 1, room
        assert sorted(room["workers"]) == [str(i) for i in range(cpus)], room
        assert all(info["viewers"] >= 1 for info in room["workers"].values()), room["workers"]
        # Socket.IO WebSockets: each is handed to the least loaded interaction worker, which
        # answers the Engine.IO handshake itself
        port = int(base.rsplit(":", 1)[1])
        async with aiohttp.ClientSession() as http:
            sockets = [await http.ws_connect(f"{base}/socket.io/?EIO=4&transport=websocket") for _ in range(cpus)]
            try:
                for ws in sockets:
                    assert (await ws.receive_str(timeout=20)).startswith("0{")  # Engine.IO "open"
                assert websockets_per_worker(proc, port) == [1] * cpus
            finally:
                for ws in sockets:
                    await ws.close()
    finally:
        await close_all(peers)
        stop(proc)
    assert proc.returncode == 0, proc.stderr.read().decode()[-3000:]


@pytest.mark.parametrize("setup", ["one CPU, no flags", "--workers 1 --interaction-workers 1"])
async def test_one_cpu_or_one_worker_each_stays_one_process(tmp_path, setup):
    if setup == "one CPU, no flags":
        proc, base = await start_server(tmp_path, *FLAGS, pin_workers=False,
                                        cpus={min(os.sched_getaffinity(0))})
    else:
        proc, base = await start_server(tmp_path, *FLAGS, "--workers", "1", "--interaction-workers", "1",
                                        pin_workers=False)
    peers: list = []
    try:
        children = [int(pid) for pid in open(f"/proc/{proc.pid}/task/{proc.pid}/children").read().split()]
        assert worker_pids(proc.pid) == {} and interaction_worker_pids(proc.pid) == [], children
        peers = await publish_and_view(base, viewers=2)
        room = await get_json(base, "/api/rooms/open")
        assert room["viewers"] == 2 and not room.get("workers"), room  # media in the server's own process
    finally:
        await close_all(peers)
        stop(proc)
    assert proc.returncode == 0, proc.stderr.read().decode()[-3000:]
