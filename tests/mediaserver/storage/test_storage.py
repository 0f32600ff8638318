"""Replays on S3-compatible object storage, against a real S3 API (moto's server, tests/support/s3.py).

A recording packaged by a server with ``STAGEPASS_STORAGE_URL=s3://...`` ends as plain HLS
objects in the bucket (decoded back with PyAV) and leaves no media on the disk; every
segment request is still checked (preview cut, refunds) and answered with a short-lived
presigned redirect, or through the node with ``STAGEPASS_STORAGE_PROXY``; a store that
refuses the credentials at start is reported in one line, replays stay local, and
``stagepass storage migrate`` publishes them once it works.
"""

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

import aiohttp
import pytest
from yarl import URL

from stagepass import cli
from stagepass.access_log import RedactingAccessLogger
from stagepass.app import PACKAGING, create_app
from core.settings import ConfigError, Settings
from mediaserver.packaging.playlist import parse_playlist
from mediaserver.storage import open_storage
from mediaserver.storage.base import StorageError, parse_storage_url
from mediaserver.storage.s3 import S3Storage
from paywall.replay_http import RECORDINGS, UPLOADS
from tests.support.paywall_fixtures import Api, buy, paid_room, paywall_settings
from tests.support.s3 import S3Bucket, aws_env, moto_endpoint, s3, start_moto  # noqa: F401 (fixtures)
from mediaserver.packaging.options import PackageOptions
from mediaserver.packaging.packager import package_recording
from tests.support.tcp_proxy import TcpProxy
from tests.support.server_process import ROOT, free_port as _free_port
from tests.support.recordings import all_audio, all_video, check_continuous, read_hls
from tests.support.replays import install
from tests.support.worker_pins import ONE_WORKER_EACH, ONE_WORKER_EACH_FLAGS

pytestmark = pytest.mark.e2e

MEDIA_SUFFIXES = (".ts", ".mkv", ".webm", ".jpg", ".m3u8", ".vtt")


@pytest.fixture
def source(recorded_9s) -> Path:
    """A 9 s H.264 + Opus recording, not packaged (tests/support/replays.py); read only."""
    return recorded_9s


async def fetch(url: str, headers: dict | None = None, redirects: bool = False) -> tuple[int, bytes, dict]:
    async with aiohttp.ClientSession() as http:
        async with http.get(URL(url, encoded=True), headers=headers or {}, allow_redirects=redirects) as r:
            return r.status, await r.read(), dict(r.headers)


async def status_of(api: Api, rec_id: str) -> dict:
    status, body = await api.get(f"/api/recordings/{rec_id}")
    assert status == 200, body
    return body["recording"]


async def wait_status(api: Api, rec_id: str, wanted: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        rec = await status_of(api, rec_id)
        if rec["status"] == wanted:
            return rec
        assert rec["status"] not in ("failed", "upload_failed") or wanted in ("failed", "upload_failed"), rec
        assert time.monotonic() < deadline, rec
        await asyncio.sleep(0.2)


def media_left(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.suffix in MEDIA_SUFFIXES)


async def start_shop(aiohttp_server, tmp_path, database_url, **settings_overrides):
    settings = paywall_settings(tmp_path, database_url, **settings_overrides)
    app = create_app(settings)
    srv = await aiohttp_server(app, access_log_class=RedactingAccessLogger)
    base = str(srv.make_url("")).rstrip("/")
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator, preview_seconds=3)
    return base, app, creator, settings, srv


def decode_bucket(bucket: S3Bucket, prefix: str, out: Path):
    """Download the replay's HLS objects and decode them with PyAV."""
    (out / "hls").mkdir(parents=True)
    for key in bucket.keys(prefix + "hls/"):
        (out / "hls" / key.rsplit("/", 1)[1]).write_bytes(bucket.get(key))
    return read_hls(out)


