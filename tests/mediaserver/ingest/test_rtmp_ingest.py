"""RTMP ingest end to end: Debian's ffmpeg publishes RTMP (H.264 + AAC) as OBS would, an
aiortc viewer plays the room over WHEP and reads the frame numbers, the tone arrives as
Opus, the broadcast is recorded and packaged into a replay that decodes; wrong keys and
second publishers are refused as for WHIP."""

from __future__ import annotations

import asyncio
import logging

import av
import numpy as np
import pytest

from stagepass.app import RTMP, create_app
from core.settings import Settings
from mediaserver.recording.manifest import read_manifest, recording_dir
from core.access import StreamKeyAccess
from signalling.whip import ROOMS
from tests.support.live_server import KEY
from tests.support.waiting import wait_for
from tests.support.browser import open_page
from tests.support.missing_tools import missing_tool
from tests.support.peers import Publisher, Viewer, read_number
from tests.support.rtmp_encoder import FfmpegRtmpPublisher, free_port, have_ffmpeg
from tests.support.worker_pins import ONE_WORKER_EACH

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
async def rtmp_server(aiohttp_server, tmp_path):
    if not have_ffmpeg():
        missing_tool("Debian's ffmpeg is not installed (apt-get install ffmpeg)")
    settings = Settings.build(data_dir=tmp_path, rooms={"demo": KEY, "other": "other-key-123"}, rtmp_port=free_port(),
                        publisher_stale_seconds=3.0, **ONE_WORKER_EACH)
    settings.validate()
    app = create_app(settings, access=StreamKeyAccess(settings.stream_keys()))
    srv = await aiohttp_server(app)
    base = str(srv.make_url("")).rstrip("/")
    yield base, app, f"rtmp://127.0.0.1:{app[RTMP].port}/live"


async def test_ffmpeg_publishes_rtmp_and_a_webrtc_viewer_plays_it_and_the_replay_decodes(rtmp_server):
    base, app, rtmp = rtmp_server
    encoder = FfmpegRtmpPublisher(f"{rtmp}/{KEY}")
    viewer = Viewer(base)
    try:
        await encoder.start()
        room = await wait_for(lambda: (r := app[ROOMS].get("demo")) is not None and r.live and r, timeout=15)
        assert room.stats()["codecs"] == {"video": "H264", "audio": "OPUS"}
        assert await viewer.play("demo") == 201
        await asyncio.wait_for(viewer.first_frame, 15)
        await wait_for(lambda: len(viewer.numbers) >= 45 and viewer.audio_frames >= 50, timeout=15)
        numbers = viewer.numbers
        # forwarded without transcoding: every frame after the first keyframe, in order
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), numbers
        assert viewer.audio_peak > 1000  # the tone, transcoded AAC -> Opus, is audible
        # a WHIP publisher gets the same answer as for a live WHIP publisher
        rival = Publisher(base)
        try:
            assert await rival.publish("demo", KEY) == 409
        finally:
            await rival.close()
        broadcast = room.broadcast.id
        assert await encoder.stop() == 0, encoder.stderr
        # the encoder's "stop streaming" ends the broadcast, like a WHIP DELETE
        await wait_for(lambda: room.broadcast is None and room.phase == "ended", timeout=10)
    finally:
        await viewer.close()
        await encoder.kill()
    directory = recording_dir(app[ROOMS].settings.server.data_dir, "demo", broadcast)
    manifest = await wait_for(lambda: (m := read_manifest(directory)).get("status") == "ready" and m, timeout=60)
    assert manifest["video_codec"] == "h264" and manifest["audio_codec"] == "opus"
    replay = directory / "hls" / "index.m3u8"
    with av.open(str(replay)) as container:
        kinds = {s.type for s in container.streams}
        assert kinds == {"video", "audio"}
        replayed = [read_number(f.to_ndarray(format="bgr24")) for f in container.decode(video=0)]
    assert len(replayed) >= 30
    assert replayed == list(range(replayed[0], replayed[0] + len(replayed)))


async def test_wrong_key_is_refused_and_logged_without_the_key(rtmp_server, caplog):
    base, app, rtmp = rtmp_server
    caplog.set_level(logging.INFO, "stagepass.rtmp")
    encoder = FfmpegRtmpPublisher(f"{rtmp}/not-a-key-of-any-room", audio=False)
    await encoder.start()
    try:
        code = await encoder.wait(timeout=15)
    finally:
        await encoder.kill()
    assert code > 0  # ffmpeg gave up (a timeout kills it: -9)
    assert app[ROOMS].get("demo") is None  # nothing was opened
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert refusals and "no room has this stream key" in refusals[0]
    assert not any("not-a-key-of-any-room" in r.getMessage() for r in caplog.records)
    # a wrong application is refused too
    encoder = FfmpegRtmpPublisher(rtmp.replace("/live", "/other") + f"/{KEY}", audio=False)
    await encoder.start()
    try:
        assert await encoder.wait(timeout=15) > 0
    finally:
        await encoder.kill()
    assert app[ROOMS].get("demo") is None


