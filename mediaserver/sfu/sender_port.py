"""``SenderPort``: pre-built RTP written for one viewer's aiortc ``RTCRtpSender``, and the
``IdleTrack`` that keeps the sender's encoder from ever starting; part of the aiortc
boundary (``aiortc_bridge``, whose docstring says what is changed and why)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable, Optional

from aiortc import MediaStreamTrack, RTCRtpSender
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
    unpack_remb_fci,
)
from pylibsrtp import SRTP_MAX_TRAILER_LEN
from pylibsrtp._binding import lib as _srtp_lib

from mediaserver.sfu.round_trip import RoundTrip
from mediaserver.sfu.rtp_payloads import RTP_HEADER
from mediaserver.sfu.sender_reports import SenderReportTimes
from mediaserver.sfu.srtp_buffers import enlarge_srtp_session

__all__ = ["IdleTrack", "SenderPort"]

_CONNECTED = DtlsState.CONNECTED
_srtp_protect = _srtp_lib.srtp_protect


class IdleTrack(MediaStreamTrack):
    """A track that never produces a frame: the sender's encode loop parks on it."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self._stopped = asyncio.Event()

    async def recv(self) -> Any:  # pragma: no cover - returns only by raising
        await self._stopped.wait()
        raise MediaStreamError

    def stop(self) -> None:
        self._stopped.set()
        super().stop()


