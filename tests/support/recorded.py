"""What the recorder left on disk, decoded with PyAV: frame numbers (tests/support/peers.py
barcode) and times, audio samples and how much of them is the publishers' 440 Hz tone."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from mediaserver.recording.manifest import read_manifest
from mediaserver.recording.recorder import Recorder
from tests.support.peers import read_number

FPS = 30  # the test publishers' frame rate


def consecutive(numbers: list[int]) -> bool:
    """Each number is the one before plus one."""
    return all(b == a + 1 for a, b in zip(numbers, numbers[1:]))


def the_recording(data_dir: Path, room: str = "demo") -> Path:
    """The one recording folder of ``room``."""
    dirs = [d for d in (Path(data_dir) / "recordings" / room).iterdir() if d.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


class Decoded:
    """Everything in a recording, decoded: video frame numbers and times, audio samples."""

    def __init__(self, path: Path) -> None:
        self.numbers: list[int] = []
        self.video_ms: list[float] = []
        self.audio_ms: list[float] = []
        self.audio_samples = 0
        chunks = []
        self.rate = 48000
        with av.open(str(path)) as c:
            self.format = c.format.name
            self.kinds = sorted(s.type for s in c.streams)
            for frame in c.decode(*c.streams):
                t = float(frame.pts * frame.time_base) * 1000 if frame.pts is not None else None
                if isinstance(frame, av.VideoFrame):
                    self.numbers.append(read_number(frame.to_ndarray(format="bgr24")))
                    self.video_ms.append(t)
                else:
                    pcm = frame.to_ndarray()
                    chunks.append(pcm[0] if pcm.ndim == 2 and pcm.shape[0] <= 8 else pcm.reshape(-1))
                    self.audio_ms.append(t)
                    self.audio_samples += frame.samples
                    self.rate = frame.sample_rate
        self.pcm = np.concatenate(chunks).astype(np.float64) if chunks else np.zeros(0)

    def slice(self, numbers: list[int]) -> "Decoded":
        """Only the video frames numbered ``numbers`` (their numbers and times)."""
        part = object.__new__(Decoded)
        keep = set(numbers)
        idx = [i for i, n in enumerate(self.numbers) if n in keep]
        part.numbers = [self.numbers[i] for i in idx]
        part.video_ms = [self.video_ms[i] for i in idx]
        return part

    def tone_share(self, freq: float = 440.0) -> float:
        """Share of the audio's energy within 20 Hz of ``freq``."""
        spectrum = np.abs(np.fft.rfft(self.pcm)) ** 2
        freqs = np.fft.rfftfreq(len(self.pcm), 1 / self.rate)
        band = (freqs > freq - 20) & (freqs < freq + 20)
        return float(spectrum[band].sum() / max(spectrum.sum(), 1e-12))


def assert_frames_follow_their_numbers(dec: Decoded, tolerance_ms: float = 40) -> None:
    """Frame n was captured n/30 s after frame 0: its time in the file must say so."""
    n0, t0 = dec.numbers[0], dec.video_ms[0]
    for n, t in zip(dec.numbers, dec.video_ms):
        assert abs((t - t0) - (n - n0) * 1000 / FPS) < tolerance_ms, (n, t - t0)


def recorded(data_dir: Path, recorder: Recorder, room: str = "demo") -> tuple[dict, Decoded]:
    """The recorder's final manifest (the one on disk, unless a packager took it over)
    and its decoded file."""
    directory = the_recording(data_dir, room)
    manifest = recorder.manifest
    assert directory == recorder.directory
    on_disk = read_manifest(directory)
    if manifest["status"] == "failed":  # written once, when writing failed
        assert on_disk["status"] == "failed" and on_disk["error"] == manifest["error"]
    else:
        assert on_disk == manifest
    return manifest, Decoded(directory / manifest["file"])


def killed_mid_recording(data_dir: Path, room: str = "demo") -> tuple[Path, Decoded]:
    """The recording a server killed with SIGKILL left of ``room``: still ``recording``
    (the packager will know), and every frame up to about a second before the kill decodes,
    with the tone; (its folder, its decoded file)."""
    directory = the_recording(data_dir, room)
    manifest = read_manifest(directory)
    assert manifest["status"] == "recording"
    dec = Decoded(directory / manifest["file"])
    assert dec.kinds == ["audio", "video"]
    assert dec.numbers[0] < 5 and consecutive(dec.numbers) and len(dec.numbers) > 45, dec.numbers
    assert dec.audio_samples > 48000 and dec.tone_share() > 0.5
    return directory, dec


def assert_replay_has_the_frames_of(directory: Path, dec: Decoded) -> None:
    """The packaged replay in ``directory`` shows the frames ``dec`` had, in order (two at most
    may differ at the cut end)."""
    from tests.support.recordings import all_video, read_hls

    _, segments = read_hls(directory)
    numbers = [v[1] for v in all_video(segments) if v[2] > 20]
    assert consecutive(numbers) and numbers[0] == dec.numbers[0], numbers
    assert abs(len(numbers) - len(dec.numbers)) <= 2, (len(numbers), len(dec.numbers))
