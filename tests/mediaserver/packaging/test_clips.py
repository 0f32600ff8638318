"""Clips: cut from a packaged replay (copy on keyframes, only the head re-encoded
otherwise), decoded back frame by frame; the creator's API, free teasers, access for
buyers only otherwise, and the clip's danmaku on its own clock."""

from __future__ import annotations

import math

import aiohttp
import av
import pytest

from mediaserver.packaging.clips import cut_clip
from paywall.http import PAYWALL
from tests.support.paywall_fixtures import Api, buy
from tests.support.peers import read_number

pytestmark = pytest.mark.inprocess

FPS = 30


def decode(playlist) -> tuple[list[int], list[float], float]:
    """Frame numbers, frame times (s) and seconds of audio of an HLS clip."""
    numbers, times, samples = [], [], 0
    with av.open(str(playlist)) as c:
        for frame in c.decode(video=0):
            numbers.append(read_number(frame.to_ndarray(format="bgr24")))
            times.append(float(frame.pts * frame.time_base))
    with av.open(str(playlist)) as c:
        for frame in c.decode(audio=0):
            samples += frame.samples
    return numbers, times, samples / 48000


@pytest.mark.parametrize("start,end,first,reencoded", [
    (2000, 5000, 60, False),  # on the keyframe at 2 s: all copied
    (2500, 6100, 75, True),  # between keyframes: 2.5-4 s re-encoded, the rest copied
    (4010, 4500, 120, False),  # 10 ms after the keyframe at 4 s: starts on it, all copied
])
def test_cut_copies_from_keyframes_and_reencodes_only_the_head(packaged, tmp_path, start, end, first,
                                                               reencoded):
    info = cut_clip(packaged / "hls" / "index.m3u8", start, end, tmp_path / "clip")
    numbers, times, audio_s = decode(tmp_path / "clip" / "index.m3u8")
    assert numbers == list(range(first, first + len(numbers)))
    last = math.ceil(end * FPS / 1000) - 1
    assert numbers[-1] == last
    assert 0 <= times[0] < 0.04 and all(b > a for a, b in zip(times, times[1:]))
    assert (info["reencoded_ms"] > 0) == reencoded
    assert [s["file"] for s in info["segments"]] == (["head.ts", "body.ts"] if reencoded else ["body.ts"])
    text = (tmp_path / "clip" / "index.m3u8").read_text()
    assert ("#EXT-X-DISCONTINUITY" in text) == reencoded and text.rstrip().endswith("#EXT-X-ENDLIST")
    assert abs(audio_s - (end - start) / 1000) < 0.1
    if reencoded:  # the head ends exactly where the copied keyframe starts
        assert info["segments"][0]["duration_ms"] == 4000 - start


