"""H.264 bitstream helpers: NAL units of Annex-B access units, avcC configuration
records, and the conversion from length-prefixed (avcC) to Annex-B."""

from __future__ import annotations

from typing import Optional

__all__ = ["ANNEXB_PREFIX", "avcc_config", "avcc_to_annexb", "first_vcl_type", "nal_units"]

_START = b"\x00\x00\x01"
ANNEXB_PREFIX = b"\x00\x00\x00\x01"


def nal_units(data: bytes) -> list[tuple[int, int, int]]:
    """``(type, start, end)`` of every NAL unit of an Annex-B access unit (start: the
    header byte; end: exclusive, trailing zero bytes of the next start code removed)."""
    units = []
    i = data.find(_START)
    while i >= 0:
        h = i + 3
        if h >= len(data):
            break
        j = data.find(_START, h)
        end = len(data) if j < 0 else j
        while end > h and data[end - 1] == 0:
            end -= 1
        units.append((data[h] & 0x1F, h, end))
        i = j
    return units


def first_vcl_type(data: bytes) -> int:
    """Type of the first slice NAL (5: IDR), 0 if none; stops at the first slice."""
    i = data.find(_START)
    while i >= 0 and i + 3 < len(data):
        t = data[i + 3] & 0x1F
        if 1 <= t <= 5:
            return t
        i = data.find(_START, i + 3)
    return 0


def avcc_config(extradata: Optional[bytes]) -> Optional[tuple[int, list[bytes]]]:
    """``(length_size, [SPS..., PPS...])`` from an avcC record, None if not avcC."""
    if not extradata or len(extradata) < 7 or extradata[0] != 1:
        return None
    length_size = (extradata[4] & 3) + 1
    sets: list[bytes] = []
    pos = 5
    try:
        for count_mask in (0x1F, 0xFF):
            count = extradata[pos] & count_mask
            pos += 1
            for _ in range(count):
                size = int.from_bytes(extradata[pos:pos + 2], "big")
                sets.append(bytes(extradata[pos + 2:pos + 2 + size]))
                pos += 2 + size
    except IndexError:
        pass
    return length_size, sets


def avcc_to_annexb(data: bytes, length_size: int) -> bytes:
    out = []
    pos = 0
    while pos + length_size <= len(data):
        size = int.from_bytes(data[pos:pos + length_size], "big")
        pos += length_size
        out.append(ANNEXB_PREFIX + data[pos:pos + size])
        pos += size
    return b"".join(out)
