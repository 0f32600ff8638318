"""Which codecs Stagepass forwards, in order of preference.

H.264 first: its recordings remux to HLS without transcoding. VP8 is accepted (every
browser has it). Opus for audio. The live path never transcodes, so a viewer must be
able to receive exactly what the publisher sends.
"""

from __future__ import annotations

from aiortc import RTCRtpSender
from aiortc.rtcrtpparameters import RTCRtpCodecCapability

from mediaserver.sfu.aiortc_bridge import codec_key

__all__ = ["FORWARDED_CODECS", "capabilities", "offered_codecs"]

FORWARDED_CODECS: dict[str, tuple[str, ...]] = {"video": ("H264", "VP8"), "audio": ("OPUS",)}


def capabilities(kind: str, names: tuple[str, ...] | list[str]) -> list[RTCRtpCodecCapability]:
    """aiortc capabilities for ``names`` in that order, followed by RTX for video."""
    caps = RTCRtpSender.getCapabilities(kind).codecs
    chosen = [c for name in names for c in caps if codec_key(c.mimeType) == name]
    chosen += [c for c in caps if codec_key(c.mimeType) == "RTX"]
    return chosen


def offered_codecs(rtp_codecs: list) -> list[str]:
    """Codec keys an SDP media section lists that we forward, in our preference order.

    H.264 counts only with ``packetization-mode=1`` (FU-A and STAP-A, what WebRTC peers
    and the forwarding path use); an offer of mode 0 alone has no common codec."""
    keys = {codec_key(c.mimeType) for c in rtp_codecs if _forwardable(c)}
    return [name for names in FORWARDED_CODECS.values() for name in names if name in keys]


def _forwardable(codec) -> bool:
    if codec_key(codec.mimeType) == "H264":
        return str(codec.parameters.get("packetization-mode", "0")) == "1"
    return True
