"""RTMP ingest with media workers: a real ``stagepass serve --workers 2 --rtmp-port P`` and
Debian's ffmpeg as the encoder (numbered frames, a tone as AAC), as OBS would publish.

The control plane reads each connection up to ``publish`` and hands the socket to the
room's host worker. A wrong key is refused by the control plane (logged without the key);
the encoder's room is hosted by one worker and WHEP viewers on both workers read every
frame number in order and hear the tone (Opus); a second encoder (told the busy error,
never ``Publish.Start``) and a WHIP publisher are refused while it is live; an encoder
that crashes comes back into the same broadcast and the viewers on both workers resume; an
encoder that hangs (SIGSTOP, its connection open) is closed after
``PUBLISHER_STALE_SECONDS`` and the next one takes over; the encoder's "stop streaming"
ends the broadcast, which the host worker recorded and which becomes a replay that
decodes, frame numbers in order. Then the next broadcast's host worker is killed (SIGKILL)
with the encoder's connection: the encoder that comes back is handed to the restarted
worker and the other worker's viewer resumes."""

from __future__ import annotations

import asyncio
import json
import os
import signal

import aiohttp
import av
import pytest

from tests.support.frames import frames_grow, get_json, in_order, resumed_from, until
from tests.support.missing_tools import missing_tool
from tests.support.peers import Publisher, Viewer, read_number
from tests.support.rtmp_encoder import FfmpegRtmpPublisher, free_port, have_ffmpeg
from tests.support.rtmp_tap import RtmpTap
from tests.support.server_process import ready, restarted, start_server, stop, worker_pids

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

KEY = "open-room-key"
STALE = 2.0


async def room_state(base: str) -> dict:
    return await get_json(base, "/api/rooms/open")


async def session_exists(base: str, viewer: Viewer) -> bool:
    """Whether the viewer's WHEP session resource is still there (its worker answers for it)."""
    async with aiohttp.ClientSession() as http:
        async with http.get(base + viewer.location) as r:
            return r.status == 200


