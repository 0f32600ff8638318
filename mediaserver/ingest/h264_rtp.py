"""``H264Packetizer``: one RTMP (AVCC) access unit -> the RTP packets of one frame.

Runs once per room, never per viewer: the fanout reuses these payloads for everyone.
The NAL units go to aiortc's own H.264 packetizer (``H264Encoder.pack``: single NAL
unit, STAP-A and FU-A, RFC 6184 packetization mode 1, the mode every viewer
negotiates), so RTMP video reaches viewers exactly as a WHIP publisher's would. RTMP
encoders carry SPS and PPS once, in the sequence header; WebRTC decoders need them in
band, so they are put in front of every IDR that does not carry its own.
"""

from __future__ import annotations

import fractions
import random
from typing import Optional

import av
from aiortc.codecs.h264 import H264Encoder
from aiortc.rtp import RtpPacket

from .flv import AvcConfig, nal_type

__all__ = ["H264Packetizer"]

_NAL_IDR = 5
_NAL_SPS = 7
_MS = fractions.Fraction(1, 1000)
_START_CODE = b"\x00\x00\x00\x01"


class H264Packetizer:
    """Numbers packets itself (random first sequence number and timestamp, RFC 3550)."""

    def __init__(self, payload_type: int = 102) -> None:
        self._encoder = H264Encoder()
        self._payload_type = payload_type
        self._ssrc = random.getrandbits(32)
        self._seq = random.getrandbits(16)
        self._ts_base = random.getrandbits(32)
        self.config: Optional[AvcConfig] = None

    def timestamp(self, pts_ms: int) -> int:
        """The RTP timestamp (90 kHz) of a presentation time in RTMP milliseconds."""
        return (self._ts_base + pts_ms * 90) & 0xFFFFFFFF

    def packetize(self, units: list[bytes], pts_ms: int) -> list[RtpPacket]:
        """The packets of one access unit; the last one carries the marker bit."""
        types = {nal_type(u) for u in units}
        if _NAL_IDR in types and _NAL_SPS not in types and self.config is not None:
            units = [*self.config.sps, *self.config.pps, *units]
        packet = av.Packet(b"".join(_START_CODE + u for u in units))
        packet.pts = pts_ms
        packet.time_base = _MS
        payloads, _ = self._encoder.pack(packet)
        timestamp = self.timestamp(pts_ms)
        packets = []
        for i, payload in enumerate(payloads):
            packets.append(RtpPacket(
                payload_type=self._payload_type, marker=int(i == len(payloads) - 1),
                sequence_number=self._seq, timestamp=timestamp, ssrc=self._ssrc, payload=payload,
            ))
            self._seq = (self._seq + 1) & 0xFFFF
        return packets
