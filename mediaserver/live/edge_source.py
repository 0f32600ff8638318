"""``EdgeSource``: a room's packets pulled from its origin node, as this node's publisher.

On an edge node (a node viewers reach while the creator publishes elsewhere) the room's
source is not a creator but one WebRTC connection to the origin, where this node is one
viewer. Here the edge is the offerer: it offers receive-only video and audio with the
codecs the fanouts forward, and ``exchange`` (given by the caller, which knows how to
reach the origin: the media domain knows no HTTP) returns the origin's answer. From
then on it is a ``Publisher``: the same taps feed the same fanouts, keyframe requests
and NACKs go up to the origin, and a source that stops sending is closed after
``stale_after``. The edge's connection keeps a UDP port of its own (aiortc's default):
the process's shared port (``UdpMux``) only answers checks, and here the edge is the
controlling side that sends them.
"""

from __future__ import annotations

from typing import Awaitable, Callable

from aiortc import RTCSessionDescription

from mediaserver.live.errors import NegotiationFailed
from mediaserver.live.publisher import Publisher
from mediaserver.sfu.codecs import FORWARDED_CODECS
from mediaserver.sfu.fanout import Fanout

__all__ = ["EdgeSource", "Exchange"]

#: sends the edge's SDP offer to the origin and returns its SDP answer
Exchange = Callable[[str], Awaitable[str]]


class EdgeSource(Publisher):
    role = "edge"

    async def pull(self, exchange: Exchange, fanouts: dict[str, Fanout]) -> None:
        """Offer, let ``exchange`` carry the offer to the origin, apply its answer.

        Raises ``NegotiationFailed`` when the answer cannot be applied; whatever
        ``exchange`` raises goes through unchanged.
        """
        for kind in ("video", "audio"):
            self._receive(kind, FORWARDED_CODECS[kind])
        await self.pc.setLocalDescription(await self.pc.createOffer())
        answer = await exchange(self.pc.localDescription.sdp)
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        except Exception as exc:  # aiortc raises ValueError, OperationError, ...
            raise NegotiationFailed(f"the origin's answer cannot be applied: {exc}") from exc
        self._dtls.watch_transports()
        self.tasks.spawn(self._watch_connect(), name="connect-timeout")
        self._negotiated(fanouts, "pulling from the origin")
