"""``AacToOpus``: the one audio encoder of an RTMP room (AAC in, Opus 48 kHz out).

WebRTC viewers cannot play AAC, so RTMP audio is decoded and encoded again, once per
room, with FFmpeg's AAC decoder and libopus through PyAV. Opus timestamps count samples
(20 ms, 960 per packet) so the audio timeline is continuous whatever the RTMP
timestamps did. It is CPU work: ``RtmpPublisher`` runs it off the event loop.
"""

from __future__ import annotations

import fractions
import random

import av
from aiortc.rtp import RtpPacket

__all__ = ["AacToOpus", "OPUS_RATE"]

OPUS_RATE = 48000
_FRAME = 960  # 20 ms at 48 kHz


class AacToOpus:
    """Decode AAC frames (after the ``AudioSpecificConfig``), encode Opus RTP packets."""

    def __init__(self, audio_specific_config: bytes, bitrate: int = 64000, payload_type: int = 111) -> None:
        self._decoder = av.CodecContext.create("aac", "r")
        self._decoder.extradata = audio_specific_config
        self._resampler = av.AudioResampler(format="s16", layout="stereo", rate=OPUS_RATE, frame_size=_FRAME)
        encoder = av.CodecContext.create("libopus", "w")
        encoder.sample_rate = OPUS_RATE
        encoder.layout = "stereo"
        encoder.format = "s16"
        encoder.bit_rate = bitrate
        encoder.time_base = fractions.Fraction(1, OPUS_RATE)
        encoder.options = {"application": "audio", "frame_duration": "20"}
        encoder.open()
        self._encoder = encoder
        self._samples = 0  # samples given to the encoder
        self._payload_type = payload_type
        self._ssrc = random.getrandbits(32)
        self._seq = random.getrandbits(16)
        self._ts = random.getrandbits(32)
        self.first_ts = self._ts  #: the RTP timestamp of the first Opus packet

    def transcode(self, aac_frame: bytes) -> list[RtpPacket]:
        """The Opus packets that one AAC frame completes (often one, sometimes none)."""
        out = []
        for frame in self._decoder.decode(av.Packet(aac_frame)):
            for resampled in self._resampler.resample(frame):
                resampled.pts = self._samples
                resampled.time_base = self._encoder.time_base
                self._samples += resampled.samples
                for packet in self._encoder.encode(resampled):
                    out.append(self._rtp(bytes(packet), packet.duration or _FRAME))
        return out

    def _rtp(self, payload: bytes, duration: int) -> RtpPacket:
        packet = RtpPacket(payload_type=self._payload_type, marker=0, sequence_number=self._seq,
                           timestamp=self._ts, ssrc=self._ssrc, payload=payload)
        self._seq = (self._seq + 1) & 0xFFFF
        self._ts = (self._ts + duration) & 0xFFFFFFFF
        return packet
