"""Reading just enough of VP8 and H.264 RTP payloads to find where a keyframe starts.

A viewer may only start (or restart after dropping) on the first packet of a keyframe;
anything before it decodes as garbage. The checks read a few bytes of the payload,
once per packet per room, never per viewer.
"""

from __future__ import annotations

__all__ = ["is_keyframe_start"]

# H.264 NAL unit types (RFC 6184)
_NAL_IDR = 5
_NAL_SPS = 7
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


def _h264_keyframe_start(payload: bytes, first_of_frame: bool) -> bool:
    """An access unit that carries SPS (sent before an IDR), or an IDR that opens a frame."""
    if not payload:
        return False
    nal = payload[0] & 0x1F
    if nal == _NAL_STAP_A:
        if len(payload) < 4:
            return False
        nal = payload[3] & 0x1F
    elif nal == _NAL_FU_A:
        if len(payload) < 2 or not payload[1] & 0x80:  # not the first fragment
            return False
        nal = payload[1] & 0x1F
    if nal == _NAL_SPS:
        return True
    return nal == _NAL_IDR and first_of_frame


def is_keyframe_start(codec: str, payload: bytes, first_of_frame: bool) -> bool:
    """True if a viewer can start decoding at this packet.

    ``codec`` is the codec key (``VP8``, ``H264``, ``OPUS``); audio starts anywhere.
    ``first_of_frame`` says the packet's RTP timestamp differs from the previous one.
    """
    if codec == "VP8":
        return _vp8_keyframe_start(payload)
    if codec == "H264":
        return _h264_keyframe_start(payload, first_of_frame)
    return True
