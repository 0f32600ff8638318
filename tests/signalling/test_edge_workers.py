"""Real ``stagepass serve --workers 2`` nodes on loopback sharing one Redis database and one
PostgreSQL database: nodes with media workers.

The creator publishes on A; three viewers play on B, spread over both of B's workers. B
pulls the room from A once, in one worker (the room's host on B), and its other worker
gets it through a worker pipe: every viewer reads every frame number in order, A sees
exactly one relay viewer (not counted as a viewer) and ``/api/live`` counts B's viewers on
both nodes. Then B's host worker, the one holding the pull, is killed (SIGKILL): the
viewers on B's other worker resume, the pull made again there, and A still sees one relay.
A viewer then joins on the restarted worker and the new host's own viewers leave: the pull
stays for it. Then A dies and the creator reconnects on a third node, C: B pulls from C and
the viewer resumes. When B's last viewer leaves, B lets go of C."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from tests.support.frames import frames_grow, get_json, in_order, resumed_from, until
from tests.support.paywall_fixtures import flushed_redis, fresh_postgres
from tests.support.peers import Publisher, Viewer
from tests.support.server_process import ready, start_server, stop, worker_pids

REDIS_DB = 6  # this file's own database number
SECRET = "w" * 40

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def node_flags(database_url: str) -> list[str]:
    return ["--workers", "2", "--redis-url", f"redis://127.0.0.1:6379/{REDIS_DB}", "--database-url", database_url,
            "--secret", SECRET, "--rooms", "open=open-room-key", "--node-heartbeat-seconds", "0.3",
            "--recordings", "off", "--rtmp-port", "0", "--log-level", "WARNING"]


async def room(base: str) -> dict:
    return await get_json(base, "/api/rooms/open")


async def live_viewers(base: str) -> dict[str, int]:
    return {r["room"]: r["viewers"] for r in (await get_json(base, "/api/live"))["rooms"]}


def host_of(stats: dict) -> int | None:
    return next((int(w) for w, info in stats.get("workers", {}).items() if info["host"]), None)


async def test_nodes_with_workers_pull_once_per_node_and_survive_the_pulling_worker(tmp_path):
    procs = []
    peers: list = []
    async with flushed_redis(REDIS_DB), fresh_postgres() as database_url:
        try:
            flags = node_flags(database_url)
            proc_a, base_a = await start_server(tmp_path / "a", *flags, ready_path="/api/live")  # migrates first
            procs.append(proc_a)
            proc_b, base_b = await start_server(tmp_path / "b", *flags, ready_path="/api/live")
            procs.append(proc_b)
            assert sorted(worker_pids(proc_a.pid)) == sorted(worker_pids(proc_b.pid)) == [0, 1]

            publisher = Publisher(base_a)
            peers.append(publisher)
            assert await publisher.publish("open", "open-room-key") == 201

            async def on_air_everywhere() -> bool:
                return "open" in await live_viewers(base_b)

            await until(on_air_everywhere, what="the room on air on both nodes")

            viewers = [Viewer(base_b) for _ in range(3)]
            peers += viewers
            for viewer in viewers:
                assert await viewer.play("open") == 201
            seen = await asyncio.gather(*(frames_grow(v, timeout=30) for v in viewers))
            assert all(in_order(s) for s in seen), seen
            assert max(s[-1] for s in seen) - min(s[-1] for s in seen) < 30  # the same live picture
            assert all(v.audio_frames for v in viewers)

            # B: live from A, its viewers on both workers, the pull in one of them (the host)
            node_a = (tmp_path / "a" / "node-id").read_text().strip()
            edge = await room(base_b)
            assert edge["live"] and edge["origin"] == node_a and edge["viewers"] == 3, edge
            workers = edge["workers"]
            host = host_of(edge)
            assert host is not None, workers
            other = 1 - host
            assert workers[str(host)]["viewers"] >= 1 and workers[str(other)]["viewers"] >= 1, workers
            on_other = workers[str(other)]["viewers"]
            # A: exactly one relay viewer (B's one pull), not counted as a viewer
            origin = await room(base_a)
            assert origin["viewers"] == 0 and origin["relays"] == 1, origin

            async def counted_on_both() -> bool:
                return [(await live_viewers(base)).get("open") for base in (base_a, base_b)] == [3, 3]

            await until(counted_on_both, what="B's three viewers counted on both nodes")

            # B's host worker dies with the pull: the viewers on B's other worker resume,
            # pulled again from A in that worker
            os.kill(worker_pids(proc_b.pid)[host], signal.SIGKILL)
            before = [len(v.numbers) for v in viewers]

            async def resumed() -> bool:
                return sum(len(v.numbers) >= n + 30 for v, n in zip(viewers, before)) >= on_other

            await until(resumed, timeout=45, what="the viewers on B's surviving worker resuming")
            going = [(v, n) for v, n in zip(viewers, before) if len(v.numbers) >= n + 30]
            assert len(going) == on_other, [len(v.numbers) - n for v, n in zip(viewers, before)]
            assert all(in_order(v.numbers[n:]) for v, n in going)

            async def pulled_by_survivor() -> bool:
                stats = await room(base_b)
                return stats["live"] and stats["origin"] is not None and host_of(stats) == other

            await until(pulled_by_survivor, what="B pulling A again in its surviving worker")

            async def one_relay() -> bool:  # the dead pull's session left A, the new one came
                stats = await room(base_a)
                return stats["relays"] == 1 and stats["viewers"] == 0

            await until(one_relay, what="A seeing exactly one relay viewer again")

            async def survivors_counted() -> bool:
                return (await live_viewers(base_a)).get("open") == on_other

            await until(survivors_counted, what="the dead worker's viewers dropped from the count")

            # a viewer joins on the restarted worker, relayed from the new host; the host's own
            # viewers leave: the pull stays for the other worker's viewer
            await until(ready(base_b), what="both of B's workers running")
            late = Viewer(base_b)
            peers.append(late)
            assert await late.play("open") == 201
            stats = await room(base_b)
            assert host_of(stats) == other and stats["workers"][str(host)]["viewers"] == 1, stats
            await frames_grow(late, timeout=30)
            for viewer, _ in going:
                assert await viewer.delete() == 200
            seen_late = await frames_grow(late)
            assert in_order(seen_late), seen_late
            stats = await room(base_b)
            assert stats["live"] and stats["origin"] == node_a and stats["viewers"] == 1, stats
            assert (await room(base_a))["relays"] == 1

            # the origin moves: A dies and the creator reconnects on a third node, C; B's keeper
            # pulls from C (in its host worker) and the viewer on the other worker resumes
            proc_c, base_c = await start_server(tmp_path / "c", *flags, "--workers", "1", ready_path="/api/live")
            procs.append(proc_c)
            proc_a.send_signal(signal.SIGKILL)
            proc_a.wait(timeout=10)
            await publisher.close()
            tries: list[Publisher] = []

            async def published_on_c() -> bool:  # 409 live_elsewhere until A's claim expires
                if tries:
                    await tries[-1].close()
                tries.append(Publisher(base_c, start=50_000))
                peers.append(tries[-1])
                if await tries[-1].publish("open", "open-room-key") == 201:
                    return True
                assert '"live_elsewhere"' in tries[-1].error, tries[-1].error
                return False

            await until(published_on_c, what="the creator publishing on C")
            moved = await resumed_from(late, 50_000, timeout=40)  # after A's frames still queued
            assert in_order(moved), moved
            stats = await room(base_b)
            assert stats["origin"] == (tmp_path / "c" / "node-id").read_text().strip() and stats["viewers"] == 1, stats
            assert (await room(base_c))["relays"] == 1

            # B's last viewer leaves: B lets go of C
            assert await late.delete() == 200

            async def let_go() -> bool:
                stats_b, stats_c = await room(base_b), await room(base_c)
                return stats_b["origin"] is None and not stats_b["live"] and stats_c["relays"] == 0

            await until(let_go, what="B letting go of C")
        finally:
            for peer in peers:
                await peer.close()
            for proc in procs:
                stop(proc)
    log = proc_b.stderr.read().decode()
    assert "exited with signal 9" in log, log[-3000:]
