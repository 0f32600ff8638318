"""A server killed with SIGKILL while a paid room is live, then restarted on the same data
dir: the broadcast it left open is ended at once (the dashboard no longer shows it live,
its end is its last sample before the kill); the H.264 recording it was writing decodes up
to about a second before the kill, and is still packaged into a replay with the same frames.
Real ``stagepass serve`` processes, a real aiortc publisher. (The VP8 case of the partial
recording: tests/mediaserver/recording/test_live_recording.py.)"""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.paywall_fixtures import Api, paid_room
from tests.support.recorded import assert_replay_has_the_frames_of, killed_mid_recording
from tests.support.server_process import start_server as serve, stop
from tests.support.peers import Publisher

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[3]


async def start_server(data_dir: Path) -> tuple[subprocess.Popen, str]:
    """``stagepass serve`` with the paywall on SQLite in ``data_dir``, once it answers."""
    return await serve(data_dir, "--rooms", "open=open-room-key", "--audience-sample-seconds", "0.3",
                       ready_path="/api/live")


def instant(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def sessions(api: Api) -> list[dict]:
    status, body = await api.get("/api/creator/dashboard")
    assert status == 200, body
    (room,) = body["rooms"]
    return room["sessions"]


@pytest.mark.slow
async def test_a_broadcast_cut_by_sigkill_is_ended_at_restart_and_its_replay_packaged(tmp_path):
    proc, base = await start_server(tmp_path)
    publisher = None
    try:
        creator = await Api.sign_up(base, "creator")
        room = await paid_room(creator, slug="maths")
        publisher = Publisher(base)
        assert await publisher.publish("maths", room["stream_key"]) == 201
        # live for a few seconds, sampled several times
        deadline = time.monotonic() + 30
        while True:
            found = await sessions(creator)
            if found and found[0]["live"] and found[0]["samples"] >= 5 and found[0]["duration_ms"] >= 3000:
                break
            assert time.monotonic() < deadline, found
            await asyncio.sleep(0.2)
        (live,) = found
        status, audience = await creator.get(f"/api/creator/broadcasts/{live['id']}/audience")
        last_seen_ms = audience["samples"][-1][0]
        killed_at = time.time()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        stop(proc)
        if publisher is not None:
            await publisher.close()
    directory, dec = killed_mid_recording(tmp_path, "maths")

    proc, base = await start_server(tmp_path)  # right after the kill (the old rule waited 60 s)
    try:
        creator = Api(base, creator.token)
        (ended,) = await sessions(creator)
        assert ended["id"] == live["id"] and ended["live"] is False and ended["ended_at"], ended
        # it ended at its last sample before the kill: not before what we saw, not after the kill
        assert ended["duration_ms"] >= last_seen_ms, (ended, last_seen_ms)
        assert instant(live["started_at"]) <= instant(ended["ended_at"]) <= killed_at + 1, (ended, killed_at)
        status, body = await creator.get(f"/api/creator/broadcasts/{live['id']}/audience")
        assert body["samples"][-1][0] == ended["duration_ms"]
        status, body = await creator.get("/api/live")
        assert body["rooms"] == []
        status, body = await creator.get("/api/rooms/maths")
        assert status == 200 and body["phase"] != "live", body

        # the recording of the cut broadcast is packaged as today (the packager's resume)
        deadline = time.monotonic() + 90
        while True:
            status, body = await creator.get("/api/recordings?room=maths")
            (rec,) = body["recordings"]
            if rec["status"] in ("ready", "failed"):
                break
            assert time.monotonic() < deadline, rec
            await asyncio.sleep(0.5)
        assert rec["id"] == live["id"] and rec["status"] == "ready", rec
        assert rec["duration_ms"] >= 2000, rec
        assert_replay_has_the_frames_of(directory, dec)
    finally:
        stop(proc)
