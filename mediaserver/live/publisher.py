"""``Publisher``: the creator's WHIP session, feeding the room's fanouts."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Optional, Protocol

from mediaserver.sfu.aiortc_bridge import ReceiverTap, enlarge_receive_buffer, negotiated_stream
from mediaserver.sfu.codecs import capabilities
from mediaserver.sfu.fanout import Fanout
from mediaserver.live.peer_session import PeerSession

__all__ = ["LivePublisher", "Publisher"]


class LivePublisher(Protocol):
    """What a room needs of its publisher, whatever brings the media: a WHIP peer
    (``Publisher``) or an RTMP encoder (``mediaserver.ingest``)."""

    id: str
    codecs: dict[str, str]  #: kind -> codec key the fanouts receive
    log: logging.LoggerAdapter

    @property
    def closed(self) -> bool: ...

    def attach(self) -> None:
        """Start feeding the room's fanouts (the room accepted this publisher)."""

    #: resolved with the ``time.perf_counter()`` of the first media packet (the room confirms
    #: the broadcast this publisher's POST opened then); pending while none came. Only the
    #: sources a room accepts as publishers need it: a worker's relay (``PipeSource``)
    #: never opens a broadcast and has none
    first_media: "asyncio.Future[float]"

    def last_media(self) -> Optional[float]:
        """``time.perf_counter()`` of the last media packet, None before the first."""

    def is_stale(self) -> bool:
        """Gone or silent: a new publisher may take the room over."""

    async def bytes_received(self) -> Optional[int]:
        """Bytes received from the encoder so far (the admin's ingest rate)."""

    async def close(self) -> None: ...


class Publisher(PeerSession):
    role = "publisher"

    def __init__(self, *args, stale_after: float, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._stale_after = stale_after
        self._taps: dict[str, ReceiverTap] = {}
        self._fanouts: dict[str, Fanout] = {}
        self.codecs: dict[str, str] = {}
        self.first_media: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    async def start(self, offer_sdp: str, plan: dict[str, str], fanouts: dict[str, Fanout]) -> str:
        """Negotiate receive-only transceivers for the planned kinds (kind -> codec key).

        Taps are installed before any packet can arrive; the fanouts are attached by
        ``attach`` once the room accepts this publisher.
        """
        for kind, codec in plan.items():
            self._receive(kind, (codec,))
        answer = await self.negotiate(offer_sdp)
        self._negotiated(fanouts, "publishing")
        return answer

    def _receive(self, kind: str, codecs: tuple[str, ...]) -> None:
        """A receive-only transceiver for ``kind`` and its tap, before any packet can come."""
        transceiver = self.pc.addTransceiver(kind, direction="recvonly")
        transceiver.setCodecPreferences(capabilities(kind, codecs))
        tap = self._taps[kind] = ReceiverTap(transceiver.receiver, self._drop, self._first_packet)
        self.tasks.spawn(tap.run_nacks(), name=f"nack-{kind}")

    def _negotiated(self, fanouts: dict[str, Fanout], doing: str) -> None:
        """Note the codec negotiated for each kind; the fanouts to feed once attached."""
        for transceiver in self.pc.getTransceivers():
            stream = negotiated_stream(transceiver)
            if stream.payload_types:
                self.codecs[transceiver.kind] = next(iter(stream.payload_types))
        self.log.info("%s %s", doing, ", ".join(f"{k}={c}" for k, c in self.codecs.items()))
        self._fanouts = fanouts

    def _first_packet(self, arrival: float) -> None:
        """A tap's first packet (each tap reports once): the first of them is the first media."""
        if not self.first_media.done():
            self.log.info("first media")
            self.first_media.set_result(arrival)

    @staticmethod
    def _drop(packet, codec, arrival) -> None:
        """Packets before the room accepted the publisher go nowhere."""

    @staticmethod
    def _no_sender_report(ntp: int, rtp: int, clock_rate: int) -> None:
        """Sender reports of a publisher the room does not (or no longer) forward."""

    def attach(self) -> None:
        for kind, tap in self._taps.items():
            fanout = self._fanouts[kind]
            fanout.attach_source(tap.send_pli)
            tap.on_packet = fanout.on_packet
            tap.on_sender_report = fanout.on_sender_report
            fanout.source_recovering = tap.recovering

    def detach(self) -> None:
        for kind, tap in self._taps.items():
            tap.on_packet = self._drop
            tap.on_sender_report = self._no_sender_report
            fanout = self._fanouts.get(kind)
            if fanout is not None:
                fanout.detach_source(tap.send_pli)

    def on_connected(self) -> None:
        for transceiver in self.pc.getTransceivers()[:1]:  # BUNDLE: one socket for all
            granted = enlarge_receive_buffer(transceiver.receiver)
            self.log.debug("receive buffer %s bytes", granted)
        video = self._fanouts.get("video")
        if video is not None and len(video):
            video.request_keyframe()
        self.tasks.spawn(self._watch_media(), name="media-watchdog")

    async def _watch_media(self) -> None:
        """End a publisher that stopped sending media: browsers that vanish without a
        DELETE leave ICE up for ~30 s, and viewers would stare at a frozen picture."""
        while True:
            await asyncio.sleep(self._stale_after / 4)
            last = self.last_media()
            if last is not None and time.perf_counter() - last > self._stale_after:
                self.log.warning("no media for %.1f s, closing", self._stale_after)
                await self.close()
                return

    def last_media(self) -> Optional[float]:
        arrivals = [t.last_arrival for t in self._taps.values() if t.last_arrival is not None]
        return max(arrivals) if arrivals else None

    async def bytes_received(self) -> Optional[int]:
        """Bytes received on the peer connection's transport (BUNDLE: one for all tracks)."""
        transceivers = self.pc.getTransceivers()
        if not transceivers:
            return None
        for stat in (await transceivers[0].receiver.getStats()).values():
            if stat.type == "transport":
                return stat.bytesReceived
        return 0

    def is_stale(self) -> bool:
        """Gone or silent: a new publisher may take the room over."""
        if self.closed or self.state in ("failed", "closed"):
            return True
        last = self.last_media()
        if last is None:
            return time.monotonic() - self.created > self._connect_timeout
        return time.perf_counter() - last > self._stale_after
