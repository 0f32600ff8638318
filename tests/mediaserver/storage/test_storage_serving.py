"""Replays on S3-compatible object storage, served: a recording packaged by a server with
``STAGEPASS_STORAGE_URL=s3://...`` ends as plain HLS objects in the bucket (decoded back with
PyAV) and leaves no media on the disk; every segment request is still checked (preview cut,
refunds) and answered with a short-lived presigned redirect, or through the node with
``STAGEPASS_STORAGE_PROXY``; a folder is a store too, and ``--keep-local`` serves from the
disk first (a real S3 API: moto's server, tests/support/s3.py)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from mediaserver.packaging.playlist import parse_playlist
from mediaserver.storage import open_storage
from paywall.replay_http import RECORDINGS
from tests.support.paywall_fixtures import Api, buy
from tests.support.recordings import all_audio, all_video, check_continuous
from tests.support.s3 import moto_endpoint, s3  # noqa: F401 (fixtures)
from tests.support.storage_shop import (  # noqa: F401 (source: fixture)
    decode_bucket, fetch, media_left, package_in, source, start_shop, wait_status,
)

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_replay_is_published_to_the_bucket_and_served_by_presigned_redirects(
        aiohttp_server, tmp_path, database_url, s3, source):
    base, app, creator, settings, _ = await start_shop(
        aiohttp_server, tmp_path, database_url, storage_url=f"s3://{s3.bucket}/replays")
    rec_id = package_in(app, settings, source)
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
    rec_id = package_in(app, settings, source)
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


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_another_folder_is_a_store_too(aiohttp_server, tmp_path, database_url, source):
    """``file:///shared/folder`` (an NFS mount, say): the same upload and serving path, the
    files streamed through the node (a folder has no presigned URLs)."""
    store = tmp_path / "store"
    base, app, creator, settings, _ = await start_shop(aiohttp_server, tmp_path, database_url,
                                                       storage_url=f"file://{store}")
    rec_id = package_in(app, settings, source)
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
    rec_id = package_in(app, settings, source)
    await wait_status(creator, rec_id, "ready")
    folder = settings.server.data_dir / "recordings" / "maths" / rec_id
    assert "hls/seg-00000.ts" in media_left(folder) and f"maths/{rec_id}/hls/seg-00000.ts" in s3.keys()
    status, minted = await creator.post(f"/api/recordings/{rec_id}/token")
    got, body, _ = await fetch(f"{base}/replay/{rec_id}/seg-00000.ts?token={minted['token']}")
    assert got == 200 and body == (folder / "hls" / "seg-00000.ts").read_bytes()  # this disk first
