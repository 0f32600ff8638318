"""Recording while live: the frame assembler, the recorder on synthetic RTP, and end to end
with real aiortc publishers (marked slow), including a server killed mid-recording. A real
publisher that drops and comes back is recorded, then packaged, in
tests/mediaserver/packaging/test_vod.py (one broadcast for both)."""

from __future__ import annotations

import asyncio
import errno
import fractions
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Optional

import av
import numpy as np
import pytest
from aiortc.codecs import get_encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from mediaserver.recording import recorder as recorder_module
from mediaserver.recording import writer as writer_module
from mediaserver.sfu.fanout import Fanout
from mediaserver.recording.frame_assembler import FrameAssembler
from core.logs import context_logger
from mediaserver.recording.container import choose_container, opus_head
from mediaserver.recording.manifest import MANIFEST_NAME, read_manifest, recording_dir
from mediaserver.recording.recorder import Recorder
from mediaserver.live.room import Broadcast
from core.tasks import TaskOwner
from signalling.whip import ROOMS
from tests.support.live_server import KEY
from tests.support.waiting import wait_for
from tests.support.missing_tools import missing_tool
from tests.support.peers import Peer, Publisher, ToneAudioTrack, Viewer, draw_number
from tests.support.recorded import (
    Decoded, assert_frames_follow_their_numbers, assert_replay_has_the_frames_of, consecutive, killed_mid_recording,
    recorded,
)
from tests.support.server_process import start_server, stop

pytestmark = pytest.mark.e2e

OPEN_ROOM = ("--rooms", "demo=KEYKEYKEY")  # the server process's one room


# ====================================================================== helpers
def manifest_status(directory: Path) -> Optional[str]:
    """The recording's status, None while the recorder has not written its manifest yet."""
    try:
        return read_manifest(directory)["status"]
    except FileNotFoundError:
        return None


def rtp(seq: int, ts: int, payload: bytes = b"x", marker: int = 0) -> RtpPacket:
    p = RtpPacket(payload_type=96, sequence_number=seq & 0xFFFF, timestamp=ts & 0xFFFFFFFF, ssrc=7)
    p.payload, p.marker = payload, marker
    return p


class Collect:
    """An assembler's outputs and keyframe requests."""

    def __init__(self, kind: str = "video", window: float = 0.3) -> None:
        self.frames: list[tuple[int, int, bool, list]] = []
        self.requests = 0
        self.generations: list[tuple[int, str]] = []
        self.now = 0.0
        self.asm = FrameAssembler(
            kind,
            lambda g, ext, key, payloads: self.frames.append((g, ext, key, payloads)),
            self._request,
            lambda g, codec: self.generations.append((g, codec)),
            reorder_window=window,
            clock=lambda: self.now,
        )

    def _request(self) -> None:
        self.requests += 1

    def push(self, seq, ts, payload=b"x", marker=0, key=False, gen=1, codec="VP8"):
        self.asm.push(rtp(seq, ts, payload, marker), codec, gen, key)

    def payloads(self) -> list[list[bytes]]:
        return [f[3] for f in self.frames]


# ====================================================================== FrameAssembler
def test_frames_complete_on_marker_or_timestamp_change():
    c = Collect()
    c.push(10, 1000, b"a", key=True)
    c.push(11, 1000, b"b", marker=1)
    assert c.payloads() == [[b"a", b"b"]] and c.frames[0][2] is True
    c.push(12, 4000, b"c")  # no marker on this frame
    c.push(13, 4000, b"d")
    assert len(c.frames) == 1
    c.push(14, 7000, b"e", marker=1)  # a new timestamp closes the previous frame
    assert c.payloads() == [[b"a", b"b"], [b"c", b"d"], [b"e"]]
    assert [f[1] for f in c.frames] == [0, 3000, 6000]
    assert [f[2] for f in c.frames] == [True, False, False]
    assert c.generations == [(1, "VP8")]


