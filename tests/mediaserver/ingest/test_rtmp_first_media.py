"""An RTMP broadcast opens when the encoder's publish is accepted and is confirmed by its
first media tag (``RtmpPublisher.first_media``), once; sequence headers are not media."""

from __future__ import annotations

import asyncio
import functools

import pytest

from core.settings import Settings
from mediaserver.ingest.rtmp_publisher import RtmpPublisher
from mediaserver.live.room import RoomRegistry
from tests.support.waiting import wait_for
from tests.support.worker_pins import ONE_WORKER_EACH

pytestmark = pytest.mark.inprocess

SPS = b"\x67\x42\x00\x1e\xab\x40\x50\x1e\xc8"
PPS = b"\x68\xce\x38\x80"


def avc_config_tag() -> bytes:
    """An FLV video tag carrying the AVCDecoderConfigurationRecord (one SPS, one PPS)."""
    record = (bytes([1, 0x42, 0x00, 0x1E, 0xFF, 0xE1]) + len(SPS).to_bytes(2, "big") + SPS
              + bytes([1]) + len(PPS).to_bytes(2, "big") + PPS)
    return bytes([0x17, 0, 0, 0, 0]) + record


def avc_frame_tag(keyframe: bool) -> bytes:
    """An FLV video tag with one length-prefixed NAL unit (IDR or not)."""
    nal = (b"\x65" if keyframe else b"\x41") + bytes(300)
    return bytes([0x17 if keyframe else 0x27, 1, 0, 0, 0]) + len(nal).to_bytes(4, "big") + nal


async def test_an_rtmp_broadcast_is_confirmed_by_its_first_media_tag_once(tmp_path):
    settings = Settings.build(data_dir=tmp_path, recordings=False, **ONE_WORKER_EACH)
    settings.validate()
    rooms = RoomRegistry(settings)
    heard: list[str] = []

    async def confirmed(room, broadcast) -> None:
        heard.append(broadcast.id)

    rooms.broadcast_confirmed.append(confirmed)
    room = rooms.open("demo")
    try:
        publisher = await room.publish_ingest(functools.partial(
            RtmpPublisher, disconnect=lambda reason: None, peer="127.0.0.1:50000"))
        broadcast = room.broadcast
        assert broadcast is not None and not broadcast.confirmed and room.phase == "idle"
        publisher.on_video(0, avc_config_tag())  # a sequence header: not media yet
        assert not publisher.first_media.done() and not room.live
        publisher.on_video(0, avc_frame_tag(keyframe=True))
        assert publisher.first_media.done() and publisher.first_media.result() == publisher.last_media()
        await wait_for(lambda: heard, timeout=5)
        assert heard == [broadcast.id] and broadcast.confirmed and room.phase == "live"
        for n in range(1, 10):
            publisher.on_video(n * 33, avc_frame_tag(keyframe=False))
            await asyncio.sleep(0)
        assert heard == [broadcast.id] and publisher.frames["video"] == 10
    finally:
        await rooms.close()
