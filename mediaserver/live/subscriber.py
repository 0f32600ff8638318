"""``Subscriber``: one viewer's WHEP session, fed by the room's fanouts.

Besides forwarding, a subscriber keeps what an operator asks about one viewer: the
sequence numbers it reported lost (NACKs), the bytes sent to it, how long it waited for
its first media packet (``first_media_seconds``), and ``quality()``: the viewer's own
RTCP receiver reports (fraction lost, jitter, round trip) beside the server's counters.
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable, Optional

from mediaserver.sfu.aiortc_bridge import IdleTrack, SenderPort, negotiated_stream
from mediaserver.sfu.codecs import FORWARDED_CODECS, capabilities
from mediaserver.live.errors import CodecMismatch
from mediaserver.sfu.fanout import Downstream, Fanout
from mediaserver.live.peer_session import PeerSession

__all__ = ["Subscriber"]


class Subscriber(PeerSession):
    role = "viewer"

    def __init__(self, *args, buffer_limit: int,
                 on_first_media: Optional[Callable[[float], None]] = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._buffer_limit = buffer_limit
        self._downstreams: dict[str, tuple[Fanout, Downstream]] = {}
        self._on_first_media = on_first_media
        #: kind -> sequence numbers this viewer reported lost (RTCP NACK)
        self.nacked: dict[str, int] = {}
        #: kind -> payload bytes sent, kept when the session ends (``octets_sent``)
        self._octets_at_end: dict[str, int] = {}
        #: seconds from the WHEP POST to the first media packet sent to this viewer
        self.first_media_seconds: Optional[float] = None

    async def start(self, offer_sdp: str, kinds: list[str], fanouts: dict[str, Fanout]) -> str:
        """Negotiate send-only transceivers for ``kinds`` and check the live codecs fit.

        Raises ``CodecMismatch`` (before touching any fanout) if the viewer cannot
        receive what is being broadcast right now.
        """
        for kind in kinds:
            transceiver = self.pc.addTransceiver(IdleTrack(kind), direction="sendonly")
            transceiver.setCodecPreferences(capabilities(kind, FORWARDED_CODECS[kind]))
        answer = await self.negotiate(offer_sdp)
        pending: dict[str, Downstream] = {}
        for transceiver in self.pc.getTransceivers():
            kind = transceiver.kind
            fanout = fanouts[kind]
            stream = negotiated_stream(transceiver)
            if not fanout.can_deliver_to(stream.payload_types):
                raise CodecMismatch(
                    f"the room broadcasts {kind} as {fanout.codec}; this player offered "
                    f"only {', '.join(stream.payload_types) or 'nothing usable'}"
                )
            downstream_box: list[Downstream] = []
            port = SenderPort(
                transceiver.sender,
                on_nack=lambda lost, f=fanout, box=downstream_box, k=kind: self._nack(k, f, box[0], lost),
                on_keyframe_request=fanout.request_keyframe,
            )
            port.buffer_limit = self._buffer_limit
            downstream = Downstream(port, stream, label=self.id[:8])
            downstream_box.append(downstream)
            pending[kind] = downstream
            self.nacked[kind] = 0
        for kind, downstream in pending.items():
            fanouts[kind].add(downstream)
            self._downstreams[kind] = (fanouts[kind], downstream)
        return answer

    def _nack(self, kind: str, fanout: Fanout, downstream: Downstream, lost: list[int]) -> None:
        self.nacked[kind] += len(lost)
        fanout.on_nack(downstream, lost)

    def on_connected(self) -> None:
        for fanout, downstream in self._downstreams.values():
            fanout.viewer_ready(downstream)
        if self._downstreams:
            self.tasks.spawn(self._time_first_media(), name="first-media")

    async def _time_first_media(self) -> None:
        """Note when the first packet went out, by looking every 10 ms (100 ms after 5 s,
        if nothing is being broadcast): nothing is added to the per-packet path."""
        ports = [d.port for _, d in self._downstreams.values()]
        while not any(p.sent_packets for p in ports):
            waited = time.monotonic() - self.created
            await asyncio.sleep(0.01 if waited < 5 else 0.1)
        self.first_media_seconds = time.monotonic() - self.created
        if self._on_first_media is not None:
            self._on_first_media(self.first_media_seconds)

    def detach(self) -> None:
        self._octets_at_end = self.octets_sent()
        for fanout, downstream in self._downstreams.values():
            fanout.remove(downstream)
            downstream.port.close()
        self._downstreams.clear()

    def octets_sent(self) -> dict[str, int]:
        """kind -> media payload bytes sent to this viewer, also after it left."""
        if not self._downstreams:
            return dict(self._octets_at_end)
        return {kind: d.port.octets_sent for kind, (_, d) in self._downstreams.items()}

    async def quality(self) -> dict:
        """Per kind: the viewer's latest RTCP receiver report (``fraction_lost`` 0..1,
        ``packets_lost``, ``jitter_ms``, ``rtt_ms``; None before its first report) and the
        server's counters (packets and bytes sent, NACKed sequence numbers, retransmitted,
        dropped, waiting for a keyframe)."""
        out: dict[str, dict] = {}
        for transceiver in self.pc.getTransceivers():
            entry = self._downstreams.get(transceiver.kind)
            if entry is None:
                continue
            _, d = entry
            report = None
            for stat in (await transceiver.sender.getStats()).values():
                if stat.type == "remote-inbound-rtp":
                    report = stat
            rate = d.clock_rates.get(self._codec_of(d), 90000) or 90000
            out[transceiver.kind] = {
                "fraction_lost": round(report.fractionLost / 256, 4) if report else None,
                "packets_lost": report.packetsLost if report else None,
                "jitter_ms": round(report.jitter * 1000 / rate, 2) if report else None,
                "rtt_ms": (round(report.roundTripTime * 1000, 1)
                           if report and report.roundTripTime is not None else None),
                "packets_sent": d.port.sent_packets,
                "bytes_sent": d.port.octets_sent,
                "nacked": self.nacked.get(transceiver.kind, 0),
                "retransmitted": d.retransmitted,
                "dropped": d.dropped,
                "waiting_for_keyframe": d.waiting,
            }
        return out

    @staticmethod
    def _codec_of(d: Downstream) -> str:
        for codec, pt in d.payload_types.items():
            if pt == d.pt:
                return codec
        return ""

    def stats(self) -> dict:
        return {
            kind: {
                "sent": d.port.sent_packets,
                "dropped": d.dropped,
                "retransmitted": d.retransmitted,
                "waiting_for_keyframe": d.waiting,
            }
            for kind, (_, d) in self._downstreams.items()
        }
