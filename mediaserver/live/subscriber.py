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

REMB_FRESH = 3.0  #: seconds a viewer's REMB stays its current estimate (receivers send one a second)
MIN_VIDEO_BPS = 100_000  #: below this video bitrate sent, a REMB ratio means nothing
RISING = 1.02  #: a REMB this much above the one before is still rising: it tells no limit


class Subscriber(PeerSession):
    role = "viewer"
    #: True for another node's edge source pulling the room (not a viewer of its own)
    relay = False

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
        #: which video the viewer gets: "full", "low" (the room's low rendition) or "audio"
        self.rendition = "full"
        self._parked: Optional[Downstream] = None  # the video downstream while audio only
        self._video_mark: Optional[tuple[float, int]] = None  # (time, octets) at the last estimate
        #: (arrival, bitrate) of the latest REMB an estimate read, and whether it rose over the one before
        self._remb_seen: Optional[tuple[float, int]] = None
        self._remb_rising = False

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
            port = SenderPort(
                transceiver.sender,
                on_nack=lambda lost, k=kind: self._nack(k, lost),
                on_keyframe_request=lambda k=kind: self._keyframe_request(k),
            )
            port.buffer_limit = self._buffer_limit
            downstream = Downstream(port, stream, label=self.id[:8])
            pending[kind] = downstream
            self.nacked[kind] = 0
        for kind, downstream in pending.items():
            fanouts[kind].add(downstream)
            self._downstreams[kind] = (fanouts[kind], downstream)
        return answer

    def _nack(self, kind: str, lost: list[int]) -> None:
        self.nacked[kind] += len(lost)
        entry = self._downstreams.get(kind)
        if entry is not None:  # answered by the rendition the viewer is on now
            entry[0].on_nack(entry[1], lost)

    def _keyframe_request(self, kind: str) -> None:
        entry = self._downstreams.get(kind)
        if entry is not None:
            entry[0].request_keyframe()

    def switch_video(self, target: Optional[Fanout], rendition: str) -> None:
        """Put this viewer's video on ``target`` (the room's full or low rendition), or
        nowhere (``None``: audio only), without renegotiating; it resumes on a keyframe."""
        entry = self._downstreams.get("video")
        downstream = entry[1] if entry is not None else self._parked
        if downstream is None or rendition == self.rendition:
            return
        if entry is not None and target is not None:
            entry[0].hand_over(downstream, target)
        elif entry is not None:
            entry[0].remove(downstream)
            downstream.park()
        elif target is not None:
            target.add(downstream)
            target.viewer_ready(downstream)
        if target is None:
            self._downstreams.pop("video", None)
            self._parked = downstream
        else:
            self._downstreams["video"] = (target, downstream)
            self._parked = None
        self.log.info("video rendition %s -> %s", self.rendition, rendition)
        self.rendition = rendition

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
        if self._parked is not None:
            self._parked.port.close()

    def octets_sent(self) -> dict[str, int]:
        """kind -> media payload bytes sent to this viewer, also after it left."""
        if not self._downstreams:
            return dict(self._octets_at_end)
        return {kind: d.port.octets_sent for kind, (_, d) in self._downstreams.items()}

    async def quality(self) -> dict:
        """Per kind: the viewer's latest RTCP receiver report (``fraction_lost`` 0..1,
        ``packets_lost``, ``jitter_ms``; None before its first report), the round trip to it
        (``rtt_ms``: the server's own, smoothed over its receiver reports, ``SenderPort.rtt``,
        the one NACK resends are timed by, not aiortc's, which counts only reports answering
        its latest sender report; None before a report answered one), the server's counters
        (packets and bytes sent, NACKed sequence numbers, retransmitted, dropped, waiting for
        a keyframe), and its latest bandwidth estimate (REMB, ``estimate_kbps``; None without
        a recent one: audio, or a player that sends none)."""
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
                "rtt_ms": round(d.port.rtt * 1000, 1) if d.port.rtt is not None else None,
                "packets_sent": d.port.sent_packets,
                "bytes_sent": d.port.octets_sent,
                "nacked": self.nacked.get(transceiver.kind, 0),
                "retransmitted": d.retransmitted,
                "dropped": d.dropped,
                "waiting_for_keyframe": d.waiting,
                "estimate_kbps": (None if d.port.remb is None or time.monotonic() - d.port.remb_at > REMB_FRESH
                                  else round(d.port.remb / 1000)),
            }
        return out

    def accepts(self, rendition: str) -> bool:
        """Whether this viewer can play ``rendition``: the low one is H.264, which a
        player that negotiated VP8 only cannot receive."""
        if rendition != "low":
            return True
        entry = self._downstreams.get("video")
        downstream = entry[1] if entry is not None else self._parked
        return downstream is not None and "H264" in downstream.payload_types

    def latest_report(self) -> Optional[tuple[int, float, Optional[float]]]:
        """The viewer's latest receiver report about what it watches now (its audio while
        on audio only): ``(reports so far, fraction lost 0..1, round trip s or None)``;
        None before the first. The round trip is the one this latest report measured (None if
        it measured none), not one kept from an earlier report: a late report followed by
        one that measures nothing is one bad report, not two, while a queue on the link
        (every report late) still moves the viewer down after ``DOWN_AFTER`` reports.
        Read from the port, which keeps it as the RTCP arrives."""
        entry = self._downstreams.get("audio" if self.rendition == "audio" else "video")
        if entry is None or not entry[1].port.reports:
            return None
        port = entry[1].port
        return port.reports, port.fraction_lost, port.last_rtt

    def estimate_ratio(self) -> Optional[float]:
        """The viewer's latest bandwidth estimate (REMB) over the video bitrate it was sent
        since the previous call: under 1, its link carries less than it is sent. None
        without a REMB of the last ``REMB_FRESH`` seconds, under ``MIN_VIDEO_BPS`` sent (too
        little to tell: audio only, a still picture), or while the estimate rises: a
        receiver raises it a few percent a second from what it got before, so after a
        step up it lags behind the new bitrate for seconds without telling of a limit. Rising
        is judged from one REMB to the next, not from one call to the next: a viewer whose
        receiver reports come more often than its REMBs (a second apart) would otherwise see
        its rising estimate read as a limit at every report between two REMBs."""
        entry = self._downstreams.get("video")
        if entry is None:
            self._video_mark = None
            return None
        port = entry[1].port
        now, octets = time.monotonic(), port.octets_sent
        mark, self._video_mark = self._video_mark, (now, octets)
        if port.remb is not None and (self._remb_seen is None or port.remb_at != self._remb_seen[0]):
            self._remb_rising = self._remb_seen is not None and port.remb > self._remb_seen[1] * RISING
            self._remb_seen = (port.remb_at, port.remb)
        if mark is None or now - mark[0] < 0.2 or port.remb is None or now - port.remb_at > REMB_FRESH:
            return None
        if self._remb_rising:
            return None
        sent_bps = (octets - mark[1]) * 8 / (now - mark[0])
        return port.remb / sent_bps if sent_bps >= MIN_VIDEO_BPS else None

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
