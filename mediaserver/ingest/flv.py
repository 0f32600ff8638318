"""The FLV tag bodies that RTMP carries (video message type 9, audio type 8).

Only what the ingest forwards is read: AVC (H.264) video, whose body is an
``AVCDecoderConfigurationRecord`` (ISO/IEC 14496-15 5.2.4.1) or an access unit of
length-prefixed NAL units, and AAC audio, whose body is an ``AudioSpecificConfig`` or one
raw AAC frame (FLV specification 10.1, E.4.2 and E.4.3). Anything else is reported as
unsupported so the ingest can refuse it by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

__all__ = [
    "AacPacket", "AvcConfig", "AvcPacket", "FlvError", "nal_type", "parse_aac", "parse_avc",
    "parse_avc_config", "split_nal_units",
]

_CODEC_AVC = 7
_SOUND_AAC = 10
_VIDEO_CODECS = {2: "Sorenson H.263", 3: "Screen video", 4: "VP6", 5: "VP6 alpha", 6: "Screen video 2",
                 7: "H.264", 12: "HEVC"}
_SOUND_FORMATS = {0: "PCM", 1: "ADPCM", 2: "MP3", 3: "PCM LE", 4: "Nellymoser 16k", 5: "Nellymoser 8k",
                  6: "Nellymoser", 7: "G.711 A-law", 8: "G.711 mu-law", 10: "AAC", 11: "Speex",
                  14: "MP3 8k"}


class FlvError(ValueError):
    """A tag the ingest cannot forward; the message names what was sent."""


@dataclass(frozen=True)
class AvcConfig:
    """Parameter sets and the size of the NAL unit length prefix."""

    length_size: int
    sps: tuple[bytes, ...]
    pps: tuple[bytes, ...]


@dataclass(frozen=True)
class AvcPacket:
    keyframe: bool
    is_config: bool  #: AVCPacketType 0: the body is an AVCDecoderConfigurationRecord
    is_end: bool  #: AVCPacketType 2: end of sequence
    composition_ms: int  #: PTS - DTS
    body: bytes


@dataclass(frozen=True)
class AacPacket:
    is_config: bool  #: AACPacketType 0: the body is an AudioSpecificConfig
    body: bytes


def parse_avc(tag: bytes) -> AvcPacket:
    """A video tag body: ``FrameType<<4 | CodecID``, ``AVCPacketType``, 24-bit signed
    composition time, then the body. Video that is not H.264 raises ``FlvError``."""
    if len(tag) < 5:
        raise FlvError(f"video tag of {len(tag)} bytes is too short")
    codec = tag[0] & 0x0F
    if tag[0] & 0x80:  # enhanced RTMP (ExVideoTagHeader): FourCC codecs, HEVC/AV1/VP9
        raise FlvError(f"video {tag[1:5]!r} (enhanced RTMP) is not supported: send H.264")
    if codec != _CODEC_AVC:
        raise FlvError(f"video {_VIDEO_CODECS.get(codec, codec)} is not supported: send H.264")
    packet_type = tag[1]
    cts = int.from_bytes(tag[2:5], "big", signed=True)
    return AvcPacket(keyframe=(tag[0] >> 4) == 1, is_config=packet_type == 0, is_end=packet_type == 2,
                     composition_ms=cts, body=tag[5:])


def parse_avc_config(record: bytes) -> AvcConfig:
    """``AVCDecoderConfigurationRecord``: version 1, profile, compatibility, level,
    ``lengthSizeMinusOne``, then counted SPS and PPS, each 16-bit length prefixed."""
    if len(record) < 7 or record[0] != 1:
        raise FlvError("malformed AVCDecoderConfigurationRecord")
    length_size = (record[4] & 0x03) + 1
    pos = 5
    sets: list[list[bytes]] = []
    for mask in (0x1F, 0xFF):  # numOfSequenceParameterSets (5 bits), numOfPictureParameterSets
        if pos >= len(record):
            raise FlvError("truncated AVCDecoderConfigurationRecord")
        count = record[pos] & mask
        pos += 1
        units = []
        for _ in range(count):
            size = int.from_bytes(record[pos:pos + 2], "big")
            unit = record[pos + 2:pos + 2 + size]
            if size == 0 or len(unit) != size:
                raise FlvError("truncated parameter set in AVCDecoderConfigurationRecord")
            units.append(unit)
            pos += 2 + size
        sets.append(units)
    if not sets[0] or not sets[1]:
        raise FlvError("AVCDecoderConfigurationRecord without SPS or PPS")
    return AvcConfig(length_size, tuple(sets[0]), tuple(sets[1]))


def split_nal_units(body: bytes, length_size: int) -> list[bytes]:
    """The NAL units of a length-prefixed (AVCC) access unit."""
    units = []
    pos, end = 0, len(body)
    while pos + length_size <= end:
        size = int.from_bytes(body[pos:pos + length_size], "big")
        pos += length_size
        if size == 0 or pos + size > end:
            raise FlvError("NAL unit length runs past the end of the video tag")
        units.append(body[pos:pos + size])
        pos += size
    return units


def parse_aac(tag: bytes) -> AacPacket:
    """An audio tag body: ``SoundFormat<<4 | rate | size | type``, ``AACPacketType``,
    then the body. Audio that is not AAC raises ``FlvError``."""
    if not tag:
        raise FlvError("empty audio tag")
    sound = tag[0] >> 4
    if sound != _SOUND_AAC:
        raise FlvError(f"audio {_SOUND_FORMATS.get(sound, sound)} is not supported: send AAC")
    if len(tag) < 3:
        raise FlvError(f"AAC tag of {len(tag)} bytes is too short")
    return AacPacket(is_config=tag[1] == 0, body=tag[2:])


def nal_type(unit: bytes) -> Optional[int]:
    return unit[0] & 0x1F if unit else None
