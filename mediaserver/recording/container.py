"""The recording's file: which container, how its streams are declared, frames from RTP.

* H.264 video (with or without Opus): **MPEG-TS** ``recording.ts``. A TS file has no
  header or index to fix up at the end; every 188-byte packet stands alone, so a cut
  file decodes to its last complete frame, and HLS packaging can remux it as is.
* VP8 video, or audio only: **WebM** (Matroska) ``recording.webm``, with 1 s clusters.
  Matroska needs the frame size of VP8 in its header, so the file is opened on the first
  keyframe (its size is read from the VP8 frame header). A cut file loses at most the
  cluster being written.

Both are written with ``flush_packets=1`` (each packet reaches the kernel at once; a
SIGKILL loses nothing the muxer has emitted) and ``max_interleave_delta`` of 1 s (the
muxer does not hold one track for long waiting on the other).

Opus needs its ``OpusHead`` in Matroska (CodecPrivate) and uses it in TS (channel count
and pre-skip). ``add_mux_stream`` cannot set extradata, so the audio stream is copied
(``add_stream_from_template``) from a two-page Ogg Opus file built in memory, whose
codec context is never opened.
"""

from __future__ import annotations

import io
import struct
from typing import Callable, Optional

import av
from aiortc.codecs.h264 import H264PayloadDescriptor
from aiortc.codecs.vpx import vp8_depayload

__all__ = [
    "CLOCK_RATES",
    "DEPAYLOAD",
    "FFMPEG_NAMES",
    "MEDIA_FILES",
    "MUX_OPTIONS",
    "choose_container",
    "opus_head",
    "opus_template",
    "vp8_size",
]

CLOCK_RATES = {"H264": 90000, "VP8": 90000, "OPUS": 48000}
FFMPEG_NAMES = {"H264": "h264", "VP8": "vp8", "OPUS": "opus"}
MEDIA_FILES = {"mpegts": "recording.ts", "webm": "recording.webm"}
MUX_OPTIONS = {
    "mpegts": {"flush_packets": "1", "max_interleave_delta": "1000000"},
    "webm": {"flush_packets": "1", "max_interleave_delta": "1000000", "cluster_time_limit": "1000"},
}


def choose_container(codecs: dict[str, str]) -> str:
    """``mpegts`` for H.264 (remuxes straight to HLS), ``webm`` for VP8 or audio only."""
    return "mpegts" if codecs.get("video") == "H264" else "webm"


def opus_head(channels: int = 2, pre_skip: int = 312, input_rate: int = 48000) -> bytes:
    """The 19-byte Opus identification header (RFC 7845 5.1), channel mapping family 0."""
    return b"OpusHead" + struct.pack("<BBHIhB", 1, channels, pre_skip, input_rate, 0, 0)


def _ogg_crc_table() -> list[int]:
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else r << 1
        table.append(r & 0xFFFFFFFF)
    return table


_OGG_CRC = _ogg_crc_table()


def _ogg_page(packet: bytes, sequence: int, flags: int, granule: int = 0) -> bytes:
    segments = [255] * (len(packet) // 255) + [len(packet) % 255]
    page = bytearray(
        b"OggS" + struct.pack("<BBqIII", 0, flags, granule, 1, sequence, 0)
        + bytes([len(segments)]) + bytes(segments) + packet
    )
    crc = 0
    for byte in page:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _OGG_CRC[((crc >> 24) & 0xFF) ^ byte]
    page[22:26] = struct.pack("<I", crc)
    return bytes(page)


def opus_template() -> av.container.InputContainer:
    """An in-memory Ogg Opus file (OpusHead, OpusTags, one empty frame): its stream
    carries the OpusHead extradata that ``add_mux_stream`` has no way to set."""
    tags = b"OpusTags" + struct.pack("<I", 9) + b"stagepass" + struct.pack("<I", 0)
    data = (
        _ogg_page(opus_head(), 0, 0x02)
        + _ogg_page(tags, 1, 0)
        + _ogg_page(b"\xf8", 2, 0x04, granule=960)  # one 20 ms frame, no payload
    )
    return av.open(io.BytesIO(data), "r", format="ogg")


def vp8_size(frame: bytes) -> Optional[tuple[int, int]]:
    """Width and height from a VP8 keyframe header (RFC 6386 9.1)."""
    if len(frame) >= 10 and not frame[0] & 0x01 and frame[3:6] == b"\x9d\x01\x2a":
        return (
            int.from_bytes(frame[6:8], "little") & 0x3FFF,
            int.from_bytes(frame[8:10], "little") & 0x3FFF,
        )
    return None


def _depayload_h264(payloads: list) -> bytes:
    parse = H264PayloadDescriptor.parse
    return b"".join([parse(p)[1] for p in payloads])


def _depayload_vp8(payloads: list) -> bytes:
    return b"".join([vp8_depayload(p) for p in payloads])


#: codec key -> a frame's RTP payloads to one encoded frame (Annex-B H.264, VP8)
DEPAYLOAD: dict[str, Callable[[list], bytes]] = {"H264": _depayload_h264, "VP8": _depayload_vp8}