async def test_rtmp_publishing_with_two_media_workers(tmp_path):
    if not have_ffmpeg():
        missing_tool("Debian's ffmpeg is not installed (apt-get install ffmpeg)")
    port = free_port()
    proc, base = await start_server(
        tmp_path, "--workers", "2", "--rooms", f"open={KEY}", "--rtmp-port", str(port),
        "--publisher-stale-seconds", str(STALE), "--log-level", "WARNING", ready_path="/api/live")
    rtmp = f"rtmp://127.0.0.1:{port}/live"
    encoders: list[FfmpegRtmpPublisher] = []
    peers: list = []
    tap = RtmpTap(port)  # what the second encoder is told

    def encoder(**kwargs) -> FfmpegRtmpPublisher:
        encoders.append(FfmpegRtmpPublisher(f"{rtmp}/{KEY}", **kwargs))
        return encoders[-1]

    def phase(expected: str):
        async def check() -> bool:
            return (await room_state(base))["phase"] == expected
        return check

    try:
        # a wrong key: refused by the control plane, nothing opened
        wrong = FfmpegRtmpPublisher(f"{rtmp}/not-a-key-of-any-room", audio=False)
        encoders.append(wrong)
        await wrong.start()
        assert await wrong.wait(timeout=15) > 0  # ffmpeg gave up (a timeout kills it: -9)
        assert (await get_json(base, "/api/live"))["rooms"] == []

        first = encoder()
        await first.start()

        async def live() -> bool:
            return (await room_state(base))["live"]

        await until(live, what="the RTMP room live")
        room = await room_state(base)
        assert room["codecs"] == {"video": "H264", "audio": "OPUS"}, room
        host = next(int(w) for w, info in room["workers"].items() if info["host"])
        broadcast = room["broadcast"]["id"]

        # viewers go to the least-loaded workers: one on the host, one relayed through a pipe
        viewers = [Viewer(base), Viewer(base)]
        peers.extend(viewers)
        for viewer in viewers:
            assert await viewer.play("open") == 201
        workers = (await room_state(base))["workers"]
        assert {w: info["viewers"] for w, info in workers.items()} == {"0": 1, "1": 1}, workers
        seen = await asyncio.gather(*(frames_grow(v, count=30) for v in viewers))
        assert all(in_order(s) for s in seen), seen
        now = [v.numbers[-1] for v in viewers]
        assert max(now) - min(now) < 30, now  # the same live picture (within a second) at the same moment

        async def heard() -> bool:
            return all(v.audio_frames > 20 and v.audio_peak > 1000 for v in viewers)

        await until(heard, what="the tone, AAC -> Opus, on both workers")

        # busy: a second encoder and a WHIP publisher are refused by the host; nothing changes
        second = FfmpegRtmpPublisher(f"rtmp://127.0.0.1:{await tap.start()}/live/{KEY}", audio=False, start=90_000)
        encoders.append(second)
        await second.start()
        assert await second.wait(timeout=15) > 0
        assert tap.statuses == ["NetStream.Publish.BadName"], tap.statuses
        rival = Publisher(base)
        peers.append(rival)
        assert await rival.publish("open", KEY) == 409 and '"room_busy"' in rival.error
        room = await room_state(base)
        assert room["live"] and room["broadcast"]["id"] == broadcast and room["workers"][str(host)]["host"]
        assert all(n < 90_000 for v in viewers for n in v.numbers)

        # the encoder crashes: the broadcast stays open; it comes back and the viewers resume
        await first.kill()
        await until(phase("reconnecting"), what="the room reconnecting")
        again = encoder(start=5_000)
        await again.start()
        for viewer in viewers:
            resumed = await resumed_from(viewer, 5_000)
            assert in_order(resumed), resumed
        room = await room_state(base)
        assert room["broadcast"]["id"] == broadcast and room["workers"][str(host)]["host"], room

        # the encoder hangs with its connection open: closed once stale, the next one takes over
        assert again.proc is not None
        os.kill(again.proc.pid, signal.SIGSTOP)
        await until(phase("reconnecting"), timeout=STALE + 15, what="the silent encoder closed as stale")
        last = encoder(start=9_000)
        await last.start()
        for viewer in viewers:
            resumed = await resumed_from(viewer, 9_000)
            assert in_order(resumed), resumed
        os.kill(again.proc.pid, signal.SIGCONT)

        # "stop streaming": the broadcast ends; its host recorded it and it becomes a replay
        assert (await room_state(base))["broadcast"]["id"] == broadcast
        assert await last.stop() == 0, last.stderr
        await until(phase("ended"), what="the broadcast ended")
        manifest = tmp_path / "recordings" / "open" / broadcast / "manifest.json"

        async def packaged() -> bool:
            return manifest.exists() and json.loads(manifest.read_text()).get("status") == "ready"

        await until(packaged, timeout=60, what="the replay packaged")
        info = json.loads(manifest.read_text())
        assert info["video_codec"] == "h264" and info["audio_codec"] == "opus"
        with av.open(str(manifest.parent / "hls" / "index.m3u8")) as container:
            assert {s.type for s in container.streams} == {"video", "audio"}
            replayed = [read_number(f.to_ndarray(format="bgr24")) for f in container.decode(video=0)]
        # the encoders' absences are gaps, filled when packaged (frames without a number)
        assert len(info["gaps"]) == 2, info["gaps"]
        numbered = [n for n in replayed if n]
        assert len(numbered) >= 60 and in_order(numbered), numbered
        assert numbered[0] < 5_000 <= numbered[-1] and any(n >= 9_000 for n in numbered)

        # the next broadcast's host worker dies (kill -9) with the encoder's connection: the
        # encoder comes back, is handed to the restarted worker, and the other one's viewer resumes
        fresh = encoder(start=20_000)
        await fresh.start()
        await until(live, what="a new broadcast live")
        room = await room_state(base)
        host = next(int(w) for w, info in room["workers"].items() if info["host"])
        for viewer in viewers:
            await resumed_from(viewer, 20_000, count=5)
        pids = worker_pids(proc.pid)
        os.kill(pids[host], signal.SIGKILL)
        assert await fresh.wait(timeout=15) > 0  # its connection died with the worker
        await until(restarted(proc.pid, host, pids[host]), what="the host worker restarted")
        await until(ready(base), what="both workers running")

        async def forgotten() -> bool:  # the dead worker's viewer is gone, the other one's stays
            return (await room_state(base))["viewers"] == 1

        await until(forgotten, what="the dead worker's viewer forgotten")
        (survivor,) = [v for v in viewers if await session_exists(base, v)]
        back = encoder(start=30_000)
        await back.start()
        await until(live, what="the encoder back on air")
        resumed = await resumed_from(survivor, 30_000)
        assert in_order(resumed), resumed
        room = await room_state(base)
        assert room["workers"][str(host)]["host"] and room["viewers"] == 1, room  # the restarted worker hosts
    finally:
        for peer in peers:
            await peer.close()
        for each in encoders:
            if each.proc is not None and each.proc.returncode is None:
                os.kill(each.proc.pid, signal.SIGCONT)
            await each.kill()
        await tap.close()
        stop(proc)
    log = proc.stderr.read().decode()
    assert "no room has this stream key" in log and "not-a-key-of-any-room" not in log, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
