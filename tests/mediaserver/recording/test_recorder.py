"""The recorder on synthetic RTP (aiortc's own encoders and packetizers, no network): stream
copy with a reconnect gap, audio or video only, a full disk, a writer that falls behind, a
recorder bug, a room with recordings off. The frame assembler is in test_frame_assembler.py,
recording real broadcasts in test_live_recording.py."""

from __future__ import annotations

import fractions
import json
import os
import threading
import time

import av
import numpy as np
import pytest
from aiortc.codecs import get_encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from core.logs import context_logger
from core.tasks import TaskOwner
from mediaserver.live.room import Broadcast
from mediaserver.recording import recorder as recorder_module
from mediaserver.recording import writer as writer_module
from mediaserver.recording.container import choose_container, opus_head
from mediaserver.recording.manifest import MANIFEST_NAME, read_manifest, recording_dir
from mediaserver.recording.recorder import Recorder
from mediaserver.sfu.fanout import Fanout
from tests.support.fanout_ports import packet as rtp
from tests.support.missing_tools import missing_tool
from tests.support.peers import draw_number
from tests.support.recorded import Decoded, assert_frames_follow_their_numbers, consecutive
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e


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
        room.lifecycle.start_recorder(broadcast, {"video": "H264", "audio": "OPUS"})
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
