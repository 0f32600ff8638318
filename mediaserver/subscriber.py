"""``Subscriber``: one viewer's WHEP session, fed by the room's fanouts."""

from __future__ import annotations

from .aiortc_bridge import IdleTrack, SenderPort, negotiated_stream
from .codecs import FORWARDED_CODECS, capabilities
from .errors import CodecMismatch
from .fanout import Downstream, Fanout
from .peer_session import PeerSession

__all__ = ["Subscriber"]


class Subscriber(PeerSession):
    role = "viewer"

    def __init__(self, *args, buffer_limit: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._buffer_limit = buffer_limit
        self._downstreams: dict[str, tuple[Fanout, Downstream]] = {}

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
                on_nack=lambda lost, f=fanout, box=downstream_box: f.on_nack(box[0], lost),
                on_keyframe_request=fanout.request_keyframe,
            )
            port.buffer_limit = self._buffer_limit
            downstream = Downstream(port, stream, label=self.id[:8])
            downstream_box.append(downstream)
            pending[kind] = downstream
        for kind, downstream in pending.items():
            fanouts[kind].add(downstream)
            self._downstreams[kind] = (fanouts[kind], downstream)
        return answer

    def on_connected(self) -> None:
        for fanout, downstream in self._downstreams.values():
            fanout.viewer_ready(downstream)

    def detach(self) -> None:
        for fanout, downstream in self._downstreams.values():
            fanout.remove(downstream)
            downstream.port.close()
        self._downstreams.clear()

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
