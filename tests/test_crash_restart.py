"""A server killed with SIGKILL while a paid room is live, then restarted on the same data
dir: the broadcast it left open is ended at once (the dashboard no longer shows it live,
its end is its last sample before the kill) and its recording is still packaged into a
replay. Real ``stagepass serve`` processes, a real aiortc publisher."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from tests.paywall_fixtures import Api, paid_room
from tests.peers import Publisher

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def start_server(data_dir: Path) -> tuple[subprocess.Popen, str]:
    """``stagepass serve`` with the paywall on SQLite in ``data_dir``, once it answers."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("STAGEPASS_") and k not in ("REDIS_URL", "DATABASE_URL")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "stagepass.cli", "serve", "--port", str(port), "--data-dir", str(data_dir),
         "--rooms", "open=open-room-key", "--audience-sample-seconds", "0.3"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            if proc.poll() is not None:
                raise AssertionError(f"server exited: {proc.stderr.read().decode()[-2000:]}")
            try:
                async with http.get(f"{base}/api/live") as r:
                    if r.status == 200:
                        return proc, base
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
    proc.kill()
    raise AssertionError("server did not start")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


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
            if found and found[0]["live"] and found[0]["samples"] >= 5 and found[0]["duration_ms"] >= 2500:
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
    finally:
        stop(proc)
