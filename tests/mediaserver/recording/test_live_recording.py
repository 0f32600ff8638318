"""Recording while live, end to end with real aiortc publishers (marked slow), including a
server killed mid-recording. A real publisher that drops and comes back is recorded, then
packaged, in tests/mediaserver/packaging/test_vod.py (one broadcast for both)."""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import time
from pathlib import Path
from typing import Optional

import av
import pytest

from mediaserver.recording import writer as writer_module
from mediaserver.recording.manifest import read_manifest
from mediaserver.recording.recorder import Recorder
from signalling.whip import ROOMS
from tests.support.live_server import KEY
from tests.support.peers import Peer, Publisher, ToneAudioTrack, Viewer
from tests.support.recorded import (
    assert_frames_follow_their_numbers, assert_replay_has_the_frames_of, consecutive, killed_mid_recording, recorded,
)
from tests.support.server_process import start_server, stop
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e

OPEN_ROOM = ("--rooms", "demo=KEYKEYKEY")  # the server process's one room


def manifest_status(directory: Path) -> Optional[str]:
    """The recording's status, None while the recorder has not written its manifest yet."""
    try:
        return read_manifest(directory)["status"]
    except FileNotFoundError:
        return None


class AudioOnlyPublisher(Peer):
    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self.audio = ToneAudioTrack()
        self.pc.addTransceiver(self.audio, direction="sendonly")

    async def publish(self, room: str, key: str) -> int:
        return await self.post(f"/whip/{room}", token=key)


async def publish_for(publisher, seconds: float, app, room: str = "demo", key: str = KEY):
    """Publish, wait ``seconds``, end the broadcast (WHIP DELETE); the time it was live
    and the broadcast's recorder."""
    t0 = time.monotonic()
    assert await publisher.publish(room, key) == 201, getattr(publisher, "error", None)
    recorder = recorder_of(app, room)
    await asyncio.sleep(seconds)
    assert await publisher.delete() == 200
    elapsed = time.monotonic() - t0
    await publisher.close()
    return elapsed, recorder


@pytest.fixture
def live(server):
    """The app, minus what happens after a broadcast (the packaging job, tested in
    tests/mediaserver/packaging/test_vod.py, would transcode in the background of these tests)."""
    base, app = server
    app[ROOMS].broadcast_ended.clear()
    return base, app


def recorder_of(app, room: str = "demo") -> Recorder:
    recorder = app[ROOMS].get(room).recorder
    assert recorder is not None
    return recorder


@pytest.mark.slow
@pytest.mark.parametrize("codec", ["video/H264", "video/VP8"])
async def test_live_broadcast_is_recorded_frame_for_frame(live, settings, codec):
    base, app = live
    publisher = Publisher(base, codec=codec)
    viewer = Viewer(base)
    recorders = []
    elapsed = await asyncio.wait_for(_publish_with_viewer(publisher, viewer, recorders, app), timeout=60)
    manifest, dec = recorded(settings.server.data_dir, recorders[0])
    # stream copy: the output holds no encoder (the video stream has no codec context,
    # the Opus one is a parameters-only copy that was never opened)
    assert recorders[0]._writer.codec_contexts == [("audio", False, False)]
    assert manifest["status"] == "recorded" and manifest["ended_by"] == "broadcast_end"
    assert manifest["error"] is None and manifest["gaps"] == []
    assert manifest["container"] == ("mpegts" if codec.endswith("H264") else "webm")
    assert dec.kinds == ["audio", "video"]
    # every frame, in order, from the very first one
    assert dec.numbers[0] < 5 and consecutive(dec.numbers), dec.numbers
    assert_frames_follow_their_numbers(dec)
    # as long as it was live (minus the time the publisher took to connect)
    span = (dec.video_ms[-1] - dec.video_ms[0]) / 1000
    assert elapsed - 2.5 < span < elapsed + 0.2, (span, elapsed)
    assert abs(manifest["duration_ms"] / 1000 - dec.video_ms[-1] / 1000) < 0.2
    assert manifest["duration_ms"] / 1000 < elapsed + 0.2
    # the tone is there, and in sync with the picture
    assert dec.tone_share() > 0.5
    assert abs(dec.audio_samples / dec.rate - span) < 0.5
    assert abs(dec.audio_ms[0] - dec.video_ms[0]) < 100
    # the viewer was served all along
    assert len(viewer.numbers) > 60 and consecutive(viewer.numbers)


async def _publish_with_viewer(publisher, viewer, recorders, app) -> float:
    assert await publisher.publish("demo", KEY) == 201
    t0 = time.monotonic()
    recorders.append(recorder_of(app))
    assert await viewer.play("demo") == 201
    try:
        await asyncio.sleep(5)
        assert await publisher.delete() == 200
    finally:
        await viewer.close()
        await publisher.close()
    return time.monotonic() - t0