# ---------------------------------------------------------------------- configuration
def test_storage_url_is_validated():
    assert parse_storage_url("s3://replays/class/2026/", Path("/d")).prefix == "class/2026"
    assert parse_storage_url("", Path("/d")).path == Path("/d")
    for bad, words in [("s3://A_b/x", "bucket name"), ("ftp://x", "use file:///path"),
                       ("file://rel/path", "absolute path"), ("s3://bucket/a//b", "empty")]:
        with pytest.raises(ConfigError, match=words):
            Settings.load([], {"STAGEPASS_STORAGE_URL": bad})
    s = Settings.load(["--keep-local", "--storage-proxy", "on"], {"STAGEPASS_STORAGE_URL": "s3://replays"})
    assert s.recording.keep_local is True and s.recording.storage_proxy is True and s.recording.storage_url == "s3://replays"


async def test_bad_stores_are_named_in_one_line(s3, monkeypatch):
    async def check(url: str) -> str:
        storage = open_storage(url, Path("/nonexistent"))
        try:
            with pytest.raises(StorageError) as info:
                await storage.check()
            return str(info.value)
        finally:
            await storage.close()

    assert "bucket missing" in await check("s3://no-such-bucket-here/x")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    message = await check(f"s3://{s3.bucket}")
    assert message.startswith(f"s3://{s3.bucket}: endpoint unreachable") and "\n" not in message


