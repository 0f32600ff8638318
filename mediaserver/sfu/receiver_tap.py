"""``ReceiverTap``: a publisher's RTP taken from aiortc's receiver before depayloading; part of
the aiortc boundary (``aiortc_bridge``, whose docstring says what is changed and why)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable, Optional

from aiortc import RTCRtpReceiver
from aiortc.codecs import is_rtx
from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, RtcpSrPacket, RtpPacket, pack_remb_fci, unwrap_rtx

from mediaserver.sfu.batched_send import hold, release
from mediaserver.sfu.negotiated_stream import codec_key
from mediaserver.sfu.retransmission import NackRequester

__all__ = ["ReceiverTap", "FirstPacketHandler", "PacketHandler", "SenderReportHandler", "enlarge_receive_buffer"]

PacketHandler = Callable[[RtpPacket, str, float], None]
#: ``on_first_packet(arrival)``: the publisher's first media packet (``time.perf_counter()``)
FirstPacketHandler = Callable[[float], None]
#: ``on_sender_report(ntp, rtp_timestamp, clock_rate)``
SenderReportHandler = Callable[[int, int, int], None]
NACK_TICK = 0.01  #: how often missing packets are looked at (libwebrtc: 20 ms)


def _ignore_sender_report(ntp: int, rtp: int, clock_rate: int) -> None:
    pass


class ReceiverTap:
    """Takes RTP from an aiortc receiver before depayloading; see ``aiortc_bridge``'s docstring.

    ``on_first_packet`` is called once, after the first packet that counts (a known payload
    type on an enabled receiver, the one that sets ``last_arrival``). Until then the
    receiver calls ``_handle_first_rtp_packet``, which then swaps itself out for
    ``_handle_rtp_packet``: the check costs nothing from the second packet on."""

    def __init__(self, receiver: RTCRtpReceiver, on_packet: PacketHandler,
                 on_first_packet: Optional[FirstPacketHandler] = None) -> None:
        self._receiver = receiver
        self._on_first_packet = on_first_packet
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
        receiver._handle_rtp_packet = (  # type: ignore[method-assign]
            self._handle_rtp_packet if on_first_packet is None else self._handle_first_rtp_packet)
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

    async def _handle_first_rtp_packet(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        await self._handle_rtp_packet(packet, arrival_time_ms)
        if self.last_arrival is not None and self._on_first_packet is not None:
            self._receiver._handle_rtp_packet = self._handle_rtp_packet  # type: ignore[method-assign]
            on_first_packet, self._on_first_packet = self._on_first_packet, None
            on_first_packet(self.last_arrival)

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