def test_reordered_packets_are_put_back_in_order():
    c = Collect()
    c.push(100, 0, b"k0", key=True)
    c.push(102, 0, b"k2", marker=1)  # 101 is late
    c.push(104, 3000, b"d1", marker=1)  # the next frame too, with 103 missing
    assert c.frames == []
    c.push(101, 0, b"k1")
    assert c.payloads() == [[b"k0", b"k1", b"k2"]]
    c.push(103, 3000, b"d0")
    assert c.payloads() == [[b"k0", b"k1", b"k2"], [b"d0", b"d1"]]
    c.push(102, 0, b"dup", marker=1)  # a duplicate (retransmission) of an emitted packet
    assert len(c.frames) == 2 and c.asm.losses == 0


def test_keyframe_whose_first_packet_arrives_second_is_kept():
    c = Collect()
    c.push(51, 0, b"k1", marker=1)  # waiting: not a keyframe start, kept aside
    c.push(50, 0, b"k0", key=True)
    assert c.payloads() == [[b"k0", b"k1"]]


def test_loss_drops_to_the_next_keyframe_and_asks_for_one():
    c = Collect(window=0.3)
    c.push(1, 0, b"k", key=True, marker=1)
    requests = c.requests
    c.push(3, 3000, b"d1b", marker=1)  # 2 (the start of frame 1) never comes
    c.push(4, 6000, b"d2", marker=1)
    assert len(c.frames) == 1
    c.now += 0.5  # past the reorder window
    c.push(5, 9000, b"d3", marker=1)
    assert len(c.frames) == 1 and c.asm.losses == 1
    assert c.requests > requests  # asked the publisher for a keyframe
    c.push(6, 12000, b"d4", marker=1)  # a delta frame: still waiting
    c.push(2, 3000, b"d1a")  # the lost packet, far too late
    assert len(c.frames) == 1
    c.push(7, 15000, b"k2", key=True, marker=1)
    c.push(8, 18000, b"d5", marker=1)
    assert c.payloads() == [[b"k"], [b"k2"], [b"d5"]]
    assert [f[1] for f in c.frames] == [0, 15000, 18000]


def test_loss_with_a_keyframe_already_buffered_resumes_on_it():
    c = Collect(window=0.3)
    c.push(1, 0, b"k", key=True, marker=1)
    c.push(3, 3000, b"d1b", marker=1)  # 2 lost
    c.push(4, 6000, b"k2", key=True, marker=1)
    c.push(5, 9000, b"d3", marker=1)
    c.now += 0.5
    c.push(6, 12000, b"d4", marker=1)
    assert c.payloads() == [[b"k"], [b"k2"], [b"d3"], [b"d4"]]


def test_sequence_and_timestamp_wraparound():
    c = Collect()
    ts = 0xFFFFFFFF - 4000
    seq = 0xFFFE
    c.push(seq, ts, b"k0", key=True)
    c.push(seq + 1, ts, b"k1", marker=1)  # 0xFFFF
    c.push(seq + 3, ts + 3000, b"a1", marker=1)  # seq 1 before seq 0
    c.push(seq + 2, ts + 3000, b"a0")  # seq 0
    c.push(seq + 4, ts + 6000, b"b", marker=1)  # the RTP timestamp wrapped
    assert c.payloads() == [[b"k0", b"k1"], [b"a0", b"a1"], [b"b"]]
    assert [f[1] for f in c.frames] == [0, 3000, 6000]
    assert c.asm.losses == 0


def test_new_generation_waits_for_its_keyframe():
    c = Collect()
    c.push(1, 0, b"k", key=True, marker=1)
    c.push(2, 3000, b"half")  # the old source vanished mid-frame
    c.push(900, 777000, b"d", marker=1, gen=2)  # a new source starts with a delta frame
    c.push(901, 780000, b"k", key=True, marker=1, gen=2)
    assert c.payloads() == [[b"k"], [b"k"]]
    assert c.frames[1][0] == 2 and c.frames[1][1] == 3000  # counted from the gen's first packet
    assert c.generations == [(1, "VP8"), (2, "VP8")]


def test_audio_packets_are_frames_and_late_ones_are_dropped():
    c = Collect("audio")
    c.push(0xFFFF, 0xFFFFFFFF - 959, b"a", codec="OPUS")
    c.push(0, 0, b"b", codec="OPUS")  # both wrapped
    c.push(2, 1920, b"d", codec="OPUS")  # 1 lost: audio goes on
    c.push(1, 960, b"c", codec="OPUS")  # too late
    assert c.payloads() == [[b"a"], [b"b"], [b"d"]]
    assert [f[1] for f in c.frames] == [0, 960, 2880]
    assert c.requests == 0


