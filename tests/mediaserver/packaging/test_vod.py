"""Packaging (mediaserver/packaging/packager.py and its passes) and its job runner (mediaserver/packaging/jobs.py).

Recordings are generated with PyAV the way the recorder writes them (tests/support/recordings.py),
so these tests do not depend on it.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time

import av
import cv2
import numpy as np
import pytest

from mediaserver.packaging.jobs import PackagingJobs
from mediaserver.packaging.options import JobCancelled, PackageOptions
from mediaserver.packaging.packager import package_recording
from mediaserver.recording.manifest import read_manifest
from tests.support.live_server import KEY
from tests.support.peers import Publisher
from tests.support.recorded import Decoded, assert_frames_follow_their_numbers, consecutive
from tests.support.recordings import (
    OPTIONS, all_audio, all_video, check_audio, check_continuous, check_playlist, check_thumbs, copy_recording,
    make_recording, read_hls, source_nals,
)
from tests.support.waiting import wait_for

pytestmark = pytest.mark.inprocess


# ---------------------------------------------------------------------- tests
def test_h264_remux(recordings, tmp_path):
    rec = copy_recording(recordings["h264"], tmp_path)
    seen = []
    manifest = package_recording(rec, OPTIONS, on_progress=seen.append)
    assert manifest["status"] == "ready" and manifest["progress"] == 100 and manifest["error"] is None
    assert seen[-1] == 100 and seen == sorted(seen)
    tags, segments = read_hls(rec)
    check_playlist(tags, segments)
    assert [round(s.duration, 3) for s in segments] == [4.0, 4.0, 2.0]
    assert not any(s.discontinuity for s in segments)
    video = all_video(segments)
    # every frame once, in order, at its media-clock time (playlist time == t_ms)
    assert [v[1] for v in video] == list(range(300))
    assert all(abs(v[0] - round(n * 1000 / 30)) <= 1 for n, v in enumerate(video))
    audio = check_audio(segments, 10.0)
    assert abs(audio[0][0] - video[0][0]) <= 100
    # remuxed, not re-encoded: the slices are the recorder's bytes; no encoder was made
    assert [n for s in segments for n in s.video_nals] == source_nals(rec / "recording.ts")
    stats = manifest["packaging"]["stats"]
    assert stats["encoders_created"] == 0 and stats["frames_encoded"] == 0
    assert manifest["video"]["mode"] == "copy" and manifest["video"]["copied_ms"] >= 9900
    # duration and size recorded
    assert abs(manifest["hls_duration_ms"] - 10000) <= 40
    files = sorted((rec / "hls").glob("*.ts"))
    assert manifest["segments"] == len(files) == 3
    assert manifest["hls_bytes"] == sum(f.stat().st_size for f in files)
    assert manifest["target_duration"] == 4 and manifest["segment_max_ms"] == 4000
    # poster at video size, a strip of 160-wide tiles, one every 2 s, showing that time
    poster = cv2.imread(str(rec / "poster.jpg"))
    assert poster.shape == (240, 320, 3)
    index = json.loads((rec / "thumbs.json").read_text())
    assert [t["t_ms"] for t in index["tiles"]] == [0, 2000, 4000, 6000, 8000]
    sheet = cv2.imread(str(rec / "thumbs.jpg"))
    assert sheet.shape == (120, 5 * 160, 3) and (index["width"], index["height"]) == (160, 120)
    check_thumbs(rec)
    assert (rec / "thumbs.vtt").read_text().startswith("WEBVTT")
    assert not list(rec.glob(".vod-tmp-*"))


def test_vp8_transcode(recordings, tmp_path):
    """VP8 (one keyframe only) in WebM: transcoded, with our own keyframes every ~4 s."""
    rec = copy_recording(recordings["vp8"], tmp_path)
    manifest = package_recording(rec, OPTIONS)
    tags, segments = read_hls(rec)
    check_playlist(tags, segments)
    assert {s.video_codec for s in segments} == {"h264"}
    assert manifest["video"]["mode"] == "transcode" and manifest["video"]["source_codec"] == "vp8"
    assert max(s.duration for s in segments) <= 5.5 and len(segments) >= 2
    video = all_video(segments)
    assert [v[1] for v in video] == list(range(300))
    assert all(abs(v[0] - round(n * 1000 / 30)) <= 1 for n, v in enumerate(video))
    check_audio(segments, 10.0)
    assert manifest["packaging"]["stats"]["encoders_created"] == 1
    assert cv2.imread(str(rec / "poster.jpg")).shape == (240, 320, 3)
    assert cv2.imread(str(rec / "thumbs.jpg")).shape == (120, 800, 3)


def test_gap_and_late_video_are_filled(tmp_path):
    """A publisher reconnect (no media 4-6 s) and video that starts 1 s after the audio:
    black frames and silence fill both, the timeline stays the media clock."""
    rec = make_recording(tmp_path / "recordings" / "demo" / "gap", gaps=((4000, 6000),), video_start_ms=1000)
    manifest = package_recording(rec, OPTIONS)
    tags, segments = read_hls(rec)
    check_playlist(tags, segments)
    video = all_video(segments)
    check_continuous(video, max_step_ms=40)
    assert video[0][0] == 0 and video[-1][0] > 9900
    real = [v for v in video if v[2] > 20]  # the test frames are grey (64), fillers black
    black = [v for v in video if v[2] <= 20]
    assert [v[1] for v in real] == list(range(90)) + list(range(1000, 1120))
    # every real frame at its recorded time
    assert real[0][0] == 1000 and abs(real[90][0] - 6000) <= 1
    assert all(v[0] < 1000 or 3960 < v[0] < 6000 for v in black)
    assert sum(1 for v in black if v[0] > 3960) >= 55  # ~2 s of filler at 30 fps
    audio = check_audio(segments, 10.0)
    assert all(a[2] < 0.01 for a in audio if 4030 <= a[0] <= 5970)  # silence in the gap
    assert any(a[2] > 0.05 for a in audio if 6000 <= a[0] <= 6200)
    # filler (own encoder) <-> remux: parameter sets change, so players get a discontinuity
    assert [s.discontinuity for s in segments].count(True) == 3
    assert manifest["video"]["mode"] == "mixed"
    assert manifest["video"]["filled_ms"] >= 2900
    assert manifest["discontinuities"] == 3


def test_short_holes_are_closed_not_filled(tmp_path):
    """Video 60 ms after the broadcast start and a 50 ms reconnect: too short for filler;
    the next keyframe is shown that much early, so the buffered range has no hole."""
    rec = make_recording(tmp_path / "r", gaps=((4000, 4050),), video_start_ms=60, audio=False)
    manifest = package_recording(rec, OPTIONS)
    tags, segments = read_hls(rec)
    check_playlist(tags, segments)
    video = all_video(segments)
    check_continuous(video, max_step_ms=100)  # at most min_fill + one frame
    assert video[0][0] == 0 and video[1][0] == 93  # frame 0 early, frame 1 on time
    assert [v[1] for v in video] == list(range(119)) + list(range(1000, 1179))
    assert manifest["video"]["mode"] == "copy" and manifest["video"]["filled_ms"] == 0
    assert [s.discontinuity for s in segments].count(True) == 1  # the publisher's new session


def test_parameter_sets_are_repeated_at_segment_starts(tmp_path):
    """SPS/PPS only at the first IDR: every segment (and thumbnail decoder) gets them."""
    rec = make_recording(tmp_path / "r", sps_once=True, audio=False)
    assert sum(1 for n in source_nals(rec / "recording.ts") if n[0] & 0x1F == 7) == 1
    manifest = package_recording(rec, OPTIONS)
    tags, segments = read_hls(rec)
    check_playlist(tags, segments)  # each segment decoded on its own from its first frame
    assert [v[1] for v in all_video(segments)] == list(range(300))
    assert all(sum(1 for n in s.video_nals if n[0] & 0x1F == 7) == 1 for s in segments)
    assert manifest["packaging"]["stats"]["parameter_sets_inserted"] >= 2
    assert manifest["thumbs"]["count"] == 5
    check_thumbs(rec)


def test_long_gop_is_reencoded(tmp_path):
    """One keyframe in 10 s (a browser that was never asked for another): that GOP is
    re-encoded into short segments instead of one 10 s segment."""
    rec = make_recording(tmp_path / "r", keyint_s=100, audio=False)
    manifest = package_recording(rec, PackageOptions(max_gop_ms=6000, thumb_interval_s=5))
    tags, segments = read_hls(rec)
    check_playlist(tags, segments)
    assert max(s.duration for s in segments) <= 5.5
    assert [v[1] for v in all_video(segments)] == list(range(300))
    assert manifest["video"]["mode"] == "reencode"
    unlimited = make_recording(tmp_path / "u", keyint_s=100, audio=False)
    manifest = package_recording(unlimited, PackageOptions(max_gop_ms=0, thumb_interval_s=5))
    assert manifest["segments"] == 1 and manifest["target_duration"] == 10
    assert manifest["video"]["mode"] == "copy"


@pytest.mark.parametrize("codec", ["h264", "vp8"])
def test_truncated_file(recordings, tmp_path, codec):
    """The process died mid-recording: the file ends in the middle of a packet."""
    rec = copy_recording(recordings[codec], tmp_path)
    media = rec / json.loads((rec / "manifest.json").read_text())["file"]
    data = media.read_bytes()
    media.write_bytes(data[: int(len(data) * 0.6)])
    manifest = package_recording(rec, OPTIONS)
    assert manifest["status"] == "ready"
    tags, segments = read_hls(rec)
    check_playlist(tags, segments)
    video = all_video(segments)
    numbers = [v[1] for v in video]
    assert numbers == list(range(len(numbers))) and len(numbers) >= 120
    last_frame_s = video[-1][0] / 1000
    duration = sum(s.duration for s in segments)
    assert abs(duration - last_frame_s) <= max(s.duration for s in segments)
    assert abs(manifest["hls_duration_ms"] / 1000 - duration) < 0.01
    check_audio(segments, duration)


def test_audio_only_and_video_only(tmp_path):
    audio_rec = make_recording(tmp_path / "a", video=None, seconds=9)
    manifest = package_recording(audio_rec, OPTIONS)
    tags, segments = read_hls(audio_rec)
    check_playlist(tags, segments)
    assert not all_video(segments) and manifest["video"] is None
    check_audio(segments, 9.0)
    assert 3.9 < segments[0].duration < 4.1
    assert manifest["thumbs"] is None and (audio_rec / "poster.jpg").exists()
    assert not (audio_rec / "thumbs.jpg").exists()

    video_rec = make_recording(tmp_path / "v", audio=False, seconds=6)
    manifest = package_recording(video_rec, OPTIONS)
    tags, segments = read_hls(video_rec)
    check_playlist(tags, segments)
    assert not all_audio(segments) and manifest["audio"] is None
    assert [v[1] for v in all_video(segments)] == list(range(180))


def test_stop_leaves_processing_and_no_debris(recordings, tmp_path):
    rec = copy_recording(recordings["vp8"], tmp_path)
    stop = threading.Event()
    stop.set()
    with pytest.raises(JobCancelled):
        package_recording(rec, OPTIONS, stop=stop)
    assert read_manifest(rec)["status"] == "processing"
    assert not list(rec.glob(".vod-tmp-*")) and not (rec / "hls").exists()


def test_unreadable_recording_fails_cleanly(tmp_path):
    rec = tmp_path / "recordings" / "demo" / "bad"
    rec.mkdir(parents=True)
    (rec / "recording.ts").write_bytes(b"\x47" + bytes(5000))
    (rec / "manifest.json").write_text(json.dumps({"file": "recording.ts", "status": "recorded", "gaps": []}))
    with pytest.raises(Exception):
        package_recording(rec, OPTIONS)
    m = read_manifest(rec)
    assert m["status"] == "failed" and m["error"] and m["packaging"]["error"] == m["error"]
    assert not list(rec.glob(".vod-tmp-*"))


async def test_jobs_resume_after_crash_and_rerun_is_idempotent(recordings, tmp_path):
    data = tmp_path
    crashed = copy_recording(recordings["h264"], data, "crashed")
    m = read_manifest(crashed)
    m.update(status="processing", progress=37, packaging={"attempts": 1})
    (crashed / "manifest.json").write_text(json.dumps(m))
    (crashed / ".vod-tmp-dead").mkdir()  # debris of the crashed run
    live_cut = copy_recording(recordings["h264"], data, "cut")  # server killed while recording
    m = read_manifest(live_cut)
    m["status"] = "recording"
    (live_cut / "manifest.json").write_text(json.dumps(m))
    looping = copy_recording(recordings["h264"], data, "looping")  # crashed the server 3 times
    m = read_manifest(looping)
    m.update(status="processing", packaging={"attempts": 3})
    (looping / "manifest.json").write_text(json.dumps(m))
    disk_full = copy_recording(recordings["h264"], data, "full")  # the recorder failed
    m = read_manifest(disk_full)
    m.update(status="failed", error="write failed at 6000 ms: No space left on device")
    (disk_full / "manifest.json").write_text(json.dumps(m))
    bad = copy_recording(recordings["h264"], data, "bad")  # packaging failed before
    m = read_manifest(bad)
    m.update(status="failed", error="x", packaging={"attempts": 1, "error": "x"})
    (bad / "manifest.json").write_text(json.dumps(m))

    jobs = PackagingJobs(data, OPTIONS)
    await jobs.start()
    try:
        picked = await jobs.resume()
        assert sorted(p.name for p in picked) == ["crashed", "cut", "full"]
        await asyncio.wait_for(jobs.join(), 60)
        assert read_manifest(disk_full)["recording_error"].endswith("No space left on device")
        for rec in (crashed, live_cut, disk_full):
            m = read_manifest(rec)
            assert m["status"] == "ready" and m["progress"] == 100, m
            assert not list(rec.glob(".vod-tmp-*"))
        assert read_manifest(crashed)["packaging"]["attempts"] == 2
        m = read_manifest(looping)
        assert m["status"] == "failed" and "attempts" in m["error"]
        assert read_manifest(bad)["status"] == "failed"
        assert jobs.finished == 3 and jobs.failed == 0

        # a re-run of a ready recording replaces its output with the same result
        before = {p.name: p.stat().st_size for p in (crashed / "hls").iterdir()}
        playlist = (crashed / "hls" / "index.m3u8").read_text()
        assert jobs.enqueue(crashed) and not jobs.enqueue(crashed)  # no duplicate
        await asyncio.wait_for(jobs.join(), 60)
        assert {p.name: p.stat().st_size for p in (crashed / "hls").iterdir()} == before
        assert (crashed / "hls" / "index.m3u8").read_text() == playlist
        assert sorted(p.name for p in crashed.iterdir()) == sorted(
            ["hls", "manifest.json", "recording.ts", "poster.jpg", "thumbs.jpg", "thumbs.json", "thumbs.vtt"])
        assert read_manifest(crashed)["status"] == "ready"
        # nothing left to resume
        assert await jobs.resume() == []
    finally:
        await jobs.close()


async def test_jobs_keep_the_loop_responsive_and_close_mid_job(recordings, tmp_path):
    rec = copy_recording(recordings["vp8"], tmp_path)
    jobs = PackagingJobs(tmp_path, OPTIONS)
    await jobs.start()
    assert jobs.enqueue(rec)
    loop = asyncio.get_running_loop()
    worst = 0.0
    while jobs.current is None and read_manifest(rec)["status"] != "ready":
        await asyncio.sleep(0.005)
    for _ in range(20):  # while packaging runs in its thread, the loop keeps ticking
        t0 = loop.time()
        await asyncio.sleep(0.005)
        worst = max(worst, loop.time() - t0)
    await jobs.close()  # stops the job at its next check; it resumes on the next start
    assert read_manifest(rec)["status"] in ("processing", "ready")
    assert worst < 0.5
    assert not list(rec.glob(".vod-tmp-*"))


@pytest.mark.parametrize("same", [True, False])
def test_stereo_opus_with_mono_content_becomes_mono_aac(tmp_path, same):
    """Browsers announce stereo Opus and send mono speech: AAC is mono then."""
    from mediaserver.packaging.audio import AudioTimeline

    timeline = AudioTimeline(tmp_path / "a.adts", 64000)
    for i in range(50):  # 1 s of 20 ms frames
        t = (np.arange(960) + i * 960) / 48000
        left = np.sin(2 * math.pi * 440 * t).astype(np.float32) * 0.3
        right = left if same else np.sin(2 * math.pi * 660 * t).astype(np.float32) * 0.3
        frame = av.AudioFrame.from_ndarray(np.stack([left, right]), format="fltp", layout="stereo")
        frame.sample_rate = 48000
        timeline.add(frame, i * 1800)
    timeline.settle()
    timeline.finish(90000)
    assert timeline.source_channels == 2 and timeline.channels == (1 if same else 2)
    assert timeline.end_ticks >= 90000 and len(timeline.index_pts) == 47


# ---------------------------------------------------------------------- with the real recorder
@pytest.mark.slow
@pytest.mark.parametrize("codec", ["video/H264", "video/VP8"])
async def test_live_broadcast_with_reconnect_becomes_a_replay(server, settings, codec):
    """A real publisher, dropping once and coming back: the recorder goes on with the same
    recording (frame for frame, the time nobody published noted as a gap); the broadcast's
    end queues the job (the way the app wires it); the replay plays through."""
    from signalling.whip import ROOMS

    base, app = server
    rooms = app[ROOMS]
    jobs = PackagingJobs(settings.server.data_dir, OPTIONS)
    await jobs.start()
    queued, recorded_manifests = [], []

    async def package_ended(room, broadcast):
        directory = settings.server.data_dir / "recordings" / room.name / broadcast.id
        recorded_manifests.append(read_manifest(directory))  # the recorder's, before the job takes over
        queued.append(jobs.enqueue(directory))

    rooms.broadcast_ended.clear()  # this test's runner, not the app's, packages the recording
    rooms.broadcast_ended.append(package_ended)
    try:
        first = Publisher(base, codec=codec, start=100)
        assert await first.publish("demo", KEY) == 201
        room = rooms.get("demo")
        broadcast, recorder = room.broadcast.id, room.recorder
        assert recorder is not None
        # 3 s of media sent (not 3 s of wall clock, which a loaded machine spends partly
        # connecting): the checks below want more than 45 and 60 frames on each side
        await wait_for(lambda: first.video.number >= 100 + 90, timeout=60)
        await first.close()  # the network drops: no DELETE
        await wait_for(lambda: room.publisher is None, timeout=15)
        gone_ms = room.broadcast.t_ms()
        await asyncio.sleep(0.5)  # nobody publishes for a while: a gap to fill
        second = Publisher(base, codec=codec, start=5000)
        back_ms = room.broadcast.t_ms()
        began = time.monotonic()
        assert await second.publish("demo", KEY) == 201
        assert room.recorder is recorder  # the same recording goes on
        await wait_for(lambda: second.video.number >= 5000 + 90, timeout=60)  # 3 s of media
        assert await second.delete() == 200
        elapsed = time.monotonic() - began
        await second.close()
        assert queued == [True]
        await asyncio.wait_for(jobs.join(), 60)
    finally:
        await jobs.close()
    [rec] = list((settings.server.data_dir / "recordings" / "demo").iterdir())
    assert room.broadcast is None and rec == recorder.directory
    check_recording_across_the_reconnect(recorder, recorded_manifests, broadcast, gone_ms, back_ms, elapsed)
    manifest = read_manifest(rec)
    assert manifest["status"] == "ready", manifest
    [gap] = manifest["gaps"]
    tags, segments = read_hls(rec)
    check_playlist(tags, segments)
    video = all_video(segments)
    # the replay starts at 0 with the first keyframe shown early (a hole under min_fill_ms
    # is closed so, timeline.py): its step is that hole plus a frame, 67-93 ms measured at
    # load 8-15, more when a loaded publisher takes longer to encode its first keyframe
    assert video[1][0] - video[0][0] <= OPTIONS.min_fill_ms + 40, video[:3]
    check_continuous(video[1:], max_step_ms=120)  # then the publisher's own pacing, no hole
    numbers = [v[1] for v in video if v[2] > 20]
    before = [n for n in numbers if n < 5000]
    after = [n for n in numbers if n >= 5000]
    assert numbers == before + after and len(before) > 60 and len(after) > 60
    assert before == list(range(before[0], before[0] + len(before))) and before[0] < 110
    assert after == list(range(after[0], after[0] + len(after))) and after[0] < 5010
    black = [v[0] for v in video if v[2] <= 20]
    assert gap[1] - gap[0] >= 400
    # black fills the video's hole and nothing else: after the first session's last frame,
    # before the second's first. The hole starts before the gap when a loaded publisher's
    # video encoder lagged its audio (180-260 ms measured at load 10-15): its last frames
    # were never sent, and the gap starts where its audio ended
    last_video = max(v[0] for v in video if v[2] > 20 and v[1] < 5000)
    first_back = min(v[0] for v in video if v[2] > 20 and v[1] >= 5000)
    assert len(black) >= 10 and all(last_video < t < first_back for t in black), (last_video, black, first_back)
    assert gap[0] - 1000 < last_video <= gap[0] + 50 and first_back >= gap[1] - 40
    audio = check_audio(segments, sum(s.duration for s in segments), tone_ms=None)
    assert abs(audio[0][0] - video[0][0]) <= 100
    assert abs(manifest["hls_duration_ms"] - manifest["duration_ms"]) <= 100


def check_recording_across_the_reconnect(recorder, recorded_manifests: list[dict], broadcast: str,
                                         gone_ms: float, back_ms: float, elapsed: float) -> None:
    """The recording itself (before packaging): one file for the broadcast, every frame of
    both publisher sessions in order, and a gap covering the time nobody published."""
    manifest = recorder.manifest
    assert recorded_manifests == [manifest]  # what the recorder wrote last is what it says
    assert manifest["broadcast"] == broadcast and manifest["status"] == "recorded"
    dec = Decoded(recorder.directory / manifest["file"])
    before = [n for n in dec.numbers if n < 5000]
    after = [n for n in dec.numbers if n >= 5000]
    assert before[0] < 105 and consecutive(before) and len(before) > 45
    assert after[0] < 5010 and consecutive(after) and len(after) > 45
    assert dec.numbers == before + after
    assert dec.video_ms == sorted(dec.video_ms) and dec.audio_ms == sorted(dec.audio_ms)
    [gap] = manifest["gaps"]
    assert gap[0] <= gone_ms + 100 and gap[1] >= back_ms  # covers the time nobody published
    last_before, first_after = dec.video_ms[len(before) - 1], dec.video_ms[len(before)]
    assert last_before <= gap[0] + 50 and gap[1] <= first_after
    # nothing in the gap (decoded Opus times are up to 7 ms early: the 312-sample pre-skip)
    assert not [t for t in dec.audio_ms if gap[0] + 30 < t < gap[1] - 10]
    assert_frames_follow_their_numbers(dec.slice(after))
    assert manifest["duration_ms"] > elapsed * 1000