# ---------------------------------------------------------------------- upload + serving
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_replay_is_published_to_the_bucket_and_served_by_presigned_redirects(
        aiohttp_server, tmp_path, database_url, s3, source):
    base, app, creator, settings, _ = await start_shop(
        aiohttp_server, tmp_path, database_url, storage_url=f"s3://{s3.bucket}/replays")
    rec_id = install(source, settings.server.data_dir, "maths")
    app[PACKAGING].enqueue(settings.server.data_dir / "recordings" / "maths" / rec_id)
    rec = await wait_status(creator, rec_id, "ready")
    prefix = f"replays/maths/{rec_id}/"
    keys = s3.keys(prefix)
    names = {k[len(prefix):] for k in keys}
    assert {"manifest.json", "hls/index.m3u8", "hls/seg-00000.ts", "poster.jpg", "thumbs.jpg", "thumbs.vtt",
            "thumbs.json", "recording.ts"} <= names, names
    playlist = s3.get(prefix + "hls/index.m3u8").decode()
    _, segments = parse_playlist(playlist)
    assert all("/" not in seg.uri and "?" not in seg.uri for _, seg in segments)  # relative URIs
    assert {f"hls/{seg.uri}" for _, seg in segments} <= names
    stored_manifest = json.loads(s3.get(prefix + "manifest.json"))
    assert stored_manifest["status"] == "ready" and stored_manifest["storage"]["objects"]["hls/index.m3u8"] > 0
    assert rec["stored_bytes"] == sum(v for k, v in keys.items() if not k.endswith("manifest.json"))
    # the objects are plain HLS that decodes; no media is left on this disk
    _, played = decode_bucket(s3, prefix, tmp_path / "from-bucket")
    check_continuous(all_video(played), max_step_ms=60)
    assert sum(s.duration for s in played) == pytest.approx(9.0, abs=0.1) and all_audio(played)
    folder = settings.server.data_dir / "recordings" / "maths" / rec_id
    assert media_left(folder) == [] and (folder / "manifest.json").exists()

    # a buyer of the preview: segment 0 redirects to a presigned URL, segment 2 is refused
    viewer = await Api.sign_up(base)
    status, minted = await viewer.post(f"/api/recordings/{rec_id}/token")
    assert status == 201 and minted["preview_ms"] == 3000
    got, data, _ = await fetch(base + minted["playlist_url"])
    assert got == 200
    _, listed = parse_playlist(data.decode())
    assert len(listed) == 1  # the preview playlist ends at 3 s
    got, _, headers = await fetch(f"{base}/replay/{rec_id}/seg-00000.ts?token={minted['token']}")
    assert got == 302 and headers["Location"].startswith(s3.endpoint + f"/{s3.bucket}/{prefix}hls/seg-00000.ts?")
    assert "X-Amz-Expires=60" in headers["Location"] and headers["Cache-Control"] == "private, no-store"
    got, body, _ = await fetch(headers["Location"])
    assert got == 200 and body == s3.get(prefix + "hls/seg-00000.ts")
    assert len(segments) >= 2
    got, data, _ = await fetch(f"{base}/replay/{rec_id}/{segments[-1][1].uri}?token={minted['token']}")
    assert (got, json.loads(data)["error"]["code"]) == (403, "preview_over")
    # posters are public: redirected too
    got, _, headers = await fetch(f"{base}/replay/{rec_id}/poster.jpg")
    assert got == 302 and f"{prefix}poster.jpg" in headers["Location"]

    # after a purchase every segment redirects; the player follows and decodes them
    order = await buy(viewer, "maths", "replay")
    status, minted = await viewer.post(f"/api/recordings/{rec_id}/token")
    assert status == 201 and minted["preview_ms"] is None
    got, data, _ = await fetch(base + minted["playlist_url"])
    _, listed = parse_playlist(data.decode())
    assert len(listed) == len(segments)
    for _, seg in listed:
        got, body, _ = await fetch(f"{base}/replay/{rec_id}/{seg.uri}", redirects=True)
        assert got == 200 and body == s3.get(prefix + "hls/" + seg.uri.split("?")[0])
    # a refund: the next segment request is refused, no redirect
    library = app[RECORDINGS]
    got, _, headers = await fetch(f"{base}/replay/{rec_id}/seg-00001.ts?token={minted['token']}")
    old_url = headers["Location"]
    status, body = await creator.post(f"/api/orders/{order['id']}/refund")
    assert status == 200, body
    got, data, _ = await fetch(f"{base}/replay/{rec_id}/seg-00001.ts?token={minted['token']}")
    assert (got, json.loads(data)["error"]["code"]) == (403, "replay_required")
    assert old_url and library.proxy is False  # an old URL expires: test_presigned_urls_live_one_minute

    # the creator's dashboard shows the bytes their replays occupy in the bucket
    status, board = await creator.get("/api/creator/dashboard")
    assert status == 200 and board["rooms"][0]["stored_bytes"] == rec["stored_bytes"] == board["stored_bytes"]
    # deleting the recording deletes its objects (only its creator may)
    status, body = await viewer.call("DELETE", f"/api/recordings/{rec_id}")
    assert (status, body["error"]["code"]) == (404, "recording_not_found")
    status, body = await creator.call("DELETE", f"/api/recordings/{rec_id}")
    assert status == 200 and body == {"deleted": rec_id, "objects": len(keys)}, body
    assert s3.keys(prefix) == {} and not folder.exists()
    assert (await creator.get(f"/api/recordings/{rec_id}"))[0] == 404
    got, _, _ = await fetch(f"{base}/replay/{rec_id}/seg-00000.ts?token={minted['token']}")
    assert got == 404
    assert (await creator.get("/api/creator/dashboard"))[1]["stored_bytes"] == 0