def test_sink_that_raises_is_removed_and_the_fanout_goes_on():
    f = Fanout("video", TaskOwner(context_logger("t")), context_logger("t", "room"))
    f.attach_source(None)
    calls = []

    def bad(*args):
        raise RuntimeError("boom")

    f.add_sink(bad)
    f.add_sink(lambda *args: calls.append(args[2:]))
    f.on_packet(rtp(1, 0, bytes([0x10, 0x00, 0x9D, 0x01, 0x2A]), marker=1), "VP8", time.perf_counter())
    f.on_packet(rtp(2, 3000, bytes([0x10, 0x01, 0x00]), marker=1), "VP8", time.perf_counter())
    assert calls == [(1, True), (1, False)]
    assert len(f.sinks) == 1


# ====================================================================== Recorder on synthetic RTP
class SyntheticSource:
    """aiortc's own encoders and packetizers: real H.264 / VP8 / Opus RTP, no network."""

    def __init__(self, codec: str, start: int = 0, seq: int = 65000, ts: int = 0xFFFFFFFF - 30000):
        self.codec = codec
        if codec == "OPUS":
            params = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2)
        else:
            params = RTCRtpCodecParameters(mimeType=f"video/{codec}", clockRate=90000)
        self.encoder = get_encoder(params)
        self.number = start
        self.count = 0
        self.seq = seq
        self.ts0 = ts

    def next_packets(self) -> list[RtpPacket]:
        if self.codec == "OPUS":
            t = (np.arange(960) + self.count * 960) / 48000
            pcm = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
            frame.sample_rate = 48000
            frame.pts, frame.time_base = self.count * 960, fractions.Fraction(1, 48000)
        else:
            frame = av.VideoFrame.from_ndarray(draw_number(self.number), format="bgr24")
            frame.pts, frame.time_base = self.count * 3000, fractions.Fraction(1, 90000)
            self.number += 1
        self.count += 1
        payloads, ts = self.encoder.encode(frame, force_keyframe=self.count == 1)
        packets = []
        for i, payload in enumerate(payloads):
            packets.append(rtp(self.seq, self.ts0 + ts, payload, marker=int(i == len(payloads) - 1)))
            self.seq = (self.seq + 1) & 0xFFFF
        return packets


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


async def make_recorder(tmp_path, codecs, clock, **kwargs):
    tasks = TaskOwner(context_logger("t"))
    fanouts = {k: Fanout(k, tasks, context_logger("t", "room")) for k in ("video", "audio")}
    broadcast = Broadcast(started_at=clock.t)
    rec = Recorder("demo", broadcast, codecs, tmp_path, context_logger("t", "demo"),
                   request_keyframe=lambda kind: fanouts[kind].request_keyframe(),
                   wall_clock=clock, **kwargs)
    rec.start()
    rec.attach(fanouts)
    return rec, fanouts, tasks


def feed(fanouts, sources: dict[str, SyntheticSource], seconds: float, clock: Clock) -> None:
    """Interleave audio and video packets as a publisher would, advancing the clock."""
    video, audio = sources.get("video"), sources.get("audio")
    steps = int(seconds * 1000)
    for ms in range(steps):
        if video is not None and video.count * 100 < (ms + 1) * 3:  # 30 fps
            for p in video.next_packets():
                fanouts["video"].on_packet(p, video.codec, time.perf_counter())
        if audio is not None and audio.count * 20 < ms + 1:  # 50 packets/s
            for p in audio.next_packets():
                fanouts["audio"].on_packet(p, "OPUS", time.perf_counter())
        clock.t += 0.001