class SenderPort:
    """Writes pre-built RTP for one viewer's ``RTCRtpSender``; see ``aiortc_bridge``'s docstring."""

    def __init__(
        self,
        sender: RTCRtpSender,
        on_nack: Callable[[list[int]], None],
        on_keyframe_request: Callable[[], None],
    ) -> None:
        self._sender = sender
        self._on_nack = on_nack
        self._on_keyframe_request = on_keyframe_request
        self._aiortc_rtcp = sender._handle_rtcp_packet
        sender._handle_rtcp_packet = self._handle_rtcp_packet  # type: ignore[method-assign]
        self._aiortc_send_rtcp = sender._send_rtcp
        sender._send_rtcp = self._send_rtcp  # type: ignore[method-assign]
        #: when the last few sender reports left: a report answering an older one counts too
        self._sender_reports = SenderReportTimes()
        self.ssrc: int = sender._ssrc
        self.rtx_ssrc: int = sender._rtx_ssrc
        self._dtls = sender.transport
        self._nominated: dict = sender.transport.transport._connection._nominated
        self._pending: set[asyncio.Future] = set()
        self.buffer_limit = 1 << 18
        self.retransmitted_packets = 0
        #: interarrival jitter from the viewer's last receiver report (RTP clock units)
        self.jitter = 0
        #: the viewer's receiver reports about this stream so far, the last one's fraction
        #: of packets lost (0..1), and the round trip the last one measured (s; None if it
        #: measured none: it named a sender report not kept, or had no delay)
        self.reports = 0
        self.fraction_lost = 0.0
        self.last_rtt: Optional[float] = None
        #: the viewer's latest bandwidth estimate for this stream (REMB, bit/s) and when it
        #: came (``time.monotonic()``); None until one does
        self.remb: Optional[int] = None
        self.remb_at = 0.0
        #: the round trip smoothed over the viewer's receiver reports (RFC 6298)
        self.round_trip = RoundTrip()
        # bound to the nominated ICE pair on first use (and again if it changes): the
        # per-packet path then makes no attribute walks, property calls or type checks
        self._pair: Any = None
        self._protect: Callable[[bytes], bytes] = bytes
        self._sendto: Optional[Callable[[bytes, Any], None]] = None
        self._buffered: Callable[[], int] = int
        self._addr: Any = None
        #: the UDP mux's batch (``batched_send.BatchedSender``) and the libsrtp session
        #: context the packets are protected with in it, when the pair is on the mux
        self._batch: Any = None
        self._srtp: Any = None

    @property
    def sent_packets(self) -> int:
        """Media packets sent to this viewer (the sender report's packet count;
        retransmissions are not in it)."""
        return self._sender._RTCRtpSender__packet_count  # type: ignore[attr-defined]

    @property
    def octets_sent(self) -> int:
        """Media payload bytes sent to this viewer (the sender report's octet count;
        retransmissions are not in it)."""
        return self._sender._RTCRtpSender__octet_count  # type: ignore[attr-defined]

    def ready(self) -> bool:
        """True once DTLS is up and SRTP keys exist."""
        return self._dtls._state == DtlsState.CONNECTED and self._dtls._tx_srtp is not None

    def _bind(self, pair: Any) -> bool:
        if pair is None or self._dtls._tx_srtp is None:
            return False
        self._pair = pair
        enlarge_srtp_session(self._dtls._tx_srtp)
        self._protect = self._dtls._tx_srtp.protect
        self._addr = pair.remote_addr
        protocol = pair.protocol
        transport = getattr(protocol, "transport", None)
        mux = getattr(protocol, "mux", None)
        # on the process's UDP mux: protected straight into its batch, unless something
        # (a test's network shim) put its own sendto on this connection's transport
        if mux is not None and "sendto" not in vars(transport):
            self._batch = mux.sender
            self._srtp = self._dtls._tx_srtp._srtp[0]
            self._sendto = mux.sender.add
            self._buffered = mux.sender.backlog
            return True
        self._batch = None
        if transport is not None and (mux is not None or type(protocol).send_data is _ICE_SEND_DATA):
            self._sendto = transport.sendto
            self._buffered = transport.get_write_buffer_size
        else:  # TURN relay: its send path is a coroutine
            self._sendto = None
        return True

    def _emit(self, header: Optional[tuple[int, int, int, int, int]], data: bytes, payload_size: int,
              ntp_time: Optional[int], rtp_timestamp: int) -> bool:
        """Protect and send one RTP packet now: the one way out, for first sends (``send``
        is this method, so the per-packet path makes no extra call) and retransmissions
        (``retransmit``: ``ntp_time`` None). The packet is the RTP fixed header with the
        fields ``header`` (``RTP_HEADER``), then ``data`` (extensions and payload: one
        ``bytes`` every viewer's copy shares); ``header`` None: ``data`` is the whole packet.
        On the UDP mux the header and data are written into the mux's ``sendmmsg`` batch and
        protected by libsrtp in place there; else joined, protected and handed to the ICE
        pair's ``sendto`` (a coroutine over TURN). A media packet is counted in the sender
        report, whose NTP/RTP pair becomes its own; a retransmission leaves both alone.
        False if the viewer's socket (or the mux's backlog) is backed up beyond
        ``buffer_limit`` (the packet is dropped) or the transport is gone."""
        if self._dtls._state is not _CONNECTED:
            return False
        pair = self._nominated.get(1)
        if pair is not self._pair and not self._bind(pair):
            return False
        batch = self._batch
        if batch is not None:
            if batch.blocked and batch.backlog_bytes > self.buffer_limit:
                return False
            batch.add_transformed(data, self._addr, _srtp_protect, self._srtp, SRTP_MAX_TRAILER_LEN, header)
        else:
            if header is not None:
                data = RTP_HEADER.pack(*header) + data
            protected = self._protect(data)
            sendto = self._sendto
            if sendto is not None:
                if self._buffered() > self.buffer_limit:
                    return False
                sendto(protected, self._addr)
            else:
                fut = asyncio.ensure_future(pair.protocol.send_data(protected, self._addr))
                self._pending.add(fut)
                fut.add_done_callback(self._pending.discard)
        if ntp_time is None:
            self.retransmitted_packets += 1
            return True
        s = self._sender
        s._RTCRtpSender__ntp_timestamp = ntp_time  # type: ignore[attr-defined]
        s._RTCRtpSender__rtp_timestamp = rtp_timestamp  # type: ignore[attr-defined]
        s._RTCRtpSender__packet_count += 1  # type: ignore[attr-defined]
        s._RTCRtpSender__octet_count += payload_size  # type: ignore[attr-defined]
        return True

    #: ``send(header, data, payload_size, ntp_time, rtp_timestamp)``: one media packet, the
    #: fields of its RTP fixed header and the rest of it (``_emit``)
    send = _emit

    @property
    def rtt(self) -> Optional[float]:
        """Round-trip time to the viewer (seconds), smoothed over its receiver reports
        (``RoundTrip.srtt``); None until a report answered a sender report."""
        return self.round_trip.srtt

    @property
    def rtt_var(self) -> float:
        """How much the viewer's round trips vary (seconds, ``RoundTrip.rttvar``)."""
        return self.round_trip.rttvar

    def _note_sender_report(self) -> None:
        """Keep the send time of the sender report aiortc made last (its ``__lsr`` and
        ``__lsr_time``, set just before the report is sent)."""
        s = self._sender
        lsr_time = s._RTCRtpSender__lsr_time  # type: ignore[attr-defined]
        if lsr_time is not None:
            self._sender_reports.note(s._RTCRtpSender__lsr, lsr_time)  # type: ignore[attr-defined]

    async def _send_rtcp(self, packets: list[Any]) -> None:
        if any(isinstance(p, RtcpSrPacket) for p in packets):
            self._note_sender_report()
        await self._aiortc_send_rtcp(packets)

    def _measure_rtt(self, report: Any) -> Optional[float]:
        """RFC 3550 6.4.1: now - the send time of the sender report the viewer answers
        (one of the last few, ``SenderReportTimes``, noted by ``_send_rtcp`` as each
        left) - the viewer's delay."""
        rtt = self._sender_reports.round_trip(report.lsr, report.dlsr, time.time())
        if rtt is not None:
            self.round_trip.add(rtt)
        return rtt

    def retransmit(self, data: bytes) -> bool:
        """Send a retransmission the way media goes (``_emit``: on the mux, into the
        batch); the sender report's counters and NTP/RTP pair stay the media stream's."""
        return self._emit(None, data, 0, None, 0)

    async def _handle_rtcp_packet(self, packet: Any) -> None:
        if isinstance(packet, (RtcpRrPacket, RtcpSrPacket)):
            for report in packet.reports:
                if report.ssrc == self.ssrc:
                    self.jitter = report.jitter
                    self.fraction_lost = report.fraction_lost / 256
                    self.last_rtt = self._measure_rtt(report)
                    self.reports += 1
        if isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            self._on_nack(list(packet.lost))
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
            self._on_keyframe_request()
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            # REMB: kept for the room's choice of rendition (``remb``); no encoder to adapt
            try:
                bitrate, ssrcs = unpack_remb_fci(packet.fci)
            except ValueError:
                return
            if self.ssrc in ssrcs:
                self.remb, self.remb_at = bitrate, time.monotonic()
        else:
            await self._aiortc_rtcp(packet)

    def close(self) -> None:
        for fut in self._pending:
            fut.cancel()
        self._pending.clear()


def _ice_send_data() -> Callable[..., Awaitable[None]]:
    from aioice.ice import StunProtocol

    return StunProtocol.send_data


_ICE_SEND_DATA = _ice_send_data()