def test_presigned_urls_live_one_minute(s3):
    """moto's server does not enforce the expiry of presigned URLs (AWS, R2 and MinIO do), so
    what is checked here is what they enforce: a SigV4 URL signed now, valid 60 s."""
    import datetime as dt
    from urllib.parse import parse_qs, urlsplit

    from mediaserver.storage import PRESIGN_SECONDS

    async def presign() -> str:
        storage = open_storage(f"s3://{s3.bucket}/x", Path("/nonexistent"))
        try:
            return await storage.presign_get("room/abc/hls/seg-00000.ts", PRESIGN_SECONDS)
        finally:
            await storage.close()

    url = asyncio.run(presign())
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert urlsplit(url).path == f"/{s3.bucket}/x/room/abc/hls/seg-00000.ts"
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256" and query["X-Amz-Signature"]
    assert int(query["X-Amz-Expires"]) == PRESIGN_SECONDS <= 120
    signed = dt.datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
    assert abs((dt.datetime.now(dt.timezone.utc) - signed).total_seconds()) < 30


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_proxy_mode_streams_with_range_and_downloads_from_the_bucket(
        aiohttp_server, tmp_path, database_url, s3, source):
    base, app, creator, settings, _ = await start_shop(
        aiohttp_server, tmp_path, database_url, storage_url=f"s3://{s3.bucket}/p", storage_proxy=True)
    await creator.patch("/api/rooms/maths", {"allow_downloads": True})
    rec_id = install(source, settings.server.data_dir, "maths")
    app[PACKAGING].enqueue(settings.server.data_dir / "recordings" / "maths" / rec_id)
    await wait_status(creator, rec_id, "ready")
    prefix = f"p/maths/{rec_id}/"
    status, minted = await creator.post(f"/api/recordings/{rec_id}/token")
    assert status == 201 and minted["download_url"], minted
    seg = s3.get(prefix + "hls/seg-00001.ts")
    url = f"{base}/replay/{rec_id}/seg-00001.ts?token={minted['token']}"
    got, body, headers = await fetch(url)
    assert got == 200 and body == seg and headers["Accept-Ranges"] == "bytes"
    got, body, headers = await fetch(url, {"Range": "bytes=188-1127"})
    assert got == 206 and body == seg[188:1128] and headers["Content-Range"] == f"bytes 188-1127/{len(seg)}"
    got, body, headers = await fetch(url, {"Range": "bytes=-100"})
    assert got == 206 and body == seg[-100:]
    got, _, headers = await fetch(url, {"Range": f"bytes={len(seg)}-"})
    assert got == 416 and headers["Content-Range"] == f"bytes */{len(seg)}"
    # the whole-file download: the segments one after the other, with Range across them
    _, segments = parse_playlist(s3.get(prefix + "hls/index.m3u8").decode())
    whole = b"".join(s3.get(prefix + "hls/" + s.uri) for _, s in segments)
    got, body, headers = await fetch(base + minted["download_url"])
    assert got == 200 and body == whole and "attachment" in headers["Content-Disposition"]
    first = len(s3.get(prefix + "hls/seg-00000.ts"))
    got, body, _ = await fetch(base + minted["download_url"], {"Range": f"bytes={first - 10}-{first + 9}"})
    assert got == 206 and body == whole[first - 10:first + 10]


# ---------------------------------------------------------------------- bad configuration
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_wrong_credentials_keep_recording_local_and_migrate_publishes_later(
        aiohttp_server, tmp_path, database_url, s3, source, monkeypatch, caplog):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG0")
    auth_proc, auth_endpoint = start_moto({"INITIAL_NO_AUTH_ACTION_COUNT": "0"})  # this one checks keys
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", auth_endpoint)
        caplog.set_level(logging.INFO, logger="stagepass.storage")
        base, app, creator, settings, srv = await start_shop(
            aiohttp_server, tmp_path, database_url, storage_url=f"s3://{s3.bucket}/r")
        lines = [r.getMessage() for r in caplog.records if r.name == "stagepass.storage" and r.levelno >= logging.ERROR]
        assert len(lines) == 1 and "\n" not in lines[0], lines
        assert lines[0].startswith(f"storage s3://{s3.bucket}/r: wrong credentials") and "local disk" in lines[0]
        rec_id = install(source, settings.server.data_dir, "maths")
        app[PACKAGING].enqueue(settings.server.data_dir / "recordings" / "maths" / rec_id)
        await wait_status(creator, rec_id, "ready")
        status, minted = await creator.post(f"/api/recordings/{rec_id}/token")
        got, body, _ = await fetch(f"{base}/replay/{rec_id}/seg-00000.ts?token={minted['token']}")
        assert got == 200 and len(body) > 1000  # served from this disk
        folder = settings.server.data_dir / "recordings" / "maths" / rec_id
        assert "hls/seg-00000.ts" in media_left(folder)
        await srv.close()
    finally:
        auth_proc.terminate()
        auth_proc.wait(10)
    # the credentials are fixed: migrate publishes the local replay
    for name, value in aws_env(s3.endpoint).items():
        monkeypatch.setenv(name, value)
    args = ["storage", "migrate", "--data-dir", str(settings.server.data_dir), "--database-url", database_url,
            "--storage-url", f"s3://{s3.bucket}/r"]
    assert await asyncio.to_thread(cli.main, args) == 0
    prefix = f"r/maths/{rec_id}/"
    assert {prefix + "hls/index.m3u8", prefix + "manifest.json"} <= set(s3.keys(prefix))
    assert media_left(folder) == []
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["status"] == "ready" and manifest["storage"]["key"] == f"maths/{rec_id}/"
    _, played = decode_bucket(s3, prefix, tmp_path / "migrated")
    assert sum(s.duration for s in played) == pytest.approx(9.0, abs=0.1)
    # run again: nothing left to do
    assert await asyncio.to_thread(cli.main, args) == 0