@pytest.mark.parametrize("codec", ["H264", "VP8"])
async def test_recorder_stream_copies_rtp_with_reconnect_gap(tmp_path, codec):
    clock = Clock(1_700_000_000.0)
    rec, fanouts, tasks = await make_recorder(tmp_path, {"video": codec, "audio": "OPUS"}, clock)
    assert fanouts["video"].keyframes.requested == 1  # the recorder asks for one as it starts
    try:
        for f in fanouts.values():
            f.attach_source(None)
        clock.t += 0.2  # the publisher connects 200 ms into the broadcast
        feed(fanouts, {"video": SyntheticSource(codec), "audio": SyntheticSource("OPUS")}, 2.0, clock)
        clock.t += 1.5  # it drops and comes back 1.5 s later, with new encoders
        for f in fanouts.values():
            f.attach_source(None)
        feed(fanouts, {"video": SyntheticSource(codec, start=5000, seq=3, ts=12345),
                       "audio": SyntheticSource("OPUS", seq=40000, ts=999)}, 1.0, clock)
        manifest = await rec.stop()
    finally:
        await tasks.close()
    directory = recording_dir(tmp_path, "demo", rec.broadcast.id)
    assert manifest == read_manifest(directory)
    assert manifest["status"] == "recorded" and manifest["error"] is None
    assert manifest["container"] == choose_container({"video": codec})
    assert manifest["video_codec"] == codec.lower() and manifest["audio_codec"] == "opus"
    media = directory / manifest["file"]
    assert manifest["bytes"] == media.stat().st_size > 0
    # no encoder anywhere in the output: the video stream has no codec context at all,
    # the audio one is a never-opened copy of the Opus template
    assert rec._writer.codec_contexts == [("audio", False, False)]

    dec = Decoded(media)
    assert dec.kinds == ["audio", "video"]
    before = [n for n in dec.numbers if n < 5000]
    after = [n for n in dec.numbers if n >= 5000]
    assert before[0] == 0 and consecutive(before) and len(before) == 60
    assert after[0] == 5000 and consecutive(after) and len(after) == 30
    assert dec.video_ms == sorted(dec.video_ms) and dec.audio_ms == sorted(dec.audio_ms)
    # on the broadcast clock: the first frame arrived at 200 ms, the second source at 3.7 s
    assert abs(dec.video_ms[0] - 200) <= 10
    assert abs(dec.video_ms[len(before)] - 3700) <= 10
    assert abs(dec.audio_ms[0] - 200) <= 20
    [gap] = manifest["gaps"]
    assert 2150 <= gap[0] <= 2250 and 3690 <= gap[1] <= 3710
    assert abs(manifest["duration_ms"] - 4700) <= 60
    assert manifest["start_ms"] in range(190, 211)
    assert dec.tone_share() > 0.5


async def test_recorder_audio_only_and_video_only(tmp_path):
    for codecs in ({"audio": "OPUS"}, {"video": "H264"}, {"video": "VP8"}):
        clock = Clock(1_700_000_000.0)
        rec, fanouts, tasks = await make_recorder(tmp_path / "-".join(codecs.values()), codecs, clock)
        for f in fanouts.values():
            f.attach_source(None)
        sources = {k: SyntheticSource(c) for k, c in codecs.items()}
        feed(fanouts, sources, 1.0, clock)
        manifest = await rec.stop()
        await tasks.close()
        dec = Decoded(rec.path)
        assert manifest["status"] == "recorded"
        if "video" in codecs:
            assert dec.kinds == ["video"] and dec.numbers == list(range(30))
            assert_frames_follow_their_numbers(dec)
            assert manifest["audio_codec"] is None
        else:
            assert dec.kinds == ["audio"] and manifest["container"] == "webm"
            assert 0.9 * 48000 < dec.audio_samples < 1.1 * 48000
            assert dec.tone_share() > 0.5
            assert manifest["video_codec"] is None


