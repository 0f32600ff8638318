"""WHIP/WHEP HTTP behaviour: status codes, headers, and that errors change nothing."""

import re

import aiohttp
import pytest

from signalling.whip import ROOMS
from tests.support.live_server import KEY
from tests.support.waiting import wait_for
from tests.support.peers import Publisher, Viewer
from tests.support.whip_offers import make_offer, post

pytestmark = pytest.mark.inprocess


def assert_untouched(app, room="demo"):
    r = app[ROOMS].get(room)
    assert r is None or (r.publisher is None and not r.subscribers)


@pytest.fixture
async def publish_offer():
    return await make_offer()


@pytest.mark.parametrize(
    "path,token,status,code",
    [
        ("/whip/nosuchroom", KEY, 404, "room_not_found"),
        ("/whip/..%2Fetc", KEY, 404, "room_not_found"),
        ("/whip/demo", None, 401, "token_required"),
        ("/whip/demo", "wrong-key-000", 403, "wrong_stream_key"),
        ("/whip/demo", "other-key-123", 403, "wrong_stream_key"),  # another room's key
    ],
)
async def test_publish_refusals(server, publish_offer, path, token, status, code):
    base, app = server
    got, body, _ = await post(base, path, publish_offer, token=token)
    assert (got, body["error"]["code"]) == (status, code)
    assert body["error"]["message"]
    assert_untouched(app)


async def test_wrong_content_type_is_415(server, publish_offer):
    base, app = server
    got, body, _ = await post(base, "/whip/demo", publish_offer, content_type="text/plain", token=KEY)
    assert got == 415 and body["error"]["code"] == "unsupported_media_type"
    assert_untouched(app)


async def test_oversized_offer_is_413(server, settings):
    base, app = server
    body = "v=0\r\n" + "a=x-padding:" + "x" * settings.media.max_sdp_bytes + "\r\n"
    got, resp, _ = await post(base, "/whip/demo", body, token=KEY)
    assert got == 413 and resp["error"]["code"] == "offer_too_large"
    assert_untouched(app)


@pytest.mark.parametrize(
    "mangle,fragment",
    [
        (lambda s: "hello", "not an SDP offer"),
        (lambda s: b"\xff\xfe v=0", "UTF-8"),
        (lambda s: s.split("m=")[0], "no audio or video"),
        (lambda s: s.replace("a=sendonly", "a=recvonly"), "must send media"),
        (lambda s: "\r\n".join(l for l in s.split("\r\n") if not l.startswith("a=ice-ufrag")), "ICE"),
        (lambda s: "\r\n".join(l for l in s.split("\r\n") if not l.startswith("a=fingerprint")), "fingerprint"),
        (lambda s: s + "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n", "only audio and video"),
        (lambda s: re.sub(r"m=video \d+", "m=video notaport", s), "unparsable"),
    ],
)
async def test_bad_offers_are_400_and_change_nothing(server, publish_offer, mangle, fragment):
    base, app = server
    got, body, _ = await post(base, "/whip/demo", mangle(publish_offer), token=KEY)
    assert got == 400, body
    assert body["error"]["code"] == "bad_offer" and fragment in body["error"]["message"]
    assert_untouched(app)


async def test_publisher_without_a_forwardable_codec_is_406(server):
    base, app = server
    offer = await make_offer(kinds=("audio",))
    offer = offer.replace("opus/48000/2", "foo/48000/2")
    got, body, _ = await post(base, "/whip/demo", offer, token=KEY)
    assert got == 406 and "OPUS" in body["error"]["message"]
    assert_untouched(app)


