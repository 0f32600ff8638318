"""Everything Stagepass needs from aiortc's internals, in one place.

Targets **aiortc 1.16.0** exactly (``AIORTC_VERSION``); ``tests/test_aiortc_bridge.py``
fails loudly if the attributes used here move. What we change, and why:

* **Receive side** (``ReceiverTap``): aiortc's ``RTCRtpReceiver._handle_rtp_packet``
  depayloads every packet, reassembles frames in a jitter buffer and decodes them in a
  thread. A forwarding server needs none of that. The tap replaces the method on the
  receiver *instance*: it keeps what the publisher relies on (RTCP receiver statistics,
  REMB bandwidth estimates, RTX unwrapping, NACKs for lost packets) and hands the parsed
  RTP packet, payload untouched, to the room's ``Fanout``, inside a ``batched_send.hold``:
  the copies it queues on the UDP mux leave when the fanout returns, without an event-loop
  iteration of their own. The decoder thread aiortc
  starts stays idle (it is only fed by the method we replaced). NACKs go out after a
  short reorder window (``retransmission.NackRequester``, run by ``run_nacks``) instead
  of aiortc's NACK at the first gap, and the publisher's sender reports (its NTP/RTP
  pair) are passed on (``on_sender_report``) for the viewers' own.
* **Send side** (``SenderPort``): an ``RTCRtpSender`` negotiates SSRCs, payload types and
  RTCP as usual, but its track (``IdleTrack``) never yields a frame, so aiortc's encode
  loop waits forever and never creates an encoder. The ``Fanout`` writes ready-made RTP
  through ``SenderPort.send``: SRTP protect and ``sendto`` on the ICE pair, synchronously,
  no task switch per packet. On the process's UDP mux (``udp_mux``) the packet is
  protected by libsrtp in place in the mux's ``sendmmsg`` batch (``batched_send``) instead:
  the SRTP packet never exists as a Python object. The port keeps the sender's SR
  counters right (packet and octet counts, the NTP/RTP timestamp pair browsers use for
  lip sync, which the fanout derives from the publisher's) and intercepts the viewer's
  RTCP: NACK and PLI/FIR go to the fanout, the rest to aiortc; on the way the port reads the viewer's receiver reports
  (``rtt``, ``jitter``, ``fraction_lost``) and bandwidth estimates (``remb``). Retransmissions (``retransmit``) leave the sender report alone
  and take the same one way out as first sends (``_emit``: the mux's batch when on it).
  aiortc's SRTP sessions reserve 144 of their 1,500 buffer bytes for the trailer, so they
  refuse RTP over 1,356 bytes ("packet is too long"); the port gives its session a buffer
  for packets up to ``MAX_RTP_PACKET`` (the 1,500-byte Ethernet limit plus our header).
* **DTLS**: ``dtls_watch.DtlsWatch`` (wider cipher suites, why a handshake failed).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import time
from typing import Any, Awaitable, Callable, Optional

import aiortc
from aiortc import MediaStreamTrack, RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver
from aiortc.codecs import is_rtx
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
    RtpPacket,
    pack_remb_fci,
    unpack_remb_fci,
    unwrap_rtx,
)
from pylibsrtp import SRTP_MAX_TRAILER_LEN
from pylibsrtp._binding import ffi as _srtp_ffi
from pylibsrtp._binding import lib as _srtp_lib

from mediaserver.sfu.batched_send import hold, release
from mediaserver.sfu.retransmission import NackRequester
from mediaserver.sfu.rtp_payloads import RTP_HEADER

__all__ = [
    "AIORTC_VERSION",
    "MAX_RTP_PACKET",
    "IdleTrack",
    "NegotiatedStream",
    "ReceiverTap",
    "SenderPort",
    "check_aiortc_version",
    "enlarge_receive_buffer",
    "enlarge_srtp_buffers",
    "negotiated_stream",
]

AIORTC_VERSION = "1.16.0"
#: the largest RTP packet a viewer's SRTP session protects: a 1,500-byte publisher packet
#: (RTX included) plus the header Stagepass writes in front of its payload
MAX_RTP_PACKET = 2048
_CONNECTED = DtlsState.CONNECTED
_srtp_protect = _srtp_lib.srtp_protect
ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"

logger = logging.getLogger(__name__)


def check_aiortc_version() -> None:
    """Refuse to run against an aiortc this module was not written for."""
    if aiortc.__version__ != AIORTC_VERSION:
        raise RuntimeError(
            f"mediaserver.sfu.aiortc_bridge targets aiortc {AIORTC_VERSION}, "
            f"found {aiortc.__version__}: re-check the internals it uses"
        )


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


PacketHandler = Callable[[RtpPacket, str, float], None]
#: ``on_sender_report(ntp, rtp_timestamp, clock_rate)``
SenderReportHandler = Callable[[int, int, int], None]
NACK_TICK = 0.01  #: how often missing packets are looked at (libwebrtc: 20 ms)


def _ignore_sender_report(ntp: int, rtp: int, clock_rate: int) -> None:
    pass


class ReceiverTap:
    """Takes RTP from an aiortc receiver before depayloading; see the module docstring."""

    def __init__(self, receiver: RTCRtpReceiver, on_packet: PacketHandler) -> None:
        self._receiver = receiver
        self.on_packet = on_packet  #: where packets go; swapped when a room accepts the publisher
        #: where the publisher's sender reports go (with ``on_packet``)
        self.on_sender_report: SenderReportHandler = _ignore_sender_report
        self.media_ssrc: Optional[int] = None
        self.clock_rate = 90000
        self.packets = 0
        self.last_arrival: Optional[float] = None  #: ``time.perf_counter()`` of the last packet
        #: None when the publisher did not negotiate NACK
        self.nacks: Optional[NackRequester] = None
        self._nack_wake = asyncio.Event()
        receiver._handle_rtp_packet = self._handle_rtp_packet  # type: ignore[method-assign]
        self._aiortc_rtcp = receiver._handle_rtcp_packet
        receiver._handle_rtcp_packet = self._handle_rtcp_packet  # type: ignore[method-assign]

    @property
    def _codecs(self) -> dict:
        return self._receiver._RTCRtpReceiver__codecs  # type: ignore[attr-defined]

    async def send_pli(self) -> None:
        """Ask the publisher for a keyframe (RTCP PLI)."""
        if self.media_ssrc is not None:
            await self._receiver._send_rtcp_pli(self.media_ssrc)

    async def _handle_rtcp_packet(self, packet: Any) -> None:
        if isinstance(packet, RtcpSrPacket) and packet.ssrc == self.media_ssrc:
            info = packet.sender_info
            if info.ntp_timestamp:  # aiortc reports zeros until it has sent something
                self.on_sender_report(info.ntp_timestamp, info.rtp_timestamp, self.clock_rate)
        await self._aiortc_rtcp(packet)

    def recovering(self, seq: int) -> bool:
        """Whether the publisher's packet ``seq`` is missing and still being NACKed."""
        return self.nacks is not None and self.nacks.recovering(seq)

    async def run_nacks(self) -> None:
        """NACK the publisher's missing packets once their reorder window has passed and
        again until they come (the task runs for the publisher's lifetime)."""
        while True:
            nacks = self.nacks
            if nacks is None or not nacks.pending:
                self._nack_wake.clear()
                await self._nack_wake.wait()
                continue
            await asyncio.sleep(NACK_TICK)
            lost = nacks.due()
            if lost and self.media_ssrc is not None:
                await self._receiver._send_rtcp_nack(self.media_ssrc, lost)

    async def _handle_rtp_packet(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        arrival = time.perf_counter()
        r = self._receiver
        if not r._enabled:
            return
        estimator = r._RTCRtpReceiver__remote_bitrate_estimator  # type: ignore[attr-defined]
        rtcp_ssrc = r._RTCRtpReceiver__rtcp_ssrc  # type: ignore[attr-defined]
        if estimator is not None and packet.extensions.abs_send_time is not None:
            remb = estimator.add(
                abs_send_time=packet.extensions.abs_send_time,
                arrival_time_ms=arrival_time_ms,
                payload_size=len(packet.payload) + packet.padding_size,
                ssrc=packet.ssrc,
            )
            if rtcp_ssrc is not None and remb is not None:
                await r._send_rtcp(
                    RtcpPsfbPacket(
                        fmt=RTCP_PSFB_APP,
                        ssrc=rtcp_ssrc,
                        media_ssrc=0,
                        fci=pack_remb_fci(*remb),
                    )
                )

        codecs = self._codecs
        codec = codecs.get(packet.payload_type)
        if codec is None:
            return
        streams = r._RTCRtpReceiver__remote_streams  # type: ignore[attr-defined]
        stats = streams.get(packet.ssrc)
        if stats is None:
            stats = streams[packet.ssrc] = StreamStatistics(codec.clockRate)
        stats.add(packet)

        retransmission = is_rtx(codec)
        if retransmission:
            original_ssrc = r._RTCRtpReceiver__rtx_ssrc.get(packet.ssrc)  # type: ignore[attr-defined]
            apt = codec.parameters.get("apt")
            if original_ssrc is None or len(packet.payload) < 2 or apt not in codecs:
                return
            packet = unwrap_rtx(packet, payload_type=apt, ssrc=original_ssrc)
            codec = codecs[apt]

        nacks = self.nacks
        if nacks is None and r._RTCRtpReceiver__nack_generator is not None:  # type: ignore[attr-defined]
            nacks = self.nacks = NackRequester()
        if nacks is not None:
            nacks.add(packet.sequence_number, retransmission)
            if nacks.pending:
                self._nack_wake.set()

        if packet.ssrc != self.media_ssrc:
            self.media_ssrc = packet.ssrc
            self.clock_rate = codec.clockRate
        self.packets += 1
        self.last_arrival = arrival
        if packet.payload:  # padding-only probes are not forwarded
            hold()  # the copies leave when it returns, not in a loop iteration of their own
            try:
                self.on_packet(packet, codec_key(codec.mimeType), arrival)
            finally:
                release()


class SenderPort:
    """Writes pre-built RTP for one viewer's ``RTCRtpSender``; see the module docstring."""

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
        #: of packets lost (0..1), and the latest round trip measured from one (s)
        self.reports = 0
        self.fraction_lost = 0.0
        self.last_rtt: Optional[float] = None
        #: the viewer's latest bandwidth estimate for this stream (REMB, bit/s) and when it
        #: came (``time.monotonic()``); None until one does
        self.remb: Optional[int] = None
        self.remb_at = 0.0
        self._rtts: collections.deque[float] = collections.deque(maxlen=8)
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
        _enlarge_srtp_session(self._dtls._tx_srtp)
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
        """Round-trip time to the viewer (seconds): the longest of the last 8 measured
        from its receiver reports (a viewer that lags at times is given the time it takes
        then); None until a report answered a sender report."""
        return max(self._rtts) if self._rtts else None

    def _measure_rtt(self, report: Any) -> Optional[float]:
        """RFC 3550 6.4.1: now - the sender report's send time - the viewer's delay."""
        s = self._sender
        lsr_time = s._RTCRtpSender__lsr_time  # type: ignore[attr-defined]
        if report.dlsr and lsr_time is not None and report.lsr == s._RTCRtpSender__lsr:  # type: ignore[attr-defined]
            rtt = time.time() - lsr_time - report.dlsr / 65536
            if rtt >= 0:
                self._rtts.append(rtt)
                return rtt
        return None

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
                    rtt = self._measure_rtt(report)
                    if rtt is not None:
                        self.last_rtt = rtt
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


def enlarge_srtp_buffers(pc: Any) -> None:
    """Let a connected peer's SRTP sessions take RTP up to ``MAX_RTP_PACKET`` bytes."""
    for transceiver in pc.getTransceivers():
        dtls = transceiver.sender.transport
        for session in (dtls._rx_srtp, dtls._tx_srtp):
            _enlarge_srtp_session(session)


def _enlarge_srtp_session(session: Any) -> None:
    """pylibsrtp's ``Session`` processes packets in a 1,500-byte buffer of its own
    (``_cdata``/``_buffer``) and refuses anything longer than 1,500 minus the 144 bytes it
    reserves for the trailer; give it room for ``MAX_RTP_PACKET`` plus that trailer."""
    if session is None or len(session._cdata) >= MAX_RTP_PACKET + SRTP_MAX_TRAILER_LEN:
        return
    session._cdata = _srtp_ffi.new("char[]", MAX_RTP_PACKET + SRTP_MAX_TRAILER_LEN)
    session._buffer = _srtp_ffi.buffer(session._cdata)


def enlarge_receive_buffer(receiver: RTCRtpReceiver, size: int = 4 << 20) -> Optional[int]:
    """Ask the kernel for a larger receive buffer on a publisher's nominated socket, so a
    burst (a keyframe) arriving while the event loop fans out the previous packets is
    queued instead of dropped. Returns the size granted (capped by net.core.rmem_max)."""
    import socket

    pair = receiver.transport.transport._connection._nominated.get(1)
    if getattr(getattr(pair, "protocol", None), "mux", None) is not None:
        return None  # the process's UDP mux sized its own socket's buffers
    transport = getattr(getattr(pair, "protocol", None), "transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return None
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)


def _ice_send_data() -> Callable[..., Awaitable[None]]:
    from aioice.ice import StunProtocol

    return StunProtocol.send_data


_ICE_SEND_DATA = _ice_send_data()