async def test_second_rtmp_publisher_is_refused_and_a_dropped_one_can_come_back(rtmp_server):
    base, app, rtmp = rtmp_server
    first = FfmpegRtmpPublisher(f"{rtmp}/{KEY}", audio=False)
    second = FfmpegRtmpPublisher(f"{rtmp}/{KEY}", audio=False, start=5000)
    viewer = Viewer(base, audio=False)
    try:
        await first.start()
        room = await wait_for(lambda: (r := app[ROOMS].get("demo")) is not None and r.live and r, timeout=15)
        await second.start()
        assert await second.wait(timeout=15) > 0  # refused: the room has a live publisher
        assert room.live and room.publisher is not None
        assert await viewer.play("demo") == 201
        await wait_for(lambda: viewer.numbers and viewer.numbers[-1] < 5000, timeout=15)
        broadcast = room.broadcast.id
        await first.kill()  # the encoder crashed: the broadcast stays open
        await wait_for(lambda: room.publisher is None, timeout=10)
        assert room.phase == "reconnecting" and room.broadcast.id == broadcast
        again = FfmpegRtmpPublisher(f"{rtmp}/{KEY}", audio=False, start=5000)
        await again.start()
        try:
            # the viewer stays connected and resumes on the new encoder's first keyframe
            await wait_for(lambda: viewer.numbers[-1] >= 5010, timeout=20)
            assert room.broadcast.id == broadcast and room.live
        finally:
            await again.kill()
    finally:
        await viewer.close()
        await first.kill()
        await second.kill()


def test_rtmp_settings_are_checked():
    for bad in ({"rtmp_port": 70000}, {"rtmp_port": -1}, {"rtmp_audio_bitrate": 1000}):
        with pytest.raises(Exception) as err:
            Settings.build(**bad).validate()
        assert next(iter(bad)) in str(err.value)
    assert Settings.build().media.rtmp_port == 1935
    Settings.build(rtmp_port=0).validate()  # 0: no RTMP listener


async def test_chromium_plays_an_rtmp_room(rtmp_server, browser):
    base, app, rtmp = rtmp_server
    encoder = FfmpegRtmpPublisher(f"{rtmp}/{KEY}")
    log: list[str] = []
    try:
        await encoder.start()
        await wait_for(lambda: (r := app[ROOMS].get("demo")) is not None and r.live, timeout=15)
        page = await open_page(browser, base, "watch", log)
        await page.goto(f"{base}/static/watch.html?room=demo&autoplay=1")
        await page.wait_for_function("() => { const v = document.getElementById('video');"
                                     " return v.videoWidth > 0 && v.currentTime > 0; }")
        start = await page.evaluate("document.getElementById('video').currentTime")
        await page.wait_for_function(f"document.getElementById('video').currentTime > {start} + 1")
        # the barcode of the frame on screen, read from the browser's own decode
        pixels = await page.evaluate("""() => {
            const v = document.getElementById('video'), c = document.createElement('canvas');
            c.width = v.videoWidth; c.height = v.videoHeight;
            const g = c.getContext('2d'); g.drawImage(v, 0, 0);
            return Array.from(g.getImageData(0, 0, c.width, c.height).data); }""")
        size = await page.evaluate("[document.getElementById('video').videoWidth,"
                                   " document.getElementById('video').videoHeight]")
        img = np.array(pixels, np.uint8).reshape(size[1], size[0], 4)[:, :, 2::-1]
        shown = read_number(np.ascontiguousarray(img))
        assert 0 < shown <= encoder.next_number, (shown, encoder.next_number)
        tracks = await page.evaluate("document.getElementById('video').srcObject.getAudioTracks().length")
        assert tracks == 1
    except BaseException:
        print("\n".join(log))
        raise
    finally:
        await encoder.kill()


async def test_video_that_is_not_h264_is_refused_by_name(rtmp_server, caplog):
    base, app, rtmp = rtmp_server
    caplog.set_level(logging.INFO, "stagepass.rtmp")
    proc = await asyncio.create_subprocess_exec(
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=15",
        "-t", "20", "-c:v", "flv1", "-f", "flv", f"{rtmp}/{KEY}",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        assert await asyncio.wait_for(proc.wait(), 15) != 0  # disconnected long before 20 s
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert any("video Sorenson H.263 is not supported: send H.264" in r.getMessage() for r in caplog.records)
    room = app[ROOMS].get("demo")
    assert room is not None and room.publisher is None and not room.live


def test_flv_parsing_refuses_what_cannot_be_forwarded():
    from mediaserver.ingest.flv import FlvError, parse_aac, parse_avc, parse_avc_config, split_nal_units

    with pytest.raises(FlvError, match="too short"):
        parse_avc(b"\x17\x01")
    with pytest.raises(FlvError, match="enhanced RTMP"):
        parse_avc(b"\x90hvc1\x00")
    with pytest.raises(FlvError, match="send AAC"):
        parse_aac(b"\x2f\x00")  # MP3
    with pytest.raises(FlvError, match="malformed"):
        parse_avc_config(b"\x02\x42\x00\x1f\xff\xe1")
    with pytest.raises(FlvError, match="runs past"):
        split_nal_units(b"\x00\x00\x00\x09\x65\x88", 4)
    packet = parse_avc(b"\x17\x01\xff\xff\xfe" + b"\x00\x00\x00\x02\x65\x88")
    assert packet.keyframe and not packet.is_config and packet.composition_ms == -2
    assert split_nal_units(packet.body, 4) == [b"\x65\x88"]
    config = parse_avc_config(bytes([1, 0x42, 0, 0x1F, 0xFF, 0xE1, 0, 2, 0x67, 0x42, 1, 0, 2, 0x68, 0xCE]))
    assert config.length_size == 4 and config.sps == (b"\x67\x42",) and config.pps == (b"\x68\xce",)
