"""End to end over loopback: real aiortc publishers and viewers against the real app."""

import asyncio

import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
import pytest

from signalling.whip import ROOMS
from tests.support.live_server import KEY
from tests.support.waiting import wait_for
from tests.support.peers import Publisher, Viewer

pytestmark = [pytest.mark.inprocess, pytest.mark.slow]


def consecutive(numbers: list[int]) -> bool:
    return all(b == a + 1 for a, b in zip(numbers, numbers[1:]))


@pytest.fixture
def codec_calls(monkeypatch):
    """Record every encoder and decoder aiortc creates, and for whom."""
    calls = {"encoders": [], "decoders": []}
    real_encoder = aiortc.rtcrtpsender.get_encoder
    real_decoder = aiortc.rtcrtpreceiver.get_decoder

    def get_encoder(codec):
        import inspect

        calls["encoders"].append(inspect.currentframe().f_back.f_locals.get("self"))
        return real_encoder(codec)

    def decoder_worker(loop, input_q, output_q, decode_error):
        def get_decoder(codec):
            calls["decoders"].append(input_q)
            return real_decoder(codec)

        return _worker(loop, input_q, output_q, decode_error, get_decoder)

    monkeypatch.setattr(aiortc.rtcrtpsender, "get_encoder", get_encoder)
    monkeypatch.setattr(aiortc.rtcrtpreceiver, "decoder_worker", decoder_worker)
    return calls


def _worker(loop, input_q, output_q, decode_error, get_decoder):
    """aiortc 1.16's decoder_worker with an injectable get_decoder (same logic)."""
    import av

    codec_name = decoder = None
    while True:
        task = input_q.get()
        if task is None:
            asyncio.run_coroutine_threadsafe(output_q.put(None), loop)
            break
        codec, encoded_frame = task
        if codec.name != codec_name:
            decoder = get_decoder(codec)
            codec_name = codec.name
        try:
            frames = decoder.decode(encoded_frame)
        except av.FFmpegError:
            decode_error.set()
            continue
        for frame in frames:
            asyncio.run_coroutine_threadsafe(output_q.put(frame), loop)


@pytest.mark.parametrize("codec", ["video/H264", "video/VP8"])
async def test_viewers_receive_numbered_frames_in_order_without_server_codecs(server, codec, codec_calls):
    base, app = server
    publisher = Publisher(base, codec=codec)
    assert await publisher.publish("demo", KEY) == 201, publisher.error
    viewers = [Viewer(base) for _ in range(3)]
    for v in viewers:
        assert await v.play("demo") == 201, v.error
    try:
        await wait_for(lambda: all(len(v.numbers) >= 45 for v in viewers), timeout=15)
        for v in viewers:
            assert consecutive(v.numbers), v.numbers[:60]
            assert v.audio_frames > 20 and v.audio_peak > 1000  # the tone arrives, not silence
        room = app[ROOMS].get("demo")
        assert room.stats()["codecs"]["video"] == codec.split("/")[1]
        # No encoder or decoder ran for the server's side of any connection
        server_senders = {t.sender for s in room.subscribers.values() for t in s.pc.getTransceivers()}
        server_queues = {
            t.receiver._RTCRtpReceiver__decoder_queue for t in room.publisher.pc.getTransceivers()
        }
        assert not server_senders & set(codec_calls["encoders"])
        assert not server_queues & set(codec_calls["decoders"])
        # ...while the clients did: one encoder per published track, a decoder per viewer track
        assert len(codec_calls["encoders"]) == 2
        assert len(codec_calls["decoders"]) == 2 * len(viewers)
    finally:
        for v in viewers:
            await v.close()
        await publisher.close()


async def test_late_joiner_starts_on_a_keyframe_quickly(server):
    base, app = server
    publisher = Publisher(base)
    assert await publisher.publish("demo", KEY) == 201
    first = Viewer(base)
    await first.play("demo")
    try:
        await wait_for(lambda: len(first.numbers) > 10, timeout=10)
        await asyncio.sleep(2.5)  # well past the publisher's first keyframe
        late = Viewer(base)
        joined = asyncio.get_running_loop().time()
        assert await late.play("demo") == 201
        picture_at = await asyncio.wait_for(late.first_frame, timeout=5)
        await wait_for(lambda: len(late.numbers) > 20, timeout=5)
        # the first decoded frame is already a clean picture: numbers continue from it
        assert consecutive(late.numbers), late.numbers[:30]
        assert late.numbers[0] > first.numbers[0]
        assert picture_at - joined < 3.0
        await late.close()
    finally:
        await first.close()
        await publisher.close()


