"""WHIP/WHEP details real clients trip over (issue 10): mDNS candidates do not hold the
answer, a 405 says what is allowed, H.264 without packetization-mode=1 is a codec
mismatch (406), and a POST whose peer never connects leaves no broadcast behind."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from core.cluster.local import LocalCluster
from interaction.live_clock import BroadcastClocks, publish_clocks
from signalling.whip import ROOMS
from tests.support.live_server import KEY
from tests.support.waiting import wait_for
from tests.support.peers import Publisher, Viewer
from tests.support.mdns import mdns_never_answers, with_mdns_candidate  # noqa: F401  (mdns_never_answers: fixture)
from tests.support.whip_offers import make_offer, post

pytestmark = pytest.mark.inprocess


async def test_mdns_candidates_do_not_hold_the_whep_answer(server, mdns_never_answers):
    base, app = server
    publisher = Publisher(base)
    viewer = Viewer(base)
    try:
        assert await publisher.publish("demo", KEY) == 201
        room = app[ROOMS].get("demo")
        await wait_for(lambda: room.publisher.last_media() is not None, timeout=10)
        await viewer.pc.setLocalDescription(await viewer.pc.createOffer())
        offer = with_mdns_candidate(viewer.pc.localDescription.sdp)
        # main held the answer until the query gave up; here no query ever answers
        status, answer, _ = await asyncio.wait_for(post(base, "/whep/demo", offer), timeout=15)
        assert status == 201, answer
        await viewer.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        await wait_for(lambda: len(viewer.numbers) >= 10, timeout=15)  # ICE did not need it
        await wait_for(lambda: mdns_never_answers, timeout=5)  # resolved off the answer path
        assert mdns_never_answers[0].endswith(".local")
    finally:
        await viewer.close()
        await publisher.close()


async def test_an_unsupported_method_is_405_with_allow(server):
    base, app = server
    publisher = Publisher(base)
    try:
        assert await publisher.publish("demo", KEY) == 201
        async with aiohttp.ClientSession() as http:
            async with http.put(base + publisher.location, data="v=0\r\n",
                                headers={"Content-Type": "application/sdp"}) as r:
                assert r.status == 405
                assert {m.strip() for m in r.headers["Allow"].split(",")} >= {"DELETE", "OPTIONS", "PATCH"}
    finally:
        await publisher.close()


def packetization_mode_0(sdp: str) -> str:
    """The offer's H.264 formats without packetization-mode=1 (mode 0: single NAL units)."""
    return re.sub(r"packetization-mode=1;?", "", sdp)


@pytest.mark.parametrize("path,direction", [("/whep/demo", "recvonly"), ("/whip/demo", "sendonly")])
async def test_h264_without_packetization_mode_1_is_406(server, path, direction):
    base, app = server
    offer = packetization_mode_0(await make_offer(kinds=("video",), direction=direction, codec="video/H264"))
    assert "H264" in offer and "packetization-mode=1" not in offer
    status, body, _ = await post(base, path, offer, token=KEY if path.startswith("/whip") else None)
    assert status == 406 and body["error"]["code"] == "no_common_codec", body
    assert "packetization-mode=1" in body["error"]["message"]
    room = app[ROOMS].get("demo")
    assert room is None or (room.publisher is None and not room.subscribers and room.broadcast is None)


