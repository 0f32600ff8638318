"""A joining viewer's keyframe is asked for when its transport is up (issue 10).

Before, the join asked at the WHEP POST: the keyframe came back before the viewer's DTLS
was up and went by unused, and the viewer's own request then waited out the rate limit
(about a second). The speed is measured in ``benchmarks/join.py``; here, what is asked
and when, with recording ports (tests/mediaserver/sfu/test_fanout.py) and with real peers.
"""

from __future__ import annotations

from mediaserver.sfu.fanout import Downstream
from signalling.whip import ROOMS
from tests.support.live_server import KEY
from tests.support.waiting import wait_for
from tests.support.peers import Publisher, Viewer
from tests.support.fanout_ports import VP8_CONT, VP8_DELTA, VP8_KEY, FakePort, fanout, packet, stream  # noqa: F401
import pytest

pytestmark = pytest.mark.inprocess


async def test_a_joining_viewer_asks_for_its_keyframe_once_its_transport_is_up(fanout):
    port = FakePort()
    port.is_ready = False
    d = Downstream(port, stream(), "v1")
    fanout.add(d)
    assert fanout.keyframes.requested == 0  # the POST: nothing it could use yet
    # a keyframe that goes by before the transport is up is not for this viewer
    fanout.on_packet(packet(10, 3000, VP8_KEY), "VP8", 0.0)
    fanout.on_packet(packet(11, 3000, VP8_CONT, marker=1), "VP8", 0.0)
    assert fanout.keyframes.requested == 0 and not port.sent
    port.is_ready = True
    fanout.viewer_ready(d)  # the session's DTLS is up
    assert fanout.keyframes.requested == 1
    fanout.on_packet(packet(12, 6000, VP8_DELTA), "VP8", 0.0)  # still waiting: asks again,
    assert fanout.keyframes.sent <= 1  # but the publisher sees one request (coalesced)
    fanout.on_packet(packet(13, 9000, VP8_KEY), "VP8", 0.0)
    assert [p.payload for p in port.sent] == [VP8_KEY]
    fanout.viewer_ready(d)  # a late duplicate signal asks for nothing more
    assert fanout.keyframes.requested == 2


async def test_a_viewer_starts_on_a_keyframe_requested_after_it_connected(server, settings):
    """Real peers: every keyframe request made for the viewer is made once its connection
    is up, the publisher is asked once, and the picture comes."""
    base, app = server
    settings.recording.recordings = False  # the recorder's own keyframe requests would blur the count
    publisher = Publisher(base)
    viewer = Viewer(base)
    try:
        assert await publisher.publish("demo", KEY) == 201
        room = app[ROOMS].get("demo")
        await wait_for(lambda: room.publisher is not None and room.publisher.last_media() is not None)
        video = room.fanouts["video"]
        requests: list[bool] = []  # for each request: was the viewer connected?
        ask = video.request_keyframe

        def request_keyframe() -> None:
            requests.append(all(s.connected.is_set() for s in room.subscribers.values()))
            ask()

        video.request_keyframe = request_keyframe
        sent_before = video.keyframes.sent
        assert await viewer.play("demo") == 201
        await wait_for(lambda: len(viewer.numbers) >= 5, timeout=10)
        assert requests and all(requests), requests
        assert video.keyframes.sent - sent_before == 1
    finally:
        await viewer.close()
        await publisher.close()