async def test_whip_created_headers_cors_and_delete(server):
    base, app = server
    publisher = Publisher(base)
    assert await publisher.publish("demo", KEY) == 201
    assert publisher.location.startswith("/whip/demo/")
    assert publisher.answer.startswith("v=0")
    room = app[ROOMS].get("demo")
    async with aiohttp.ClientSession() as http:
        async with http.options(base + "/whip/demo", headers={"Origin": "http://example.org"}) as r:
            assert r.status == 204
            assert r.headers["Access-Control-Allow-Origin"] == "*"
            assert "Authorization" in r.headers["Access-Control-Allow-Headers"]
            assert "Location" in r.headers["Access-Control-Expose-Headers"]
            assert r.headers["Accept-Post"] == "application/sdp"
        async with http.patch(base + publisher.location, data="a=candidate",
                              headers={"Content-Type": "application/trickle-ice-sdpfrag",
                                       "Authorization": f"Bearer {KEY}"}) as r:
            assert r.status == 400  # trickle ICE is taken (tests/signalling/test_trickle.py), not this fragment
        # DELETE with the wrong key is refused and changes nothing
        async with http.delete(base + publisher.location, headers={"Authorization": "Bearer nope-nope-nope"}) as r:
            assert r.status == 403
        assert room.publisher is not None
        async with http.delete(base + "/whip/demo/doesnotexist") as r:
            assert r.status == 404
    assert await publisher.delete() == 200
    assert room.publisher is None
    async with aiohttp.ClientSession() as http:
        async with http.delete(base + publisher.location, headers={"Authorization": f"Bearer {KEY}"}) as r:
            assert r.status == 404  # already gone
    await publisher.close()


async def test_second_publisher_is_409_while_the_first_is_live(server):
    base, app = server
    first = Publisher(base)
    assert await first.publish("demo", KEY) == 201
    room = app[ROOMS].get("demo")
    await wait_for(lambda: room.live and room.publisher.last_media() is not None, timeout=10)
    session = room.publisher
    second = Publisher(base)
    assert await second.publish("demo", KEY) == 409
    assert room.publisher is session  # unchanged
    await second.close()
    await first.close()


async def test_stale_publisher_is_replaced(server, settings):
    base, app = server
    settings.media.publisher_stale_seconds = 0.5
    first = Publisher(base)
    assert await first.publish("demo", KEY) == 201
    room = app[ROOMS].get("demo")
    await wait_for(lambda: room.publisher.last_media() is not None, timeout=10)
    stale = room.publisher
    first.pc.getTransceivers()[0].sender.replaceTrack(None)  # goes silent
    first.pc.getTransceivers()[1].sender.replaceTrack(None)
    await wait_for(lambda: stale.is_stale(), timeout=5)
    second = Publisher(base)
    assert await second.publish("demo", KEY) == 201
    assert room.publisher is not stale and stale.closed
    await second.close()
    await first.close()


async def test_viewer_that_cannot_receive_the_live_codec_gets_406(server):
    base, app = server
    publisher = Publisher(base, codec="video/H264")
    assert await publisher.publish("demo", KEY) == 201
    room = app[ROOMS].get("demo")
    await wait_for(lambda: room.fanouts["video"].codec == "H264", timeout=10)
    viewer = Viewer(base, codecs=["video/VP8"])
    assert await viewer.play("demo") == 406
    assert "H264" in viewer.error
    assert not room.subscribers
    await viewer.close()
    await publisher.close()


async def test_whep_refusals(server):
    base, app = server
    offer = await make_offer(direction="recvonly")
    assert (await post(base, "/whep/nosuchroom", offer))[0] == 404
    assert (await post(base, "/whep/demo", offer, content_type="application/json"))[0] == 415
    sendonly = await make_offer(direction="sendonly")
    got, body, _ = await post(base, "/whep/demo", sendonly)
    assert got == 400 and "must receive media" in body["error"]["message"]
    assert_untouched(app)


async def test_room_status(server):
    base, app = server
    async with aiohttp.ClientSession() as http:
        async with http.get(base + "/api/rooms/demo") as r:
            assert r.status == 200 and (await r.json())["live"] is False
        async with http.get(base + "/api/rooms/nope") as r:
            assert r.status == 404
