"""Uploading replays to S3-compatible object storage: an upload that keeps failing is
``upload_failed`` and retried by its creator, large files go up in verified parts, a node
killed mid-upload resumes at its next start, and a class recorded on one node is played
through another that shares the bucket (a real S3 API: moto's server, tests/support/s3.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.settings import Settings
from mediaserver.packaging.options import PackageOptions
from mediaserver.packaging.packager import package_recording
from mediaserver.packaging.playlist import parse_playlist
from mediaserver.storage.base import parse_storage_url
from mediaserver.storage.s3 import S3Storage
from paywall.replay_http import UPLOADS
from stagepass.access_log import RedactingAccessLogger
from stagepass.app import create_app
from tests.support.paywall_fixtures import Api, buy, paywall_settings
from tests.support.recordings import all_video, check_continuous, read_hls
from tests.support.replays import install
from tests.support.s3 import aws_env, moto_endpoint, s3  # noqa: F401 (fixtures)
from tests.support.server_process import ROOT, free_port as _free_port
from tests.support.storage_shop import (  # noqa: F401 (source: fixture)
    decode_bucket, fetch, media_left, package_in, source, start_shop, wait_status,
)
from tests.support.tcp_proxy import TcpProxy
from tests.support.worker_pins import ONE_WORKER_EACH, ONE_WORKER_EACH_FLAGS

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_an_upload_that_keeps_failing_is_upload_failed_then_retried(
        aiohttp_server, tmp_path, database_url, s3, source):
    base, app, creator, settings, _ = await start_shop(
        aiohttp_server, tmp_path, database_url, storage_url=f"s3://{s3.bucket}/f")
    uploads = app[UPLOADS]
    uploads.backoff_s = 0.05
    s3.client.delete_bucket(Bucket=s3.bucket)  # the store breaks after the start
    rec_id = package_in(app, settings, source)
    rec = await wait_status(creator, rec_id, "upload_failed")
    assert rec["error"].startswith(f"upload to s3://{s3.bucket}/f failed: ") and "bucket missing" in rec["error"]
    folder = settings.server.data_dir / "recordings" / "maths" / rec_id
    assert "hls/index.m3u8" in media_left(folder) and "recording.ts" in media_left(folder)  # nothing lost
    visitor = Api(base)
    assert (await visitor.get(f"/api/recordings/{rec_id}"))[0] == 404  # not for sale until it is stored
    stranger = await Api.sign_up(base, "creator")
    status, body = await stranger.post(f"/api/recordings/{rec_id}/upload")
    assert (status, body["error"]["code"]) == (404, "recording_not_found")
    # the bucket is back: the creator retries
    s3.client.create_bucket(Bucket=s3.bucket)
    status, body = await creator.post(f"/api/recordings/{rec_id}/upload")
    assert status == 202 and body["queued"] is True, body
    rec = await wait_status(creator, rec_id, "ready")
    assert rec["error"] is None and media_left(folder) == []
    assert f"f/maths/{rec_id}/hls/index.m3u8" in s3.keys()
    status, body = await creator.post(f"/api/recordings/{rec_id}/upload")
    assert (status, body["error"]["code"]) == (409, "not_upload_failed")


async def test_large_files_go_up_in_verified_parts(s3, tmp_path):
    from mediaserver.storage.s3 import MB

    storage = S3Storage(parse_storage_url(f"s3://{s3.bucket}/big", Path("/nonexistent")),
                        multipart_threshold=6 * MB, part_size=5 * MB)
    try:
        data = secrets.token_bytes(12 * MB + 123)
        path = tmp_path / "big.ts"
        path.write_bytes(data)
        assert await storage.put_file("r/1/recording.ts", path) == len(data)
        head = s3.client.head_object(Bucket=s3.bucket, Key="big/r/1/recording.ts")
        assert head["ETag"].strip('"').endswith("-3")  # three parts
        assert s3.get("big/r/1/recording.ts") == data
        chunks = [c async for c in storage.stream("r/1/recording.ts", 5 * MB - 7, 5 * MB + 9)]
        assert b"".join(chunks) == data[5 * MB - 7:5 * MB + 9]
        assert await storage.list("r/") == {"r/1/recording.ts": len(data)}
        assert await storage.children("") == ["r"]
        assert await storage.delete_prefix("r/1/") == 1 and s3.keys("big/") == {}
    finally:
        await storage.close()


# ---------------------------------------------------------------------- a real class, two nodes
@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_class_recorded_on_node_a_is_played_through_node_b(aiohttp_server, tmp_path, database_url, s3):
    """Node A and node B share PostgreSQL and the bucket. A creator broadcasts ~6 s on A, a
    viewer sends a danmaku; the replay ends as objects in the bucket, none of its media on
    A's disk. A stops; a buyer plays the replay through B (redirects followed, every
    segment decoded with PyAV, frames in order), with its danmaku."""
    from tests.support.paywall_fixtures import connected
    from tests.support.peers import Publisher

    base_a, app_a, creator, settings_a, srv_a = await start_shop(
        aiohttp_server, tmp_path / "a", database_url, storage_url=f"s3://{s3.bucket}/classes")
    key = (await creator.get("/api/rooms/maths/stream-key"))[1]["stream_key"]
    viewer = await Api.sign_up(base_a)
    publisher = Publisher(base_a, start=100)
    assert await publisher.publish("maths", key) == 201
    chat = await connected(base_a, creator)
    began = time.monotonic()
    try:
        await asyncio.sleep(2.5)
        sent = (await chat.call("danmaku:send", {"text": "see you in the replay"}))["danmaku"]
        await asyncio.sleep(3.5)
    finally:
        await chat.close()
        assert await publisher.delete() == 200
        await publisher.close()
    published_s = time.monotonic() - began
    recs = (await creator.get("/api/recordings?room=maths"))[1]["recordings"]
    assert len(recs) == 1, recs
    rec_id = recs[0]["id"]
    await wait_status(creator, rec_id, "ready", timeout=120)
    prefix = f"classes/maths/{rec_id}/"
    assert {prefix + "hls/index.m3u8", prefix + "manifest.json", prefix + "poster.jpg"} <= set(s3.keys(prefix))
    assert media_left(settings_a.server.data_dir / "recordings") == []
    await srv_a.close()  # node A is gone

    settings_b = paywall_settings(tmp_path / "b", database_url, storage_url=f"s3://{s3.bucket}/classes")
    srv_b = await aiohttp_server(create_app(settings_b), access_log_class=RedactingAccessLogger)
    base_b = str(srv_b.make_url("")).rstrip("/")
    creator.base, viewer.base = base_b, base_b
    listed = (await Api(base_b).get("/api/recordings?room=maths"))[1]["recordings"]
    assert [r["id"] for r in listed] == [rec_id] and listed[0]["status"] == "ready"
    await buy(viewer, "maths", "replay")
    status, minted = await viewer.post(f"/api/recordings/{rec_id}/token")
    assert status == 201 and minted["preview_ms"] is None, minted
    got, data, _ = await fetch(base_b + minted["playlist_url"])
    assert got == 200
    out = tmp_path / "played"
    (out / "hls").mkdir(parents=True)
    playlist = data.decode()
    _, segments = parse_playlist(playlist)
    for _, seg in segments:
        got, _, headers = await fetch(f"{base_b}/replay/{rec_id}/{seg.uri}")
        assert got == 302 and headers["Location"].startswith(s3.endpoint)
        got, payload, _ = await fetch(headers["Location"])
        assert got == 200
        (out / "hls" / seg.uri.split("?")[0]).write_bytes(payload)
    (out / "hls" / "index.m3u8").write_text(s3.get(prefix + "hls/index.m3u8").decode())
    _, played = read_hls(out)
    video = all_video(played)
    check_continuous(video, max_step_ms=120)
    numbers = [v[1] for v in video if v[2] > 20]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))) and numbers[0] < 130, numbers[:5]
    assert abs(sum(s.duration for s in played) - published_s) <= max(s.duration for s in played)
    got = (await viewer.get(f"/api/recordings/{rec_id}/danmaku?from_ms=0&to_ms=600000&token={minted['token']}",
                            token=None))[1]["items"]
    assert [(d["t_ms"], d["text"]) for d in got] == [(sent["t_ms"], "see you in the replay")]
    await srv_b.close()


class SlowProxy(TcpProxy):
    """A relay that passes 4 KiB every 20 ms per direction: an upload takes seconds."""

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(4096):
                await asyncio.sleep(0.02)
                writer.write(data)
                await writer.drain()


@pytest.mark.slow
async def test_a_node_killed_mid_upload_resumes_at_start(aiohttp_server, tmp_path, s3, source, caplog):
    """``stagepass serve`` uploads a packaged replay through a slow link and is killed -9
    with part of the objects in the bucket; the next start completes the upload, skipping
    what the bucket already has, and the replay becomes ready."""
    data_dir = tmp_path / "data"
    rec_id = install(source, data_dir, "open")
    folder = data_dir / "recordings" / "open" / rec_id
    manifest = await asyncio.to_thread(package_recording, folder, PackageOptions(done_status="packaged"))
    assert manifest["status"] == "packaged"
    objects = len([p for p in folder.rglob("*") if p.is_file() and p.name != "manifest.json"])
    moto_port = int(s3.endpoint.rsplit(":", 1)[1])
    proxy = await SlowProxy("127.0.0.1", moto_port).start()
    storage_url = f"s3://{s3.bucket}/k"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STAGEPASS_") and k not in ("REDIS_URL", "DATABASE_URL")}
    env.update(aws_env(f"http://127.0.0.1:{proxy.port}"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "stagepass.cli", "serve", "--port", str(_free_port()), "--data-dir", str(data_dir),
         "--rooms", "open=open-room-key", "--storage-url", storage_url, *ONE_WORKER_EACH_FLAGS],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    prefix = f"k/open/{rec_id}/"
    try:
        deadline = time.monotonic() + 60
        while not s3.keys(prefix):
            assert proc.poll() is None and time.monotonic() < deadline, "the upload never started"
            await asyncio.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        await proxy.close()
    stored_before = set(s3.keys(prefix))
    assert 1 <= len(stored_before) < objects + 1 and prefix + "manifest.json" not in stored_before, stored_before
    assert json.loads((folder / "manifest.json").read_text())["status"] == "uploading"

    caplog.set_level(logging.INFO, logger="stagepass.storage")
    settings = Settings.build(data_dir=data_dir, rooms={"open": "open-room-key"}, secret="s" * 40, storage_url=storage_url,
                              **ONE_WORKER_EACH)
    srv = await aiohttp_server(create_app(settings))
    base = str(srv.make_url("")).rstrip("/")
    deadline = time.monotonic() + 60
    while (got := await Api(base).get(f"/api/recordings/{rec_id}"))[0] != 200:  # visitors see ready ones
        assert got[0] == 404 and time.monotonic() < deadline, got
        await asyncio.sleep(0.2)
    rec = got[1]["recording"]
    assert rec["status"] == "ready" and rec["stored_bytes"] > 0 and media_left(folder) == []
    assert prefix + "manifest.json" in s3.keys(prefix) and len(s3.keys(prefix)) == objects + 1
    resumed = [r.getMessage() for r in caplog.records if "resuming upload" in r.getMessage()]
    # objects stored before the kill are skipped (a part-written one was never listed)
    assert resumed and int(resumed[0].split()[2]) >= len(stored_before) - 4, resumed
    _, played = decode_bucket(s3, prefix, tmp_path / "resumed")
    assert sum(s.duration for s in played) == pytest.approx(9.0, abs=0.1)
    await srv.close()
