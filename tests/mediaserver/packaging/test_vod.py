"""Packaging (mediaserver/packaging/packager.py and its passes) and its job runner (mediaserver/packaging/jobs.py).

Recordings are generated here with PyAV the way the recorder writes them (packet times
in ms on the broadcast clock, a fresh encoder -- so a new IDR and parameter sets -- for
every publisher session, Opus in 20 ms packets), so these tests do not depend on it.
Every frame carries its number (tests/support/peers.py barcode); the audio is a 440 Hz tone that
starts at a known time, so A/V placement can be measured on the output.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import shutil
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Optional

import av
import cv2
import numpy as np
import pytest

from mediaserver.packaging.jobs import PackagingJobs
from mediaserver.packaging.options import JobCancelled, PackageOptions
from mediaserver.packaging.packager import package_recording
from mediaserver.recording.manifest import read_manifest
from tests.support.peers import draw_number, read_number

pytestmark = pytest.mark.inprocess

MS = Fraction(1, 1000)
OPTIONS = PackageOptions(thumb_interval_s=2.0, progress_interval_s=0.0)


# ---------------------------------------------------------------------- recordings
def _video_encoder(codec: str, size: tuple[int, int], fps: int, keyint: int, bitrate: int) -> av.CodecContext:
    if codec == "h264":
        enc = av.CodecContext.create("libx264", "w")
        enc.options = {
            "preset": "ultrafast", "tune": "zerolatency",
            "x264-params": f"bframes=0:keyint={keyint}:min-keyint={keyint}:scenecut=0",
        }
    else:
        enc = av.CodecContext.create("libvpx", "w")
        enc.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
        enc.gop_size = keyint
    enc.bit_rate = bitrate
    enc.width, enc.height = size
    enc.pix_fmt = "yuv420p"
    enc.time_base = MS
    enc.framerate = Fraction(fps)
    return enc


def _frame_image(n: int, size: tuple[int, int], noise: bool) -> np.ndarray:
    img = draw_number(n, size[0], size[1])
    if noise:  # texture and motion, so encoders and decoders have real work (benchmark)
        h = size[1] // 12
        band = np.random.default_rng(n).integers(0, 255, (h, size[0], 3), np.uint8)
        img[size[1] // 3: size[1] // 3 + h] = band
        cv2.circle(img, (int((n * 7) % size[0]), size[1] // 2), size[1] // 8, (0, 200, 255), -1)
        cv2.putText(img, "Stagepass replay benchmark", (10, size[1] * 3 // 4), cv2.FONT_HERSHEY_SIMPLEX,
                    1, (255, 255, 255), 2)
    return img


def make_recording(
    directory: Path,
    *,
    video: Optional[str] = "h264",
    audio: bool = True,
    seconds: float = 10.0,
    fps: int = 30,
    size: tuple[int, int] = (320, 240),
    keyint_s: float = 2.0,
    gaps: tuple[tuple[int, int], ...] = (),
    video_start_ms: int = 0,
    tone_start_ms: int = 2000,
    noise: bool = False,
    video_bitrate: int = 400_000,
    sps_once: bool = False,
    status: str = "recorded",
) -> Path:
    """A recording folder as the recorder leaves it. Frames of publisher session k are
    numbered from ``k * 1000``; ``gaps`` are ``[from_ms, to_ms]`` without any media."""
    directory.mkdir(parents=True, exist_ok=True)
    container = "mpegts" if video == "h264" else "webm"
    name = "recording.ts" if container == "mpegts" else "recording.webm"
    total_ms = int(seconds * 1000)
    sessions, t = [], 0
    for a, b in sorted(gaps):
        sessions.append((t, a))
        t = b
    sessions.append((t, total_ms))
    out = av.open(str(directory / name), "w", format=container)
    vstream = astream = None
    if video:
        vstream = out.add_mux_stream(video, width=size[0], height=size[1], time_base=MS)
    if audio:
        astream = out.add_stream("libopus", rate=48000, layout="mono")
        astream.codec_context.time_base = Fraction(1, 48000)
        astream.codec_context.bit_rate = 32000
    packets = []
    for k, (s0, s1) in enumerate(sessions):
        if video:
            enc = _video_encoder(video, size, fps, max(1, int(keyint_s * fps)), video_bitrate)
            first = max(s0, video_start_ms)
            i = 0
            while True:
                ms = first + round(i * 1000 / fps)
                if ms >= s1:
                    break
                frame = av.VideoFrame.from_ndarray(_frame_image(k * 1000 + i, size, noise), format="bgr24")
                frame.pts = ms
                frame.time_base = MS
                for p in enc.encode(frame.reformat(format="yuv420p")):
                    packets.append((p.pts, 0, bytes(p), p.is_keyframe))
                i += 1
            for p in enc.encode(None):
                packets.append((p.pts, 0, bytes(p), p.is_keyframe))
        if audio:
            aenc = astream.codec_context
            ms = s0
            while ms + 20 <= s1:
                n = np.arange(960) + ms * 48
                level = 8000 if ms >= tone_start_ms else 0
                pcm = (np.sin(2 * math.pi * 440 * n / 48000) * level).astype(np.int16).reshape(1, -1)
                frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
                frame.sample_rate = 48000
                frame.pts = ms * 48
                frame.time_base = Fraction(1, 48000)
                for p in aenc.encode(frame):
                    packets.append((None, 1, bytes(p), True))
                ms += 20
    # Opus packets come out of the encoder in order, one per 20 ms: stamp them like
    # the recorder does (the RTP clock, in ms), ignoring the encoder's priming offset
    audio_times = []
    for s0, s1 in sessions:
        audio_times += list(range(s0, s1 - 19, 20))
    ai = 0
    stamped = []
    for pts, kind, data, key in packets:
        if kind == 1:
            if ai >= len(audio_times):
                continue
            pts = audio_times[ai]
            ai += 1
        stamped.append((pts, kind, data, key))
    stamped.sort(key=lambda x: (x[0], x[1]))
    if sps_once:  # SPS/PPS only before the very first IDR (some encoders do that)
        seen = False
        for n, (pts, kind, data, key) in enumerate(stamped):
            if kind == 0 and key:
                if seen:
                    data = b"".join(b"\x00\x00\x00\x01" + u for u in _nals(data) if u[0] & 0x1F not in (7, 8))
                    stamped[n] = (pts, kind, data, key)
                seen = True
    for pts, kind, data, key in stamped:
        packet = av.Packet(data)
        packet.stream = vstream if kind == 0 else astream
        packet.time_base = MS
        packet.pts = packet.dts = pts
        packet.is_keyframe = key
        out.mux(packet)
    out.close()
    manifest = {
        "room": "demo", "broadcast": directory.name, "started_at": 1700000000.0,
        "container": container, "file": name,
        "video_codec": video, "audio_codec": "opus" if audio else None,
        "status": status, "ended_by": "broadcast_end", "gaps": [list(g) for g in gaps],
        "error": None, "bytes": (directory / name).stat().st_size,
        "start_ms": 0, "duration_ms": total_ms, "notes": [],
    }
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> dict[str, Path]:
    """Generated once per module; every test copies the one it needs."""
    base = tmp_path_factory.mktemp("sources")
    return {
        "h264": make_recording(base / "h264"),
        "vp8": make_recording(base / "vp8", video="vp8", keyint_s=100),
    }


def copy_recording(src: Path, data_dir: Path, broadcast: str = "b1", room: str = "demo") -> Path:
    dst = data_dir / "recordings" / room / broadcast
    shutil.copytree(src, dst)
    m = json.loads((dst / "manifest.json").read_text())
    m["broadcast"] = broadcast
    (dst / "manifest.json").write_text(json.dumps(m))
    return dst


# ---------------------------------------------------------------------- reading HLS
@dataclass
class Segment:
    file: str
    duration: float
    discontinuity: bool
    start: float = 0.0
    video: list = field(default_factory=list)  # (pts_ms, number, mean brightness, key)
    audio: list = field(default_factory=list)  # (pts_ms, samples, rms)
    video_nals: list = field(default_factory=list)
    first_video_key: Optional[bool] = None
    audio_codec: Optional[str] = None
    audio_rate: Optional[int] = None
    video_codec: Optional[str] = None


def parse_playlist(text: str) -> tuple[dict, list[Segment]]:
    lines = text.strip().splitlines()
    assert lines[0] == "#EXTM3U"
    tags: dict = {}
    segments: list[Segment] = []
    duration, disc = None, False
    for line in lines[1:]:
        if line.startswith("#EXTINF:"):
            duration = float(line[8:].split(",")[0])
        elif line == "#EXT-X-DISCONTINUITY":
            disc = True
        elif line.startswith("#"):
            key, _, value = line[1:].partition(":")
            tags[key] = value
        else:
            segments.append(Segment(line, duration, disc))
            duration, disc = None, False
    t = 0.0
    for s in segments:
        s.start = t
        t += s.duration
    return tags, segments


def _nals(data: bytes) -> list[bytes]:
    parts = re.split(b"\x00\x00\x01", data)
    return [p.rstrip(b"\x00") for p in parts[1:] if p and (p[0] & 0x1F) != 9]  # no AUD


def read_hls(directory: Path) -> tuple[dict, list[Segment]]:
    hls = directory / "hls"
    tags, segments = parse_playlist((hls / "index.m3u8").read_text())
    for seg in segments:
        with av.open(str(hls / seg.file)) as c:
            vs = c.streams.video[0] if c.streams.video else None
            as_ = c.streams.audio[0] if c.streams.audio else None
            if vs is not None:
                seg.video_codec = vs.codec_context.name
            if as_ is not None:
                seg.audio_codec = as_.codec_context.name
                seg.audio_rate = as_.codec_context.sample_rate
            for packet in c.demux():
                if packet.size == 0:
                    continue
                if packet.stream is vs:
                    seg.video_nals += _nals(bytes(packet))
                    if seg.first_video_key is None:
                        seg.first_video_key = b"\x00\x00\x01\x65" in bytes(packet) or any(
                            (n[0] & 0x1F) == 5 for n in _nals(bytes(packet)))
                for frame in packet.decode():
                    ms = float(frame.pts * frame.time_base * 1000)
                    if packet.stream is vs:
                        img = frame.to_ndarray(format="bgr24")
                        seg.video.append((ms, read_number(img), float(img.mean()), frame.key_frame))
                    else:
                        pcm = frame.to_ndarray()
                        seg.audio.append((ms, frame.samples, float(np.sqrt(np.mean(pcm ** 2)))))
    return tags, segments


def source_nals(path: Path) -> list[bytes]:
    out = []
    with av.open(str(path)) as c:
        for packet in c.demux(c.streams.video[0]):
            if packet.size:
                out += _nals(bytes(packet))
    return out


def check_playlist(tags: dict, segments: list[Segment]) -> None:
    assert tags["EXT-X-PLAYLIST-TYPE"] == "VOD"
    assert "EXT-X-ENDLIST" in tags
    assert int(tags["EXT-X-TARGETDURATION"]) == math.ceil(max(s.duration for s in segments))
    for n, seg in enumerate(segments):
        if seg.video:
            # independently decodable, starting at the playlist time of the segment
            assert seg.first_video_key, seg.file
            assert seg.video[0][3], seg.file
            assert abs(seg.video[0][0] / 1000 - seg.start) < 0.040, (seg.file, seg.video[0][0], seg.start)


def check_thumbs(rec: Path, fps: int = 30) -> None:
    """Each tile shows the frame of its time (the frame number in the barcode)."""
    index = json.loads((rec / "thumbs.json").read_text())
    sheet = cv2.imread(str(rec / "thumbs.jpg"))
    w, h = index["width"], index["height"]
    for tile in index["tiles"]:
        img = sheet[tile["y"]:tile["y"] + h, tile["x"]:tile["x"] + w]
        assert abs(read_number(img) - tile["t_ms"] * fps // 1000) <= 1, tile


def all_video(segments: list[Segment]) -> list[tuple]:
    return [v for s in segments for v in s.video]


def all_audio(segments: list[Segment]) -> list[tuple]:
    return [a for s in segments for a in s.audio]


def check_continuous(frames: list[tuple], max_step_ms: float = 60) -> None:
    times = [f[0] for f in frames]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert max(np.diff(times)) <= max_step_ms


def check_audio(segments: list[Segment], duration_s: float, tone_ms: Optional[int] = 2000) -> list[tuple]:
    audio = all_audio(segments)
    assert audio, "no audio"
    assert {s.audio_codec for s in segments} == {"aac"}
    assert {s.audio_rate for s in segments} == {48000}
    # continuous: each frame starts where the previous ended
    for (t0, n0, _), (t1, _, _) in zip(audio, audio[1:]):
        assert abs(t1 - (t0 + n0 / 48)) < 1.0, (t0, t1)
    total = sum(a[1] for a in audio) / 48000
    assert abs(total - duration_s) < 0.1, (total, duration_s)
    if tone_ms is not None:
        onset = next(a[0] for a in audio if a[2] > 0.05)
        assert abs(onset - tone_ms) <= 50, onset
    return audio


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
    """A real publisher, dropping once and coming back, recorded by the recorder; its
    broadcast end queues the job (the way the app wires it); the replay plays through."""
    from signalling.whip import ROOMS
    from tests.conftest import KEY, wait_for
    from tests.support.peers import Publisher

    base, app = server
    rooms = app[ROOMS]
    jobs = PackagingJobs(settings.server.data_dir, OPTIONS)
    await jobs.start()
    queued = []

    async def package_ended(room, broadcast):
        directory = settings.server.data_dir / "recordings" / room.name / broadcast.id
        queued.append(jobs.enqueue(directory))

    rooms.broadcast_ended.clear()  # this test's runner, not the app's, packages the recording
    rooms.broadcast_ended.append(package_ended)
    try:
        first = Publisher(base, codec=codec, start=100)
        assert await first.publish("demo", KEY) == 201
        room = rooms.get("demo")
        await asyncio.sleep(3)
        await first.close()  # the network drops: no DELETE
        await wait_for(lambda: room.publisher is None, timeout=15)
        await asyncio.sleep(0.5)  # nobody publishes for a while: a gap to fill
        second = Publisher(base, codec=codec, start=5000)
        assert await second.publish("demo", KEY) == 201
        await asyncio.sleep(3)
        assert await second.delete() == 200
        await second.close()
        assert queued == [True]
        await asyncio.wait_for(jobs.join(), 60)
    finally:
        await jobs.close()
    [rec] = list((settings.server.data_dir / "recordings" / "demo").iterdir())
    manifest = read_manifest(rec)
    assert manifest["status"] == "ready", manifest
    [gap] = manifest["gaps"]
    tags, segments = read_hls(rec)
    check_playlist(tags, segments)
    video = all_video(segments)
    check_continuous(video, max_step_ms=120)  # the publisher's own pacing, no hole
    numbers = [v[1] for v in video if v[2] > 20]
    before = [n for n in numbers if n < 5000]
    after = [n for n in numbers if n >= 5000]
    assert numbers == before + after and len(before) > 60 and len(after) > 60
    assert before == list(range(before[0], before[0] + len(before))) and before[0] < 110
    assert after == list(range(after[0], after[0] + len(after))) and after[0] < 5010
    black = [v[0] for v in video if v[2] <= 20]
    assert gap[1] - gap[0] >= 400
    assert len(black) >= 10 and all(gap[0] - 40 <= t < gap[1] + 40 for t in black)
    audio = check_audio(segments, sum(s.duration for s in segments), tone_ms=None)
    assert abs(audio[0][0] - video[0][0]) <= 100
    assert abs(manifest["hls_duration_ms"] - manifest["duration_ms"]) <= 100
