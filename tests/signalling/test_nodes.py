"""Three real ``stagepass serve`` nodes on loopback sharing one Redis database and one
PostgreSQL database: the publisher on A, aiortc viewers on B and C (edges pulling the
room from A over WHEP with relay tokens) read every frame number; publishing on B is
refused while A is live; ``/api/live`` counts every node's viewers on every node; B is
killed and its viewer plays again from C; B restarts, A is killed and the creator
reconnects on B: C pulls from B and its viewers resume; the last viewer leaving C lets go."""

from __future__ import annotations

import asyncio
import signal

import pytest

from tests.support.frames import frames_grow, get_json, in_order, until
from tests.support.paywall_fixtures import flushed_redis, fresh_postgres
from tests.support.peers import Publisher, Viewer
from tests.support.server_process import start_server, stop

REDIS_DB = 4  # this file's own database number
SECRET = "n" * 40

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def node_flags(database_url: str) -> list[str]:
    return ["--redis-url", f"redis://127.0.0.1:6379/{REDIS_DB}", "--database-url", database_url,
            "--secret", SECRET, "--rooms", "open=open-room-key", "--node-heartbeat-seconds", "0.3",
            "--recordings", "off", "--log-level", "WARNING"]


async def live_viewers(base: str) -> dict[str, int]:
    return {r["room"]: r["viewers"] for r in (await get_json(base, "/api/live"))["rooms"]}


async def test_three_nodes_share_a_room_through_edges(tmp_path):
    procs = []
    peers = []
    async with flushed_redis(REDIS_DB), fresh_postgres() as database_url:
        try:
            flags = node_flags(database_url)
            a = await start_server(tmp_path / "a", *flags, ready_path="/api/live")  # migrates first
            procs.append(a[0])
            b, c = await asyncio.gather(start_server(tmp_path / "b", *flags, ready_path="/api/live"),
                                        start_server(tmp_path / "c", *flags, ready_path="/api/live"))
            procs += [b[0], c[0]]
            (_, base_a), (proc_b, base_b), (_, base_c) = a, b, c

            publisher = Publisher(base_a)
            peers.append(publisher)
            assert await publisher.publish("open", "open-room-key") == 201

            async def on_air() -> bool:
                return "open" in await live_viewers(base_c)

            await until(on_air, what="the room on air cluster-wide")

            # publishing on another node while A is live: 409 naming the origin, nothing changed
            second = Publisher(base_b)
            peers.append(second)
            assert await second.publish("open", "open-room-key") == 409
            assert '"live_elsewhere"' in second.error and base_a.split("//")[1] in second.error
            assert (await get_json(base_b, "/api/rooms/open"))["live"] is False

            viewer_b, viewer_c = Viewer(base_b), Viewer(base_c)
            peers += [viewer_b, viewer_c]
            assert await viewer_b.play("open") == 201
            assert await viewer_c.play("open") == 201
            seen_b, seen_c = await asyncio.gather(frames_grow(viewer_b), frames_grow(viewer_c))
            assert in_order(seen_b) and in_order(seen_c), (seen_b, seen_c)
            assert max(seen_b[-1], seen_c[-1]) - min(seen_b[-1], seen_c[-1]) < 30  # the same live picture
            assert viewer_b.audio_frames and viewer_c.audio_frames

            room_a = await get_json(base_a, "/api/rooms/open")
            assert room_a["viewers"] == 0 and room_a["relays"] == 2  # one pull per edge node
            for base in (base_b, base_c):
                edge = await get_json(base, "/api/rooms/open")
                assert edge["live"] and edge["viewers"] == 1 and edge["origin"] is not None

            async def counted_everywhere() -> bool:
                counts = [(await live_viewers(base)).get("open") for base in (base_a, base_b, base_c)]
                return counts == [2, 2, 2]

            await until(counted_everywhere, what="two viewers counted on every node")

            # B dies: its viewer plays again from C (the player's retry), C goes on
            proc_b.send_signal(signal.SIGKILL)
            proc_b.wait(timeout=10)
            await viewer_b.close()
            again = Viewer(base_c)
            peers.append(again)
            assert await again.play("open") == 201
            seen_again, seen_c = await asyncio.gather(frames_grow(again), frames_grow(viewer_c))
            assert in_order(seen_again) and in_order(seen_c)

            async def b_dropped() -> bool:
                nodes = {r["room"]: r["viewers"] for r in (await get_json(base_a, "/api/live"))["rooms"]}
                return nodes.get("open") == 2  # C's two viewers; B's entry expired with its heartbeats

            await until(b_dropped, what="the dead node's viewers dropped from the count")

            # the origin dies; its creator reconnects on B (restarted): C re-pulls, its viewers resume
            proc_b, base_b = await start_server(tmp_path / "b", *flags, ready_path="/api/live")
            procs.append(proc_b)
            procs[0].send_signal(signal.SIGKILL)
            procs[0].wait(timeout=10)
            await publisher.close()
            tries: list[Publisher] = []

            async def published_on_b() -> bool:  # 409 live_elsewhere until A's claim expires
                if tries:
                    await tries[-1].close()
                tries.append(Publisher(base_b, start=50_000))
                peers.append(tries[-1])
                if await tries[-1].publish("open", "open-room-key") == 201:
                    return True
                assert '"live_elsewhere"' in tries[-1].error, tries[-1].error
                return False

            await until(published_on_b, what="the creator publishing on B")
            for viewer in (viewer_c, again):
                resumed = await frames_grow(viewer, timeout=30)
                assert resumed[-1] >= 50_000 and in_order([n for n in resumed if n >= 50_000]), resumed
            assert (await get_json(base_c, "/api/rooms/open"))["origin"] is not None

            # the last viewer leaving C lets go of the origin
            assert await viewer_c.delete() == 200
            assert await again.delete() == 200

            async def let_go() -> bool:
                edge = await get_json(base_c, "/api/rooms/open")
                return edge["origin"] is None and not edge["live"]

            await until(let_go, what="C letting go of A")
        finally:
            for peer in peers:
                await peer.close()
            for proc in procs:
                stop(proc)
