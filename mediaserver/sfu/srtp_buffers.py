"""SRTP sessions that take RTP up to ``MAX_RTP_PACKET`` bytes; part of the aiortc boundary
(``aiortc_bridge``).

aiortc's SRTP sessions reserve 144 of their 1,500 buffer bytes for the trailer, so they
refuse RTP over 1,356 bytes ("packet is too long"); a forwarded publisher packet plus the
header Stagepass writes in front of its payload can be longer.
"""

from __future__ import annotations

from typing import Any

from pylibsrtp import SRTP_MAX_TRAILER_LEN
from pylibsrtp._binding import ffi as _srtp_ffi

__all__ = ["MAX_RTP_PACKET", "enlarge_srtp_buffers", "enlarge_srtp_session"]

#: the largest RTP packet a viewer's SRTP session protects: a 1,500-byte publisher packet
#: (RTX included) plus the header Stagepass writes in front of its payload
MAX_RTP_PACKET = 2048


def enlarge_srtp_buffers(pc: Any) -> None:
    """Let a connected peer's SRTP sessions take RTP up to ``MAX_RTP_PACKET`` bytes."""
    for transceiver in pc.getTransceivers():
        dtls = transceiver.sender.transport
        for session in (dtls._rx_srtp, dtls._tx_srtp):
            enlarge_srtp_session(session)


def enlarge_srtp_session(session: Any) -> None:
    """pylibsrtp's ``Session`` processes packets in a 1,500-byte buffer of its own
    (``_cdata``/``_buffer``) and refuses anything longer than 1,500 minus the 144 bytes it
    reserves for the trailer; give it room for ``MAX_RTP_PACKET`` plus that trailer."""
    if session is None or len(session._cdata) >= MAX_RTP_PACKET + SRTP_MAX_TRAILER_LEN:
        return
    session._cdata = _srtp_ffi.new("char[]", MAX_RTP_PACKET + SRTP_MAX_TRAILER_LEN)
    session._buffer = _srtp_ffi.buffer(session._cdata)
