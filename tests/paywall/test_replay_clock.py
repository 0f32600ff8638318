"""A broadcast whose picture comes late (ICE, DTLS, an encoder that waits: 0.3-3 s after the
POST) still gets its danmaku and chapters on the right frame of the replay.

The chat's clock (``t_ms``) and the recording's timeline must start at the same instant:
if one started at the POST and the other at the first media, every danmaku would show
in the replay off by that delay. Both start at the POST (``Broadcast.started_at``): the
recorder stamps frames by their arrival on that clock and the packager fills the time
before the first picture with black (packaging/timeline.py). A real aiortc publisher
connects and then holds its first frame back for 2 s; a viewer sends danmaku and the
creator opens a poll (a chapter) while the numbered frames play; the replay is packaged,
fetched over HTTP with a replay token and decoded with PyAV: the frame on screen at each
danmaku's and at the chapter's replay time is the frame the publisher was sending then,
within 300 ms. One process, and a ``stagepass serve`` with media workers and interaction
workers (the chat's clock is then the control plane's mirror, ``BroadcastClocks``, while
the recorder runs in the media worker).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import AsyncIterator

import aiohttp
import pytest
from yarl import URL

from mediaserver.packaging.playlist import parse_playlist
from stagepass.access_log import RedactingAccessLogger
from stagepass.app import create_app
from tests.support.paywall_fixtures import Api, connected, paid_room, paywall_settings
from tests.support.peers import LatePublisher
from tests.support.recordings import all_video, read_hls
from tests.support.server_process import start_server, stop
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

FPS = 30  #: the numbered track's frame rate
FIRST = 100  #: the number of the publisher's first frame
MEDIA_DELAY_S = 2.0  #: how long after connecting the publisher sends its first frame
TOLERANCE_FRAMES = 9  #: 300 ms at 30 fps


@pytest.fixture(params=[pytest.param("one process", marks=pytest.mark.inprocess),
                        pytest.param("media and interaction workers", marks=pytest.mark.e2e)])
async def base(request, aiohttp_server, tmp_path) -> AsyncIterator[str]:
    if request.param == "one process":
        app = create_app(paywall_settings(tmp_path, f"sqlite:///{tmp_path / 'paywall.db'}"))
        server = await aiohttp_server(app, access_log_class=RedactingAccessLogger)
        yield str(server.make_url("")).rstrip("/")
        return
    proc, url = await start_server(tmp_path / "node", "--workers", "2", "--interaction-workers", "2")
    try:
        yield url
    finally:
        stop(proc)


async def fetch(url: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as http:
        async with http.get(URL(url, encoded=True)) as r:
            return r.status, await r.read()


async def played_replay(base: str, creator: Api, out: Path) -> tuple[str, str, list[tuple]]:
    """Wait for the room's one recording to be ready, fetch its playlist and segments with
    the creator's replay token and decode them: (recording id, token, video frames as
    ``(replay ms, number, brightness, key)``)."""
    async def recordings() -> list[dict]:
        return (await creator.get("/api/recordings?room=maths"))[1]["recordings"]

    (rec,) = await recordings()
    deadline = time.monotonic() + 90
    while (await creator.get(f"/api/recordings/{rec['id']}"))[1]["recording"]["status"] != "ready":
        assert time.monotonic() < deadline, "the replay was not packaged in 90 s"
        await asyncio.sleep(0.2)
    status, minted = await creator.post(f"/api/recordings/{rec['id']}/token")
    assert status == 201, minted
    status, playlist = await fetch(base + minted["playlist_url"])
    assert status == 200
    (out / "hls").mkdir(parents=True)
    _, segments = parse_playlist(playlist.decode())
    lines = ["#EXTM3U"]
    for _, seg in segments:
        status, payload = await fetch(f"{base}/replay/{rec['id']}/{seg.uri}")
        assert status == 200
        name = seg.uri.split("?")[0]
        (out / "hls" / name).write_bytes(payload)
        lines += [f"#EXTINF:{seg.duration_ms / 1000:.3f},", name]
    (out / "hls" / "index.m3u8").write_text("\n".join(lines + ["#EXT-X-ENDLIST", ""]))
    _, played = read_hls(out)
    return rec["id"], minted["token"], all_video(played)


def shown_at(video: list[tuple], t_ms: float) -> int:
    """The number of the frame on screen at replay time ``t_ms`` (the last one shown by then)."""
    return max((v for v in video if v[0] <= t_ms), key=lambda v: v[0])[1]


async def test_danmaku_land_on_their_frame_when_the_picture_starts_late(base, tmp_path):
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator, ticket_price=0)
    key = (await creator.get("/api/rooms/maths/stream-key"))[1]["stream_key"]
    viewer = await Api.sign_up(base)
    chat = await connected(base, viewer)
    host = await connected(base, creator)
    publisher = LatePublisher(base, start=FIRST)
    track = publisher.video
    try:
        posted = time.time()
        assert await publisher.publish("maths", key) == 201
        await wait_for(lambda: publisher.pc.connectionState == "connected", timeout=15)
        connected_after = time.time() - posted
        # between the POST and the picture: the broadcast is open, its clock runs
        early = (await chat.call("danmaku:send", {"text": "is it on?"}))["danmaku"]
        await asyncio.sleep(MEDIA_DELAY_S)
        track.go.set()
        await wait_for(lambda: track.first_sent is not None, timeout=5)
        sent: list[tuple[dict, float]] = []
        for text in ("hello", "good point"):
            await asyncio.sleep(1.5)
            at = time.time()
            sent.append(((await chat.call("danmaku:send", {"text": text}))["danmaku"], track.number_at(at)))
        at = time.time()
        poll = (await host.call("poll:open", {"question": "Clear?", "options": ["yes", "no"]}))["poll"]
        poll_number = track.number_at(at)
        await asyncio.sleep(1.5)
    finally:
        await chat.close()
        await host.close()
    assert await publisher.delete() == 200
    await publisher.close()
    print(f"connected {connected_after * 1000:.0f} ms after the POST, first frame "
          f"{(track.first_sent - posted) * 1000:.0f} ms after it")

    rec_id, token, video = await played_replay(base, creator, tmp_path / "played")
    pictures = [v for v in video if v[2] > 20]  # numbered frames (filler is black)
    assert pictures and pictures[0][1] <= FIRST + TOLERANCE_FRAMES, pictures[:3]
    print(f"the replay shows frame {pictures[0][1]} first, at {pictures[0][0]:.0f} ms")
    status, body = await creator.get(f"/api/recordings/{rec_id}/danmaku?from_ms=0&to_ms=600000&token={token}",
                                     token=None)
    assert status == 200, body
    replayed = {d["id"]: d["t_ms"] for d in body["items"]}
    assert set(replayed) == {early["id"]} | {d["id"] for d, _ in sent}
    for danmaku, number in sent:
        t_ms = replayed[danmaku["id"]]
        assert t_ms == danmaku["t_ms"]
        shown = shown_at(video, t_ms)
        print(f"danmaku {danmaku['text']!r}: t_ms {t_ms}, frame shown {shown}, sent during {number:.1f}")
        assert abs(shown - number) <= TOLERANCE_FRAMES, (danmaku, shown, number)
    # the chapter of the poll opened meanwhile is on the same clock
    status, body = await creator.get(f"/api/recordings/{rec_id}/chapters.vtt?format=json&token={token}", token=None)
    assert status == 200, body
    (chapter,) = body["chapters"]
    assert (chapter["kind"], chapter["id"], chapter["t_ms"]) == ("poll", poll["id"], poll["opened_t_ms"]), chapter
    assert abs(shown_at(video, chapter["t_ms"]) - poll_number) <= TOLERANCE_FRAMES, (chapter, poll_number)
    # the danmaku sent before the picture: never negative, and shown no later than the picture
    assert 0 <= replayed[early["id"]] <= pictures[0][0] + TOLERANCE_FRAMES * 1000 / FPS, (early, pictures[0])
