"""Reading just enough of VP8 and H.264 RTP payloads to find where a keyframe starts.

A viewer may only start (or restart after dropping) on the first packet of a keyframe;
anything before it decodes as garbage. The checks read a few bytes of the payload (all
the aggregated units' headers of an H.264 STAP-A), once per packet per room, never per
viewer.
"""

from __future__ import annotations

import struct

__all__ = ["RTP_HEADER", "is_keyframe_start"]

#: the RTP fixed header without CSRCs (RFC 3550 5.1): first byte (V, P, X, CC), marker and
#: payload type, sequence number, timestamp, SSRC
RTP_HEADER = struct.Struct("!BBHII")

# H.264 NAL unit types (RFC 6184)
_NAL_IDR = 5
_NAL_STAP_A = 24
_NAL_FU_A = 28


def _vp8_keyframe_start(payload: bytes) -> bool:
    """RFC 7741: start of partition 0 (S=1, PID=0) whose VP8 header has P=0."""
    if len(payload) < 2:
        return False
    first = payload[0]
    if not first & 0x10 or first & 0x07:  # S bit, partition index
        return False
    pos = 1
    if first & 0x80:  # X: extension byte follows
        ext = payload[1]
        pos = 2
        if ext & 0x80:  # I: picture id, 7 or 15 bits
            if pos >= len(payload):
                return False
            pos += 2 if payload[pos] & 0x80 else 1
        if ext & 0x40:  # L: TL0PICIDX
            pos += 1
        if ext & 0x30:  # T or K: TID/KEYIDX byte
            pos += 1
    if pos >= len(payload):
        return False
    return not payload[pos] & 0x01  # P bit: 0 means keyframe


def _h264_idr_starts(payload: bytes) -> bool:
    """An IDR slice starts in this packet: a single IDR NAL unit, any NAL unit of a STAP-A
    (walking every aggregated unit: GStreamer puts AUD, SPS and PPS ahead of it), or the
    start fragment of an FU-A whose original type is IDR."""
    if not payload:
        return False
    nal = payload[0] & 0x1F
    if nal == _NAL_IDR:
        return True
    if nal == _NAL_FU_A:
        return len(payload) > 1 and payload[1] & 0x80 != 0 and payload[1] & 0x1F == _NAL_IDR
    if nal == _NAL_STAP_A:
        pos, end = 1, len(payload)
        while pos + 2 < end:
            size = (payload[pos] << 8) | payload[pos + 1]
            if size == 0:
                return False
            if payload[pos + 2] & 0x1F == _NAL_IDR:
                return True
            pos += 2 + size
    return False


def is_keyframe_start(codec: str, payload: bytes) -> bool:
    """True if a viewer can start decoding with the frame this packet belongs to.

    ``codec`` is the codec key (``VP8``, ``H264``, ``OPUS``); audio starts anywhere.
    VP8: the packet starts partition 0 of a keyframe (always a frame's first packet).
    H.264: an IDR slice starts in this packet, wherever it sits in the access unit: an
    access unit may open with packets that carry no picture (AUD, SEI, SPS, PPS, alone
    or in a STAP-A), so the viewer must start at the first packet with this packet's
    timestamp, not at this one (``Fanout`` and ``FrameAssembler`` walk back to it).
    """
    if codec == "VP8":
        return _vp8_keyframe_start(payload)
    if codec == "H264":
        return _h264_idr_starts(payload)
    return True
