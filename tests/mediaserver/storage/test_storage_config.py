"""Replay storage that is set wrong: a bad ``STAGEPASS_STORAGE_URL`` is refused by name, a
store that cannot be reached or refuses the credentials at start is reported in one line,
replays stay on the local disk meanwhile, and ``stagepass storage migrate`` publishes them
once it works (a real S3 API: moto's server, tests/support/s3.py)."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from core.settings import ConfigError, Settings
from mediaserver.storage import open_storage
from mediaserver.storage.base import StorageError, parse_storage_url
from stagepass import cli
from tests.support.s3 import aws_env, moto_endpoint, s3, start_moto  # noqa: F401 (fixtures)
from tests.support.storage_shop import (  # noqa: F401 (source: fixture)
    decode_bucket, fetch, media_left, package_in, source, start_shop, wait_status,
)

pytestmark = pytest.mark.e2e


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
        rec_id = package_in(app, settings, source)
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
