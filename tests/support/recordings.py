"""Recordings as the recorder leaves them, generated with PyAV, and HLS output read back.

Recordings are made the way the recorder writes them (packet times in ms on the broadcast
clock, a fresh encoder -- so a new IDR and parameter sets -- for every publisher session,
Opus in 20 ms packets), so the packaging and replay tests do not depend on it. Every frame
carries its number (tests/support/peers.py barcode); the audio is a 440 Hz tone that starts
at a known time, so A/V placement can be measured on the output.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Optional

import av
import cv2
import numpy as np

from mediaserver.packaging.options import PackageOptions
from tests.support.peers import draw_number, read_number

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
