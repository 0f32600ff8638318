"""The storage tests' shop: a node selling a paid room, its replays' status and media, and
what a bucket holds, decoded (tests/mediaserver/storage)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from yarl import URL

from stagepass.access_log import RedactingAccessLogger
from stagepass.app import PACKAGING, create_app
from tests.support.paywall_fixtures import Api, paid_room, paywall_settings
from tests.support.recordings import read_hls
from tests.support.replays import install
from tests.support.s3 import S3Bucket

__all__ = ["decode_bucket", "fetch", "media_left", "package_in", "source", "start_shop", "status_of", "wait_status"]

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


def package_in(app: Any, settings: Any, recording: Path, room: str = "maths") -> str:
    """Put ``recording`` in ``room``'s recordings on the shop's disk and queue it for
    packaging (then upload, with a store); its id."""
    rec_id = install(recording, settings.server.data_dir, room)
    app[PACKAGING].enqueue(settings.server.data_dir / "recordings" / room / rec_id)
    return rec_id


def decode_bucket(bucket: S3Bucket, prefix: str, out: Path):
    """Download the replay's HLS objects and decode them with PyAV."""
    (out / "hls").mkdir(parents=True)
    for key in bucket.keys(prefix + "hls/"):
        (out / "hls" / key.rsplit("/", 1)[1]).write_bytes(bucket.get(key))
    return read_hls(out)