async def test_creator_cuts_a_clip_buyers_watch_it_and_teasers_are_public(shop):
    from interaction.assembly import INTERACTION
    from interaction.models import Danmaku

    base, app, creator, rec_id, _ = shop
    visitor, buyer, other_creator = Api(base), await Api.sign_up(base), await Api.sign_up(base, "creator")
    # bad input: precise refusals, nothing cut
    for body, status, code in [
        ({"start_ms": 3000, "end_ms": 2000}, 400, "invalid_clip"),
        ({"start_ms": 0, "end_ms": 500}, 400, "invalid_clip"),
        ({"start_ms": 0, "end_ms": 60_000}, 400, "invalid_clip"),
        ({"start_ms": -5, "end_ms": 2000}, 400, "invalid_clip"),
        ({"start_ms": "1", "end_ms": 2000}, 400, "invalid_clip"),
        ({"start_ms": 1000, "end_ms": 3000, "title": "x" * 121}, 400, "invalid_clip"),
        ({"start_ms": 1000, "end_ms": 3000, "teaser": "yes"}, 400, "invalid_clip"),
        ({"start_ms": 1000, "end_ms": 3000, "price": 5}, 400, "invalid_clip"),
    ]:
        got, resp = await creator.post(f"/api/recordings/{rec_id}/clips", body)
        assert (got, resp["error"]["code"]) == (status, code), body
    assert (await visitor.post(f"/api/recordings/{rec_id}/clips", {"start_ms": 0, "end_ms": 2000}))[0] == 401
    got, resp = await other_creator.post(f"/api/recordings/{rec_id}/clips", {"start_ms": 0, "end_ms": 2000})
    assert (got, resp["error"]["code"]) == (404, "recording_not_found")
    assert (await creator.get("/api/clips"))[1]["clips"] == []

    got, clip = await creator.post(f"/api/recordings/{rec_id}/clips",
                                   {"start_ms": 2500, "end_ms": 6500, "title": "The proof"})
    assert got == 201, clip
    assert clip["teaser"] is False and clip["reencoded_ms"] == 1500 and clip["room"] == "maths"
    room = await app[PAYWALL].catalog.get("maths")
    async with app[INTERACTION].server.db() as s:
        for t, text in [(2000, "before"), (3000, "in the clip"), (6400, "at the end"), (7000, "after")]:
            s.add(Danmaku(room_id=room.id, user_id=buyer.user["id"], broadcast=rec_id, t_ms=t, text=text,
                          color="#ffffff", mode="scroll"))
        await s.commit()
    # not a teaser: for those who own the replay only
    for api in (visitor, other_creator, buyer):
        assert (await api.get(f"/api/clips/{clip['id']}"))[0] == 404
        assert (await api.get(f"/clips/{clip['id']}/index.m3u8"))[0] == 404
        assert (await api.get("/api/clips?room=maths"))[1]["clips"] == []
    await buy(buyer, "maths", "replay")
    got, seen = await buyer.get(f"/api/clips/{clip['id']}")
    assert got == 200 and seen["title"] == "The proof" and seen["manage"] is False
    got, playlist = await buyer.get(seen["playlist_url"])
    assert got == 200 and "head.ts" in playlist and "body.ts" in playlist
    got, danmaku = await buyer.get(f"/api/clips/{clip['id']}/danmaku")
    assert [(d["t_ms"], d["text"]) for d in danmaku["items"]] == [(500, "in the clip"), (3900, "at the end")]
    # the creator makes it a free teaser: everyone sees it, in the room's list and the catalog's
    assert (await buyer.patch(f"/api/clips/{clip['id']}", {"teaser": True}))[0] == 404
    got, edited = await creator.patch(f"/api/clips/{clip['id']}", {"teaser": True})
    assert got == 200 and edited["teaser"] is True
    got, resp = await creator.patch(f"/api/clips/{clip['id']}", {"start_ms": 0})
    assert (got, resp["error"]["code"]) == (400, "invalid_clip")
    got, listed = await visitor.get("/api/clips?teaser=1")
    assert [c["id"] for c in listed["clips"]] == [clip["id"]] and listed["clips"][0]["room_title"] == "Live maths"
    got, playlist = await visitor.get(f"/clips/{clip['id']}/index.m3u8")
    assert got == 200
    for name in ("head.ts", "body.ts"):
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/clips/{clip['id']}/{name}") as r:
                assert r.status == 200 and r.content_type == "video/mp2t" and len(await r.read()) > 1000
    for bad in ("../clip.json", "clip.json", "seg-00000.ts", "%2e%2e%2fclip.json"):
        assert (await visitor.get(f"/clips/{clip['id']}/{bad}"))[0] == 404, bad
    assert (await visitor.get(f"/api/clips/{clip['id']}/danmaku"))[0] == 200
    # deleting: the creator only
    assert (await visitor.call("DELETE", f"/api/clips/{clip['id']}"))[0] == 401
    assert (await buyer.call("DELETE", f"/api/clips/{clip['id']}"))[0] == 404
    assert (await creator.call("DELETE", f"/api/clips/{clip['id']}"))[0] == 200
    assert (await visitor.get(f"/clips/{clip['id']}/index.m3u8"))[0] == 404
    assert (await visitor.get("/api/clips?teaser=1"))[1]["clips"] == []
