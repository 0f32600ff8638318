"""Everything Stagepass needs from aiortc's internals, in one place.

Targets **aiortc 1.16.0** exactly (``AIORTC_VERSION``); ``tests/test_aiortc_bridge.py``
fails loudly if the attributes used here move. What we change, and why:

* **Receive side** (``ReceiverTap``): aiortc's ``RTCRtpReceiver._handle_rtp_packet``
  depayloads every packet, reassembles frames in a jitter buffer and decodes them in a
  thread. A forwarding server needs none of that. The tap replaces the method on the
  receiver *instance*: it keeps what the publisher relies on (RTCP receiver statistics,
  REMB bandwidth estimates, RTX unwrapping, NACKs for lost packets) and hands the parsed
  RTP packet, payload untouched, to the room's ``Fanout``. The decoder thread aiortc
  starts stays idle (it is only fed by the method we replaced).
* **Send side** (``SenderPort``): an ``RTCRtpSender`` negotiates SSRCs, payload types and
  RTCP as usual, but its track (``IdleTrack``) never yields a frame, so aiortc's encode
  loop waits forever and never creates an encoder. The ``Fanout`` writes ready-made RTP
  through ``SenderPort.send``: SRTP protect and ``sendto`` on the ICE pair, synchronously,
  no task switch per packet. The port keeps the sender's SR counters right (packet and
  octet counts, the NTP/RTP timestamp pair browsers use for lip sync) and intercepts the
  viewer's RTCP: NACK and PLI/FIR go to the fanout, the rest to aiortc.
"""

from __future__ import annotations

import asyncio
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
    RtcpRtpfbPacket,
    RtpPacket,
    pack_remb_fci,
    unwrap_rtx,
)

__all__ = [
    "AIORTC_VERSION",
    "IdleTrack",
    "NegotiatedStream",
    "ReceiverTap",
    "SenderPort",
    "check_aiortc_version",
    "enlarge_receive_buffer",
    "negotiated_stream",
]

AIORTC_VERSION = "1.16.0"
_CONNECTED = DtlsState.CONNECTED
ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"

logger = logging.getLogger(__name__)


def check_aiortc_version() -> None:
    """Refuse to run against an aiortc this module was not written for."""
    if aiortc.__version__ != AIORTC_VERSION:
        raise RuntimeError(
            f"mediaserver.aiortc_bridge targets aiortc {AIORTC_VERSION}, "
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


class ReceiverTap:
    """Takes RTP from an aiortc receiver before depayloading; see the module docstring."""

    def __init__(self, receiver: RTCRtpReceiver, on_packet: PacketHandler) -> None:
        self._receiver = receiver
        self.on_packet = on_packet  #: where packets go; swapped when a room accepts the publisher
        self.media_ssrc: Optional[int] = None
        self.packets = 0
        self.last_arrival: Optional[float] = None  #: ``time.perf_counter()`` of the last packet
        receiver._handle_rtp_packet = self._handle_rtp_packet  # type: ignore[method-assign]

    @property
    def _codecs(self) -> dict:
        return self._receiver._RTCRtpReceiver__codecs  # type: ignore[attr-defined]

    async def send_pli(self) -> None:
        """Ask the publisher for a keyframe (RTCP PLI)."""
        if self.media_ssrc is not None:
            await self._receiver._send_rtcp_pli(self.media_ssrc)

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

        if is_rtx(codec):
            original_ssrc = r._RTCRtpReceiver__rtx_ssrc.get(packet.ssrc)  # type: ignore[attr-defined]
            apt = codec.parameters.get("apt")
            if original_ssrc is None or len(packet.payload) < 2 or apt not in codecs:
                return
            packet = unwrap_rtx(packet, payload_type=apt, ssrc=original_ssrc)
            codec = codecs[apt]

        nack = r._RTCRtpReceiver__nack_generator  # type: ignore[attr-defined]
        if nack is not None and nack.add(packet):
            await r._send_rtcp_nack(packet.ssrc, sorted(nack.missing))

        self.media_ssrc = packet.ssrc
        self.packets += 1
        self.last_arrival = arrival
        if packet.payload:  # padding-only probes are not forwarded
            self.on_packet(packet, codec_key(codec.mimeType), arrival)


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
        self.sent_packets = 0
        # bound to the nominated ICE pair on first use (and again if it changes): the
        # per-packet path then makes no attribute walks, property calls or type checks
        self._pair: Any = None
        self._protect: Callable[[bytes], bytes] = bytes
        self._sendto: Optional[Callable[[bytes, Any], None]] = None
        self._buffered: Callable[[], int] = int
        self._addr: Any = None

    def ready(self) -> bool:
        """True once DTLS is up and SRTP keys exist."""
        return self._dtls._state == DtlsState.CONNECTED and self._dtls._tx_srtp is not None

    def _bind(self, pair: Any) -> bool:
        if pair is None or self._dtls._tx_srtp is None:
            return False
        self._pair = pair
        self._protect = self._dtls._tx_srtp.protect
        self._addr = pair.remote_addr
        transport = getattr(pair.protocol, "transport", None)
        if transport is not None and type(pair.protocol).send_data is _ICE_SEND_DATA:
            self._sendto = transport.sendto
            self._buffered = transport.get_write_buffer_size
        else:  # TURN relay: its send path is a coroutine
            self._sendto = None
        return True

    def send(self, data: bytes, payload_size: int, ntp_time: int, rtp_timestamp: int) -> bool:
        """Protect and send one RTP packet now. False if the viewer's socket is backed up
        beyond ``buffer_limit`` (the packet is dropped) or the transport is gone."""
        if self._dtls._state is not _CONNECTED:
            return False
        pair = self._nominated.get(1)
        if pair is not self._pair and not self._bind(pair):
            return False
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
        s = self._sender
        s._RTCRtpSender__ntp_timestamp = ntp_time  # type: ignore[attr-defined]
        s._RTCRtpSender__rtp_timestamp = rtp_timestamp  # type: ignore[attr-defined]
        s._RTCRtpSender__packet_count += 1  # type: ignore[attr-defined]
        s._RTCRtpSender__octet_count += payload_size  # type: ignore[attr-defined]
        self.sent_packets += 1
        return True

    async def _handle_rtcp_packet(self, packet: Any) -> None:
        if isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            self._on_nack(list(packet.lost))
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
            self._on_keyframe_request()
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            return  # REMB: we forward one bitrate to everyone, nothing to adapt
        else:
            await self._aiortc_rtcp(packet)

    def close(self) -> None:
        for fut in self._pending:
            fut.cancel()
        self._pending.clear()


def enlarge_receive_buffer(receiver: RTCRtpReceiver, size: int = 4 << 20) -> Optional[int]:
    """Ask the kernel for a larger receive buffer on a publisher's nominated socket, so a
    burst (a keyframe) arriving while the event loop fans out the previous packets is
    queued instead of dropped. Returns the size granted (capped by net.core.rmem_max)."""
    import socket

    pair = receiver.transport.transport._connection._nominated.get(1)
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