async def test_disk_full_keeps_the_partial_recording_and_says_so(tmp_path):
    """The media file is /dev/full: every write fails with ENOSPC, as on a full disk."""
    if not os.path.exists("/dev/full"):
        missing_tool("no /dev/full")
    clock = Clock(1_700_000_000.0)
    rec, fanouts, tasks = await make_recorder(tmp_path, {"video": "H264", "audio": "OPUS"}, clock)
    rec.directory.mkdir(parents=True, exist_ok=True)  # the writer may have made it already
    rec.path.symlink_to("/dev/full")
    for f in fanouts.values():
        f.attach_source(None)
    feed(fanouts, {"video": SyntheticSource("H264"), "audio": SyntheticSource("OPUS")}, 1.0, clock)
    await wait_for(lambda: rec.status == "failed", timeout=10)
    # the recorder lets go of the fanouts: no more work for a recording that cannot go on
    await wait_for(lambda: not fanouts["video"].sinks and not fanouts["audio"].sinks, timeout=5)
    on_disk = read_manifest(rec.directory)
    assert on_disk["status"] == "failed" and "No space left on device" in on_disk["error"]
    # a packager may take the failed recording over while the broadcast goes on: the
    # recorder does not write that manifest again
    (rec.directory / MANIFEST_NAME).write_text(json.dumps(dict(on_disk, status="processing")))
    manifest = await rec.stop()
    await tasks.close()
    assert manifest["status"] == "failed"
    assert read_manifest(rec.directory)["status"] == "processing"


async def test_writer_falling_behind_drops_frames_not_the_loop(tmp_path, monkeypatch):
    clock = Clock(1_700_000_000.0)
    gate = threading.Event()
    real_frame = writer_module.RecordingWriter._frame

    def slow_frame(self, *args):
        gate.wait(10)  # the disk is stalled
        return real_frame(self, *args)

    monkeypatch.setattr(writer_module.RecordingWriter, "_frame", slow_frame)
    rec, fanouts, tasks = await make_recorder(tmp_path, {"video": "VP8"}, clock, max_queued=10)
    for f in fanouts.values():
        f.attach_source(None)
    src = SyntheticSource("VP8")
    feed(fanouts, {"video": src}, 1.0, clock)  # returns: the loop never waits for the disk
    assert rec.dropped_frames > 0
    gate.set()
    manifest = await rec.stop()
    await tasks.close()
    assert manifest["status"] == "recorded" and manifest["dropped_frames"] == rec.dropped_frames
    dec = Decoded(rec.path)
    assert dec.numbers[0] == 0 and consecutive(dec.numbers)  # what was kept decodes cleanly


async def test_a_recorder_bug_fails_the_recording_not_the_fanout(tmp_path, monkeypatch):
    clock = Clock(1_700_000_000.0)
    rec, fanouts, tasks = await make_recorder(tmp_path, {"video": "VP8"}, clock)
    fanouts["video"].attach_source(None)

    def broken(self, *args):
        raise ZeroDivisionError("bug")

    monkeypatch.setattr(recorder_module.Recorder, "_frame", broken)
    feed(fanouts, {"video": SyntheticSource("VP8")}, 1.0, clock)
    assert fanouts["video"].sinks == [] and fanouts["video"].stats.packets_in > 0
    await wait_for(lambda: rec.status == "failed", timeout=5)
    manifest = await rec.stop()
    await tasks.close()
    assert "ZeroDivisionError" in manifest["error"]


async def test_room_records_unless_recordings_are_off(tmp_path):
    from core.settings import Settings
    from mediaserver.live.room import Room

    for enabled in (False, True):
        room = Room("demo", Settings.build(data_dir=tmp_path, recordings=enabled))
        broadcast = Broadcast()
        room._start_recorder(broadcast, {"video": "H264", "audio": "OPUS"})
        assert (room.recorder is not None) == enabled
        assert room.stats()["recording"] == (room.recorder.state() if enabled else None)
        if enabled:
            assert room.fanouts["video"].sinks and room.fanouts["audio"].sinks
        await room.close()  # server shutdown: the recorder is stopped and detached
        assert room.recorder is None and not room.fanouts["video"].sinks
    manifest = read_manifest(recording_dir(tmp_path, "demo", broadcast.id))
    assert manifest["status"] == "recorded" and manifest["ended_by"] == "shutdown"
    assert manifest["container"] == "mpegts"
    assert manifest["file"] is None and manifest["notes"] == ["no media was received"]


def test_opus_head_layout():
    head = opus_head()
    assert len(head) == 19 and head[:8] == b"OpusHead"
    assert head[8] == 1 and head[9] == 2
    assert int.from_bytes(head[10:12], "little") == 312
    assert int.from_bytes(head[12:16], "little") == 48000
    assert head[16:] == b"\x00\x00\x00"


# ====================================================================== end to end (real peers)
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
