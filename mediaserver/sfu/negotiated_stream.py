"""What a transceiver agreed with its remote peer (payload types, RTX, clock rates, header
extension ids), read from aiortc's transceiver once after negotiation; part of the aiortc
boundary (``aiortc_bridge``)."""

from __future__ import annotations

import functools

from aiortc import RTCRtpTransceiver
from aiortc.codecs import is_rtx

__all__ = ["ABS_SEND_TIME_URI", "MID_URI", "NegotiatedStream", "codec_key", "negotiated_stream"]

ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"


class NegotiatedStream:
    """What a transceiver agreed with its remote peer, read once after negotiation."""

    def __init__(
        self,
        mid: str,
        payload_types: dict[str, int],
        rtx_payload_types: dict[int, int],
        clock_rates: dict[str, int],
        header_extensions: dict[str, int],
    ) -> None:
        #: codec key (``"VP8"``, ``"H264"``, ``"opus"``) -> payload type
        self.mid = mid
        self.payload_types = payload_types
        #: media payload type -> its RTX payload type
        self.rtx_payload_types = rtx_payload_types
        self.clock_rates = clock_rates
        #: header extension URI -> id
        self.header_extensions = header_extensions


@functools.lru_cache(maxsize=64)
def codec_key(mime_type: str) -> str:
    """``video/H264`` -> ``H264``: the name a codec is matched on across peers.

    Cached: the receive path asks once per packet, and the fanout keeps the answer in its
    retransmission history; one shared string per codec instead of a new one per packet."""
    return mime_type.split("/", 1)[1].upper() if "/" in mime_type else mime_type.upper()


def negotiated_stream(transceiver: RTCRtpTransceiver) -> NegotiatedStream:
    payload_types: dict[str, int] = {}
    clock_rates: dict[str, int] = {}
    rtx: dict[int, int] = {}
    for codec in transceiver._codecs:
        if is_rtx(codec):
            rtx[int(codec.parameters["apt"])] = codec.payloadType
        else:
            key = codec_key(codec.mimeType)
            payload_types.setdefault(key, codec.payloadType)
            clock_rates.setdefault(key, codec.clockRate)
    return NegotiatedStream(
        mid=transceiver.mid or "",
        payload_types=payload_types,
        rtx_payload_types=rtx,
        clock_rates=clock_rates,
        header_extensions={x.uri: x.id for x in transceiver._headerExtensions},
    )