# ---------------------------------------------------------------------- failures and retries
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_an_upload_that_keeps_failing_is_upload_failed_then_retried(
        aiohttp_server, tmp_path, database_url, s3, source):
    base, app, creator, settings, _ = await start_shop(
        aiohttp_server, tmp_path, database_url, storage_url=f"s3://{s3.bucket}/f")
    uploads = app[UPLOADS]
    uploads.backoff_s = 0.05
    s3.client.delete_bucket(Bucket=s3.bucket)  # the store breaks after the start
    rec_id = install(source, settings.server.data_dir, "maths")
    app[PACKAGING].enqueue(settings.server.data_dir / "recordings" / "maths" / rec_id)
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


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_another_folder_is_a_store_too(aiohttp_server, tmp_path, database_url, source):
    """``file:///shared/folder`` (an NFS mount, say): the same upload and serving path, the
    files streamed through the node (a folder has no presigned URLs)."""
    store = tmp_path / "store"
    base, app, creator, settings, _ = await start_shop(aiohttp_server, tmp_path, database_url,
                                                       storage_url=f"file://{store}")
    rec_id = install(source, settings.server.data_dir, "maths")
    app[PACKAGING].enqueue(settings.server.data_dir / "recordings" / "maths" / rec_id)
    await wait_status(creator, rec_id, "ready")
    assert media_left(settings.server.data_dir / "recordings" / "maths" / rec_id) == []
    seg = (store / "maths" / rec_id / "hls" / "seg-00000.ts").read_bytes()
    status, minted = await creator.post(f"/api/recordings/{rec_id}/token")
    got, body, _ = await fetch(f"{base}/replay/{rec_id}/seg-00000.ts?token={minted['token']}")
    assert got == 200 and body == seg
    got, body, _ = await fetch(f"{base}/replay/{rec_id}/seg-00000.ts?token={minted['token']}", {"Range": "bytes=0-187"})
    assert got == 206 and body == seg[:188]
    status, body = await creator.call("DELETE", f"/api/recordings/{rec_id}")
    assert status == 200 and not (store / "maths" / rec_id).exists()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_keep_local_keeps_the_media_and_serves_it_from_disk(aiohttp_server, tmp_path, database_url, s3, source):
    base, app, creator, settings, _ = await start_shop(
        aiohttp_server, tmp_path, database_url, storage_url=f"s3://{s3.bucket}", keep_local=True)
    rec_id = install(source, settings.server.data_dir, "maths")
    app[PACKAGING].enqueue(settings.server.data_dir / "recordings" / "maths" / rec_id)
    await wait_status(creator, rec_id, "ready")
    folder = settings.server.data_dir / "recordings" / "maths" / rec_id
    assert "hls/seg-00000.ts" in media_left(folder) and f"maths/{rec_id}/hls/seg-00000.ts" in s3.keys()
    status, minted = await creator.post(f"/api/recordings/{rec_id}/token")
    got, body, _ = await fetch(f"{base}/replay/{rec_id}/seg-00000.ts?token={minted['token']}")
    assert got == 200 and body == (folder / "hls" / "seg-00000.ts").read_bytes()  # this disk first