@pytest.mark.slow
async def test_audio_only_and_video_only_broadcasts(live, settings):
    base, app = live
    async with asyncio.TaskGroup() as both:  # the two rooms are live at once
        audio_only = both.create_task(publish_for(AudioOnlyPublisher(base), 3, app))
        video_only = both.create_task(publish_for(Publisher(base, audio=False), 3, app, "other", "other-key-123"))
    manifest, dec = recorded(settings.server.data_dir, audio_only.result()[1])
    assert manifest["video_codec"] is None and manifest["audio_codec"] == "opus"
    assert manifest["container"] == "webm" and dec.kinds == ["audio"]
    assert dec.audio_samples / dec.rate > 2.0 and dec.tone_share() > 0.5

    manifest, dec = recorded(settings.server.data_dir, video_only.result()[1], "other")
    assert manifest["video_codec"] == "h264" and manifest["audio_codec"] is None
    assert dec.kinds == ["video"] and consecutive(dec.numbers) and len(dec.numbers) > 45


@pytest.mark.slow
async def test_server_shutdown_finalizes_the_recording(live, settings):
    base, app = live
    publisher = Publisher(base, codec="video/VP8")
    assert await publisher.publish("demo", KEY) == 201
    await asyncio.sleep(2.5)
    recorder = recorder_of(app)
    await app[ROOMS].get("demo").close()  # what the app's cleanup does on shutdown
    await publisher.close()
    manifest, dec = recorded(settings.server.data_dir, recorder)
    assert read_manifest(recorder.directory)["status"] == "recorded"
    assert manifest["status"] == "recorded" and manifest["ended_by"] == "shutdown"
    assert consecutive(dec.numbers) and len(dec.numbers) > 30


@pytest.mark.slow
async def test_write_error_is_recorded_and_viewers_keep_watching(live, settings, monkeypatch):
    base, app = live
    calls = {"n": 0}
    real_mux = writer_module.RecordingWriter.mux

    def failing_mux(self, packet):
        calls["n"] += 1
        if calls["n"] > 60:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_mux(self, packet)

    monkeypatch.setattr(writer_module.RecordingWriter, "mux", failing_mux)
    publisher = Publisher(base)
    viewer = Viewer(base)
    assert await publisher.publish("demo", KEY) == 201
    assert await viewer.play("demo") == 201
    try:
        room = app[ROOMS].get("demo")
        recorder = recorder_of(app)
        await wait_for(lambda: manifest_status(recorder.directory) == "failed", timeout=20)
        seen = len(viewer.numbers)
        await wait_for(lambda: len(viewer.numbers) > seen + 45, timeout=10)  # the live goes on
        assert consecutive(viewer.numbers)
        stats = room.stats()["recording"]  # what the creator's studio shows
        assert stats["status"] == "failed" and "No space left" in stats["error"]
        assert await publisher.delete() == 200
    finally:
        await viewer.close()
        await publisher.close()
    manifest, dec = recorded(settings.server.data_dir, recorder)
    assert manifest["status"] == "failed" and "No space left" in manifest["error"]
    assert manifest["bytes"] > 0 and dec.numbers and consecutive(dec.numbers)  # kept, readable


@pytest.mark.slow
@pytest.mark.parametrize("codec", ["video/VP8"])
async def test_killed_server_leaves_a_readable_partial_recording(tmp_path, codec):
    """SIGKILL mid-recording: the file up to the kill decodes, and the next start of the
    server packages it into a replay. (H.264: tests/mediaserver/recording/test_crash_restart.py,
    which kills a server with a paid room live and checks the same.)"""
    proc, base = await start_server(tmp_path, *OPEN_ROOM, ready_path="/api/rooms/demo")
    publisher = Publisher(base, codec=codec)
    try:
        assert await publisher.publish("demo", "KEYKEYKEY") == 201
        await asyncio.sleep(3)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        await publisher.close()
    directory, dec = killed_mid_recording(tmp_path)

    proc, _ = await start_server(tmp_path, *OPEN_ROOM, ready_path="/api/rooms/demo")  # the restart resumes the job
    try:
        await wait_for(lambda: manifest_status(directory) in ("ready", "failed"), timeout=60)
    finally:
        stop(proc)
    manifest = read_manifest(directory)
    assert manifest["status"] == "ready", manifest
    assert_replay_has_the_frames_of(directory, dec)


@pytest.mark.slow
async def test_recording_asks_h264_publishers_for_keyframes(live, settings):
    """A browser sends keyframes only when asked: while recording H.264, the recorder asks
    every ``recording_keyframe_interval`` so the packager can cut segments by remuxing."""
    base, app = live

    publishers: list[Publisher] = []

    async def recording(room: str, key: str, interval: float) -> Recorder:
        settings.recording.recording_keyframe_interval = interval  # read when the recorder starts
        publishers.append(Publisher(base))
        assert await publishers[-1].publish(room, key) == 201, getattr(publishers[-1], "error", None)
        return recorder_of(app, room)

    def keyframe_times(recorder: Recorder) -> list[float]:
        with av.open(str(recorder.path)) as c:
            return [float(p.pts * p.time_base) for p in c.demux(video=0) if p.is_keyframe and p.pts is not None]

    try:  # both rooms live at once, one recorder asking every 2 s, the other never
        recorders = [await recording("demo", KEY, 2.0), await recording("other", "other-key-123", 0.0)]
        await asyncio.sleep(7.0)
        for publisher in publishers:
            assert await publisher.delete() == 200
    finally:
        for publisher in publishers:
            await publisher.close()
    paced, unpaced = keyframe_times(recorders[0]), keyframe_times(recorders[1])
    assert len(paced) >= 3 and max(b - a for a, b in zip(paced, paced[1:])) <= 3.2, paced
    assert len(unpaced) < len(paced), (unpaced, paced)
