"""A real ``stagepass serve --workers 2``: the control plane and two media worker processes.

The publisher's room is hosted by one worker; viewers are spread over both, the other
worker relaying the room through a worker pipe: every viewer reads every frame number in
order. Then the worker that hosts only viewers is killed (SIGKILL): the host's viewers go
on, the dead worker is restarted (logged with its index), and a viewer that reconnects is
placed on it and plays, relayed again. Then the host dies: the creator reconnects to the
restarted worker, which hosts the room from then on, and the other worker's viewer
resumes, relayed from there; that broadcast, recorded on its host, is packaged into a
replay once the creator ends it."""

from __future__ import annotations

import asyncio
import json
import os
import signal

import aiohttp
import pytest

from tests.support.frames import frames_grow, get_json, in_order, resumed_from, until
from tests.support.peers import Publisher, Viewer
from tests.support.server_process import ready, restarted, start_server, stop, worker_pids

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

FLAGS = ("--workers", "2", "--rooms", "open=open-room-key", "--rtmp-port", "0", "--log-level", "WARNING")


async def test_two_workers_relay_a_room_and_survive_a_worker(tmp_path):
    proc, base = await start_server(tmp_path, *FLAGS, ready_path="/api/live")
    peers: list = []
    try:
        pids = worker_pids(proc.pid)
        assert sorted(pids) == [0, 1]
        publisher = Publisher(base)
        peers.append(publisher)
        assert await publisher.publish("open", "open-room-key") == 201

        async def live() -> bool:
            return (await get_json(base, "/api/rooms/open"))["live"]

        await until(live, what="the room live")
        viewers = [Viewer(base) for _ in range(3)]
        peers += viewers
        for viewer in viewers:
            assert await viewer.play("open") == 201
        seen = await asyncio.gather(*(frames_grow(v) for v in viewers))
        assert all(in_order(s) for s in seen), seen
        assert max(s[-1] for s in seen) - min(s[-1] for s in seen) < 30  # the same live picture
        assert all(v.audio_frames for v in viewers)

        # a second publisher is refused by the host worker, as in one process; nothing changes
        second = Publisher(base)
        peers.append(second)
        assert await second.publish("open", "open-room-key") == 409 and '"room_busy"' in second.error
        # a viewer's session resource answers from the worker that owns it
        async with aiohttp.ClientSession() as http:
            async with http.get(base + viewers[0].location) as r:
                assert r.status == 200 and (await r.json())["rendition"] == "full"
            sdp = viewers[0].pc.localDescription.sdp
            ufrag, pwd = (next(line.split(":", 1)[1] for line in sdp.splitlines() if line.startswith(f"a=ice-{k}:"))
                          for k in ("ufrag", "pwd"))
            fragment = f"a=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\n" \
                       "a=end-of-candidates\r\n"
            async with http.patch(base + viewers[0].location, data=fragment,
                                  headers={"Content-Type": "application/trickle-ice-sdpfrag"}) as r:
                assert r.status == 204, await r.text()

        room = await get_json(base, "/api/rooms/open")
        workers = room["workers"]
        host = next(int(w) for w, info in workers.items() if info["host"])
        other = 1 - host
        assert workers[str(host)]["viewers"] >= 1 and workers[str(other)]["viewers"] >= 1, workers
        assert room["viewers"] == 3

        # the worker with viewers only dies: the host's viewers go on, it is restarted
        killed = pids[other]
        os.kill(killed, signal.SIGKILL)
        before = [len(v.numbers) for v in viewers]

        async def host_viewers_go_on() -> list[Viewer]:  # a second of frames each, once the kill is past
            going = [v for v, n in zip(viewers, before) if len(v.numbers) >= n + 30]
            return going if len(going) >= workers[str(host)]["viewers"] else []

        going = await until(host_viewers_go_on, timeout=15, what="the host's viewers playing on")
        assert len(going) == workers[str(host)]["viewers"], [len(v.numbers) - n for v, n in zip(viewers, before)]
        assert all(in_order(v.numbers[n:]) for v, n in zip(viewers, before) if v in going)

        await until(restarted(proc.pid, other, killed), what="the killed worker restarted")
        await until(ready(base), what="both workers running")

        async def forgotten() -> bool:
            return (await get_json(base, "/api/rooms/open"))["viewers"] == len(going)

        await until(forgotten, what="the dead worker's viewers forgotten")
        for viewer in viewers:
            if viewer not in going:
                await viewer.close()
        again = Viewer(base)  # the player reconnects: placed on the restarted (least-loaded) worker
        peers.append(again)
        assert await again.play("open") == 201
        assert (await get_json(base, "/api/rooms/open"))["workers"][str(other)]["viewers"] == 1
        resumed, *rest = await asyncio.gather(frames_grow(again), *(frames_grow(v) for v in going))
        assert in_order(resumed) and all(in_order(s) for s in rest)

        # the host dies: the creator reconnects, to the restarted (least-loaded) worker, and the
        # other worker's viewer resumes, relayed from the new host
        first_broadcast = (await get_json(base, "/api/rooms/open"))["broadcast"]["id"]
        pids = worker_pids(proc.pid)
        os.kill(pids[host], signal.SIGKILL)
        await until(restarted(proc.pid, host, pids[host]), what="the host restarted")

        await until(ready(base), what="both workers running")
        await publisher.close()
        creator = Publisher(base, start=50_000)
        peers.append(creator)
        assert await creator.publish("open", "open-room-key") == 201
        resumed = await resumed_from(again, 50_000)
        assert in_order(resumed), resumed
        room = await get_json(base, "/api/rooms/open")
        assert room["workers"][str(host)] == {"viewers": 0, "host": True} and room["viewers"] == 1, room

        # the creator ends the broadcast: the new host's recording is packaged into a replay
        broadcast = room["broadcast"]["id"]
        assert broadcast != first_broadcast  # the dead host's broadcast ended with it
        assert await creator.delete() == 200
        manifest = tmp_path / "recordings" / "open" / broadcast / "manifest.json"

        async def packaged() -> bool:
            return manifest.exists() and json.loads(manifest.read_text()).get("status") == "ready"

        await until(packaged, what="the replay packaged")
        assert (await get_json(base, "/api/rooms/open"))["phase"] == "ended"
    finally:
        for peer in peers:
            await peer.close()
        stop(proc)
    log = proc.stderr.read().decode()
    assert f"media worker {other} (pid {killed}) exited with signal 9" in log, log[-3000:]