async def test_join_storm_is_coalesced_into_few_keyframe_requests(server, settings):
    base, app = server
    publisher = Publisher(base)
    assert await publisher.publish("demo", KEY) == 201
    viewers = [Viewer(base, audio=False) for _ in range(6)]
    try:
        await asyncio.sleep(1.5)
        room = app[ROOMS].get("demo")
        before = room.fanouts["video"].keyframes.sent
        t0 = asyncio.get_running_loop().time()
        await asyncio.gather(*(v.play("demo") for v in viewers))
        await wait_for(lambda: all(len(v.numbers) > 5 for v in viewers), timeout=10)
        elapsed = asyncio.get_running_loop().time() - t0
        requested = room.fanouts["video"].keyframes.requested
        sent = room.fanouts["video"].keyframes.sent - before
        assert requested > sent  # many asked ...
        assert sent <= elapsed / settings.media.keyframe_min_interval + 2  # ... about one PLI a second went out
    finally:
        for v in viewers:
            await v.close()
        await publisher.close()


async def test_viewer_survives_publisher_reconnect(server):
    base, app = server
    first = Publisher(base, start=100)
    assert await first.publish("demo", KEY) == 201
    viewer = Viewer(base)
    assert await viewer.play("demo") == 201
    try:
        await wait_for(lambda: len(viewer.numbers) > 15, timeout=10)
        assert await first.delete() == 200
        await first.close()
        await asyncio.sleep(0.5)
        second = Publisher(base, start=5000)
        assert await second.publish("demo", KEY) == 201
        await wait_for(lambda: any(n >= 5000 for n in viewer.numbers), timeout=10)
        await wait_for(lambda: len([n for n in viewer.numbers if n >= 5000]) > 20, timeout=10)
        after = [n for n in viewer.numbers if n >= 5000]
        assert consecutive(after), after[:30]
        assert viewer.pc.connectionState == "connected"  # same session, no renegotiation
        assert len(app[ROOMS].get("demo").subscribers) == 1
        await second.close()
    finally:
        await viewer.close()


async def test_stuck_viewer_does_not_delay_others_and_recovers_on_a_keyframe(server):
    base, app = server
    publisher = Publisher(base)
    assert await publisher.publish("demo", KEY) == 201
    healthy, stuck = Viewer(base), Viewer(base)
    assert await healthy.play("demo") == 201
    assert await stuck.play("demo") == 201
    try:
        await wait_for(lambda: len(stuck.numbers) > 10 and len(healthy.numbers) > 10, timeout=10)
        room = app[ROOMS].get("demo")
        session = room.subscribers[stuck.location.rsplit("/", 1)[1]]
        port = session._downstreams["video"][1].port
        real_send = port.send
        port.send = lambda *a: False  # its socket is backed up: every send would block
        n_healthy, n_stuck = len(healthy.numbers), len(stuck.numbers)
        produced = publisher.video.number
        await asyncio.sleep(2.0)
        produced = publisher.video.number - produced
        downstream = session._downstreams["video"][1]
        assert downstream.waiting and downstream.dropped > 0
        # the healthy viewer got every frame the publisher made meanwhile (give or take
        # those in flight), the stuck one nothing
        assert produced > 20
        assert len(healthy.numbers) - n_healthy >= produced - 5
        assert consecutive(healthy.numbers[n_healthy - 1:])
        assert len(stuck.numbers) - n_stuck < 5
        port.send = real_send
        await wait_for(lambda: len(stuck.numbers) > n_stuck + 20, timeout=5)
        resumed = stuck.numbers[n_stuck + 2:]
        assert consecutive(resumed), resumed[:30]
    finally:
        await healthy.close()
        await stuck.close()
        await publisher.close()


async def test_sessions_that_vanish_are_closed_and_forgotten(server, settings):
    base, app = server
    publisher = Publisher(base)
    assert await publisher.publish("demo", KEY) == 201
    viewer = Viewer(base)
    assert await viewer.play("demo") == 201
    await wait_for(lambda: len(viewer.numbers) > 5, timeout=10)
    room = app[ROOMS].get("demo")
    session = next(iter(room.subscribers.values()))
    # the viewer goes away without a DELETE
    await viewer.close()
    await wait_for(lambda: not room.subscribers, timeout=10)
    assert session.closed and len(session.tasks) == 0
    assert len(room.fanouts["video"]) == 0 and len(room.fanouts["audio"]) == 0
    # the publisher too
    pub_session = room.publisher
    await publisher.close()
    await wait_for(lambda: room.publisher is None, timeout=10)
    assert pub_session.closed and len(pub_session.tasks) == 0


async def test_a_peer_that_never_connects_times_out(server, settings):
    base, app = server
    settings.media.connect_timeout = 1.0
    viewer = Viewer(base)
    assert await viewer.play("demo") == 201
    room = app[ROOMS].get("demo")
    assert len(room.subscribers) == 1
    await viewer.pc.close()  # closes before ICE could complete
    await wait_for(lambda: not room.subscribers, timeout=5)
