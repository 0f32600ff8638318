"""``AudioTimeline``: the recording's audio decoded, placed on the media clock and
encoded to one continuous AAC-LC 48 kHz track (ADTS in a temporary file).

Opus (any decodable codec) is decoded, placed on the media clock sample by sample
(holes become silence, overlaps are trimmed), and encoded by one AAC encoder over the
whole timeline, so audio is continuous across segments, gaps and discontinuities.
Stereo whose two channels are identical (what browsers send for a microphone) becomes
mono AAC.
"""

from __future__ import annotations

from array import array
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Optional

import av
import numpy as np

from mediaserver.packaging.options import AAC_FRAME, AAC_TICKS, AUDIO_RATE, TB, TICKS

__all__ = ["AudioTimeline", "adts_header"]


def adts_header(payload_size: int, channels: int) -> bytes:
    """7-byte ADTS header: MPEG-4 AAC-LC, 48 kHz (index 3), no CRC."""
    length = payload_size + 7
    return bytes((
        0xFF, 0xF1,
        (1 << 6) | (3 << 2) | (channels >> 2),
        ((channels & 3) << 6) | (length >> 11),
        (length >> 3) & 0xFF,
        ((length & 7) << 5) | 0x1F,
        0xFC,
    ))


class AudioTimeline:
    """Decoded audio placed on the media clock, encoded to AAC into a temporary file.

    ``pos`` is the next sample (48 kHz, from media time 0) to be written; a frame
    starting later than ``pos`` is preceded by silence, one starting earlier is trimmed.
    Small jitter (< ``tolerance``) is absorbed so steady audio is not chopped.

    Browsers announce stereo Opus and send mono speech: the first ``probe_samples`` are
    held back, and if both channels are identical the AAC is mono (half the bits and
    half the encoder time); any later stereo content is then mixed down."""

    tolerance = AUDIO_RATE // 50  # 20 ms
    probe_samples = 10 * AUDIO_RATE

    def __init__(self, path: Path, bitrate_per_channel: int, coder: str = "fast") -> None:
        self.path = path
        self.bitrate_per_channel = bitrate_per_channel
        self.coder = coder
        self.channels = 0
        self.layout = ""
        self.encoder: Optional[av.CodecContext] = None
        self.resampler: Optional[av.AudioResampler] = None
        self.file = None
        self.pos = 0
        self.frames = 0
        self.buf = np.zeros((1, 0), np.float32)
        self.index_pts = array("q")
        self.index_size = array("q")
        self.silence_samples = 0
        self.trimmed_samples = 0
        self.source_channels = 0
        self.pending: list[tuple[int, np.ndarray]] = []
        self.pending_samples = 0

    @property
    def active(self) -> bool:
        return self.encoder is not None

    def settle(self) -> None:
        """Decide the channel count (if still probing) and encode what was held back."""
        if self.encoder is not None or not self.pending:
            return
        stereo = self.source_channels == 2 and any(
            float(np.max(np.abs(d[0] - d[1]))) > 1e-4 for _, d in self.pending if d.shape[1]
        )
        self._open(2 if stereo else 1)
        pending, self.pending = self.pending, []
        for start, data in pending:
            self._place(start, data)

    def _open(self, channels: int) -> None:
        self.channels = channels
        self.layout = "mono" if self.channels == 1 else "stereo"
        enc = av.CodecContext.create("aac", "w")
        enc.sample_rate = AUDIO_RATE
        enc.layout = self.layout
        enc.format = "fltp"
        enc.bit_rate = self.bitrate_per_channel * self.channels
        enc.time_base = Fraction(1, AUDIO_RATE)
        enc.options = {"aac_coder": self.coder}
        enc.open()
        self.encoder = enc
        self.buf = np.zeros((self.channels, 0), np.float32)
        self.file = open(self.path, "wb")

    def add(self, frame: av.AudioFrame, t_ticks: int) -> None:
        if self.resampler is None:
            self.source_channels = 1 if frame.layout.nb_channels == 1 else 2
            layout = "mono" if self.source_channels == 1 else "stereo"
            self.resampler = av.AudioResampler(format="fltp", layout=layout, rate=AUDIO_RATE)
        start = t_ticks * AUDIO_RATE // TICKS
        chunks = [f.to_ndarray() for f in self.resampler.resample(frame)]
        if not chunks:
            return
        data = chunks[0] if len(chunks) == 1 else np.concatenate(chunks, axis=1)
        if self.encoder is None:
            self.pending.append((start, data))
            self.pending_samples += data.shape[1]
            if self.pending_samples >= self.probe_samples:
                self.settle()
            return
        self._place(start, data)

    def _place(self, start: int, data: np.ndarray) -> None:
        if data.shape[0] > self.channels:
            data = data.mean(axis=0, keepdims=True)
        if start - self.pos > self.tolerance:
            self._silence(start - self.pos)
        elif self.pos - start > self.tolerance:
            cut = self.pos - start
            self.trimmed_samples += min(cut, data.shape[1])
            data = data[:, cut:]
            if data.shape[1] == 0:
                return
        self._push(data.astype(np.float32, copy=False))

    def _silence(self, samples: int) -> None:
        self.silence_samples += samples
        while samples > 0:
            n = min(samples, AUDIO_RATE)
            self._push(np.zeros((self.channels, n), np.float32))
            samples -= n

    def _push(self, data: np.ndarray) -> None:
        self.pos += data.shape[1]
        buf = np.concatenate((self.buf, data), axis=1) if self.buf.shape[1] else data
        n = buf.shape[1] // AAC_FRAME
        for i in range(n):
            self._encode(buf[:, i * AAC_FRAME:(i + 1) * AAC_FRAME])
        self.buf = buf[:, n * AAC_FRAME:].copy() if buf.shape[1] % AAC_FRAME else buf[:, :0]

    def _encode(self, block: Optional[np.ndarray]) -> None:
        enc = self.encoder
        if block is None:
            packets = enc.encode(None)  # type: ignore[union-attr]
        else:
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block), format="fltp", layout=self.layout)
            frame.sample_rate = AUDIO_RATE
            frame.pts = self.frames * AAC_FRAME
            frame.time_base = Fraction(1, AUDIO_RATE)
            self.frames += 1
            packets = enc.encode(frame)  # type: ignore[union-attr]
        for packet in packets:
            if packet.pts is None or packet.pts < 0:  # encoder priming before media time 0
                continue
            payload = bytes(packet)
            data = adts_header(len(payload), self.channels) + payload
            self.file.write(data)  # type: ignore[union-attr]
            self.index_pts.append(packet.pts * TICKS // AUDIO_RATE)
            self.index_size.append(len(data))

    @property
    def end_ticks(self) -> int:
        return self.pos * TICKS // AUDIO_RATE

    def finish(self, end_ticks: int) -> None:
        """Silence up to ``end_ticks``, pad the last AAC frame, flush the encoder."""
        if self.encoder is None:
            return
        end = -(-end_ticks * AUDIO_RATE // TICKS)
        if end > self.pos:
            self._silence(end - self.pos)
        rest = self.buf.shape[1]
        if rest:
            self._push(np.zeros((self.channels, AAC_FRAME - rest), np.float32))
        self._encode(None)
        self.file.close()  # type: ignore[union-attr]

    def close(self) -> None:
        if self.file is not None and not self.file.closed:
            self.file.close()

    def packets(self) -> Iterator[av.Packet]:
        """The encoded AAC (ADTS) packets with pts in 90 kHz ticks."""
        with open(self.path, "rb") as f:
            for pts, size in zip(self.index_pts, self.index_size):
                packet = av.Packet(f.read(size))
                packet.time_base = TB
                packet.pts = pts
                packet.dts = pts
                packet.duration = AAC_TICKS
                yield packet