async def test_a_publisher_that_never_connects_leaves_no_broadcast(server, settings):
    """...and its broadcast is never confirmed; one with media is confirmed once, its
    publisher dropping and returning in it."""
    base, app = server
    settings.media.connect_timeout = 1.0
    confirmed: list[str] = []

    async def on_confirmed(room, broadcast) -> None:
        confirmed.append(broadcast.id)

    app[ROOMS].broadcast_confirmed.append(on_confirmed)
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="sendonly")
    pc.addTransceiver("audio", direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    offer = pc.localDescription.sdp
    await pc.close()  # the client is gone before it could answer a single check
    status, _, _ = await post(base, "/whip/demo", offer, token=KEY)
    assert status == 201
    room = app[ROOMS].get("demo")
    assert room.publisher is not None and not room.live and room.phase == "idle"  # no media yet
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/api/live") as r:
            assert (await r.json())["rooms"] == []
    await wait_for(lambda: room.publisher is None, timeout=15)
    assert room.phase == "idle" and room.broadcast is None and room.recorder is None
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/api/live") as r:
            assert (await r.json())["rooms"] == []
    recordings = settings.server.data_dir / "recordings" / "demo"  # the empty recording is removed
    await wait_for(lambda: not recordings.exists() or not any(recordings.iterdir()), timeout=10)

    # a broadcast that had media is not discarded when its publisher drops
    publisher = Publisher(base)
    try:
        assert await publisher.publish("demo", KEY) == 201
        await wait_for(lambda: room.publisher is not None and room.publisher.last_media() is not None, timeout=10)
        broadcast = room.broadcast.id
    finally:
        await publisher.close()  # no DELETE: the creator's network dropped
    await wait_for(lambda: room.publisher is None, timeout=20)
    assert room.phase == "reconnecting" and room.broadcast.id == broadcast
    assert confirmed == [broadcast]  # the one that never connected was not

    returning = Publisher(base)  # back in the same broadcast: not confirmed again
    try:
        assert await returning.publish("demo", KEY) == 201
        await wait_for(lambda: room.live, timeout=10)
        assert room.broadcast.id == broadcast
        await asyncio.sleep(0.3)
    finally:
        await returning.close()
    assert confirmed == [broadcast]


async def test_a_discarded_broadcast_ends_for_its_listeners(server, settings):
    """Start listeners were told at the POST: end listeners hear of the discard, so the
    chat's live clock (what interaction workers stamp danmaku with) is not left live."""
    base, app = server
    settings.media.connect_timeout = 1.0
    rooms = app[ROOMS]
    heard: list[tuple] = []

    async def started(room, broadcast) -> None:
        heard.append(("start", broadcast.id))

    async def confirmed(room, broadcast) -> None:
        heard.append(("confirmed", broadcast.id))

    async def ended(room, broadcast) -> None:
        heard.append(("end", broadcast.id, broadcast.discarded))

    rooms.broadcast_started.append(started)
    rooms.broadcast_confirmed.append(confirmed)
    rooms.broadcast_ended.append(ended)
    cluster = LocalCluster()
    publish_clocks(cluster, rooms, "node-1")
    clocks = BroadcastClocks(cluster, "node-1")
    await clocks.start()
    try:
        pc = RTCPeerConnection()
        pc.addTransceiver("video", direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        offer = pc.localDescription.sdp
        await pc.close()  # ICE never connects
        status, _, _ = await post(base, "/whip/demo", offer, token=KEY)
        assert status == 201
        broadcast = rooms.get("demo").broadcast.id
        await wait_for(lambda: clocks.get("demo") is not None, timeout=5)
        assert clocks.get("demo").broadcast.id == broadcast
        await wait_for(lambda: len(heard) == 2, timeout=15)
        assert heard == [("start", broadcast), ("end", broadcast, True)]  # never confirmed
        await wait_for(lambda: clocks.get("demo") is None, timeout=5)  # the chat is not live
        assert rooms.get("demo").phase == "idle"
    finally:
        await clocks.close()


async def test_a_failed_dtls_handshake_is_logged_with_its_cause(server, caplog):
    """A peer whose certificate does not match the fingerprint in its offer: the log says
    why the connection failed, not only that it did."""
    base, app = server
    publisher = Publisher(base)
    await publisher.pc.setLocalDescription(await publisher.pc.createOffer())
    offer = re.sub(r"(a=fingerprint:sha-256 )([0-9A-F]{2})",
                   lambda m: m.group(1) + ("00" if m.group(2) != "00" else "11"),
                   publisher.pc.localDescription.sdp)
    caplog.set_level("INFO", logger="stagepass")
    try:
        status, answer, _ = await post(base, "/whip/demo", offer, token=KEY)
        assert status == 201, answer
        await publisher.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        room = app[ROOMS].get("demo")
        await wait_for(lambda: room.publisher is None, timeout=20)
    finally:
        await publisher.close()
    failures = [r.getMessage() for r in caplog.records if "connection failed" in r.getMessage()]
    assert failures and "fingerprint mismatch" in failures[0], failures
    assert room.broadcast is None and room.phase == "idle"  # and it left nothing behind
