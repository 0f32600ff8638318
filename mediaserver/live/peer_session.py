"""``PeerSession``: one aiortc peer connection owned by a room (publisher or viewer).

It owns the connection and its tasks, ends itself when ICE/DTLS fails or the peer never
connects, and closes idempotently, telling its room so the room can let go of it.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Awaitable, Callable, Optional

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription

from mediaserver.sfu.aiortc_bridge import enlarge_srtp_buffers
from mediaserver.sfu.dtls_watch import DtlsWatch
from mediaserver.live.errors import NegotiationFailed
from mediaserver.live.remote_candidates import DeferredCandidates, RemoteCandidates, RemoteIce
from core.close_listeners import CloseListener, CloseListeners
from core.logs import context_logger
from core.tasks import TaskOwner
from mediaserver.sfu.udp_mux import UdpMux, adopt_peer_connection

__all__ = ["PeerSession"]


class PeerSession:
    role = "peer"

    def __init__(
        self,
        room_name: str,
        ice_servers: list[str],
        connect_timeout: float,
        on_closed: Callable[["PeerSession"], Awaitable[None]],
        room_tasks: TaskOwner,
        on_failed: Optional[Callable[[str, str, str], None]] = None,
        udp_mux: Optional[UdpMux] = None,
    ) -> None:
        self.id = secrets.token_urlsafe(16)
        self.room_name = room_name
        self.created = time.monotonic()
        self._user_id: Optional[int] = None
        self.log = context_logger(f"stagepass.{self.role}", room_name, self.id[:8])
        self.tasks = TaskOwner(self.log)
        self.pc = RTCPeerConnection(
            RTCConfiguration(iceServers=[RTCIceServer(urls=u) for u in ice_servers])
        )
        self._dtls = DtlsWatch(self.pc)
        #: the offer's ICE credentials and mids (set by ``negotiate``)
        self.remote_ice = RemoteIce("", "", ())
        self.remote_candidates = RemoteCandidates(self.pc, self.tasks, self.log)
        self._udp_mux = udp_mux
        self.connected = asyncio.Event()
        self._connect_timeout = connect_timeout
        self._on_closed = on_closed
        #: ``on_failed(role, stage, cause)`` when the connection fails or never connects
        self._on_failed = on_failed
        #: a listener registered after the close runs on the room's tasks
        self._close_listeners = CloseListeners(self.log, late=room_tasks)
        self._closed = False
        self.pc.on("connectionstatechange", self._on_state)

    @property
    def user_id(self) -> Optional[int]:
        """The ticket holder, once admitted (paid rooms); logged as ``user`` from then on."""
        return self._user_id

    @user_id.setter
    def user_id(self, value: Optional[int]) -> None:
        self._user_id = value
        if value is not None:
            self.log.extra["user"] = value  # type: ignore[index]

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def state(self) -> str:
        return self.pc.connectionState

    async def negotiate(self, offer_sdp: str) -> str:
        """Apply the offer and return the answer (ICE candidates included). A browser's
        mDNS candidates are added after the answer (``DeferredCandidates``)."""
        offer_sdp, mdns = DeferredCandidates.take_from(offer_sdp)
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            if self._udp_mux is not None:
                adopt_peer_connection(self._udp_mux, self.pc)
            await self.pc.setLocalDescription(await self.pc.createAnswer())
        except Exception as exc:  # aiortc raises ValueError, OperationError, ...
            raise NegotiationFailed(f"cannot negotiate this offer: {exc}") from exc
        self.remote_ice = RemoteIce.of(offer_sdp)
        self._dtls.watch_transports()
        self.remote_candidates.add(mdns, "offer")
        self.tasks.spawn(self._watch_connect(), name="connect-timeout")
        return self.pc.localDescription.sdp

    def trickle(self, candidates: list[tuple[str, str]], end: bool) -> None:
        """Candidates the peer trickled after its offer (``(mid, candidate attribute
        value)``, checked by the caller), and whether it has sent its last."""
        batch = DeferredCandidates([(None, mid, value) for mid, value in candidates], ended=end)
        self.remote_candidates.add(batch, "client")

    async def _watch_connect(self) -> None:
        try:
            await asyncio.wait_for(self.connected.wait(), self._connect_timeout)
        except asyncio.TimeoutError:
            self.log.warning("did not connect within %.0f s, closing", self._connect_timeout)
            self._failed("connect", "timeout")
            await self.close()

    def _on_state(self) -> None:
        state = self.pc.connectionState
        if state == "failed":
            self.log.warning("connection failed: %s", self._dtls.failure_cause())
            stage, cause = self._dtls.failure_kind()
            if stage == "ice" and self.connected.is_set():
                stage, cause = "consent", "lost"  # ICE stopped answering after connecting
            self._failed(stage, cause)
        else:
            self.log.info("connection %s", state)
        if state == "connected":
            enlarge_srtp_buffers(self.pc)
            self.connected.set()
            self.on_connected()
        elif state in ("failed", "closed") and not self._closed:
            self.tasks.spawn(self.close(), name="close-on-" + state)

    def _failed(self, stage: str, cause: str) -> None:
        if self._on_failed is not None:
            self._on_failed(self.role, stage, cause)

    def on_connected(self) -> None:
        """Hook for subclasses."""

    async def close(self) -> None:
        """End the session and everything it owns; safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        self.detach()
        await self.pc.close()
        await self.tasks.close()
        self.log.info("closed")
        await self._on_closed(self)
        await self._close_listeners.run()

    def on_close(self, listener: CloseListener) -> None:
        """Run ``listener`` once the session has closed (seats, counters...); at once if it
        already has."""
        self._close_listeners.add(listener)

    def detach(self) -> None:
        """Hook for subclasses: unhook from the room's fanouts (synchronous, first)."""
