"""``UdpMux``: one UDP port for every peer connection of a process (ICE mux).

By default aioice binds a socket per peer connection and per local address. A media
worker that owns a ``UdpMux`` instead serves all its peer connections on one socket, as
mediasoup's ``WebRtcServer``, LiveKit's UDP mux and OvenMediaEngine do: one firewall rule
per worker, and the fan-out's copies of a packet leave in one ``sendmmsg``
(``batched_send``). Incoming datagrams are told apart (RFC 7983 by their first byte):

* **STUN requests** go to the connection whose local ICE username fragment opens the
  request's ``USERNAME`` (``ours:theirs``); aioice then checks MESSAGE-INTEGRITY as usual.
  A remote address is *learned* for a connection only when aioice answers such a request
  with a success response (it authenticated it), or sends a check of its own to an
  address no other connection has (a remote candidate in an SDP never steals a route);
* **STUN responses** go to the connection that sent the request (by remote address, then
  by transaction id);
* **DTLS, SRTP and SRTCP** go to the connection that learned the source address, straight
  into its receive queue (no STUN parse per packet);
* anything else - malformed STUN, an unknown username fragment, data from an address no
  connection learned - is dropped and counted (``MuxStats``), and changes nothing.

The hook: ``adopt(connection)`` replaces, on one aioice ``Connection`` before it gathers,
the method that binds host sockets (``get_component_candidates``); the connection gets
one ``MuxProtocol`` per advertised address instead, which sends through the mux. A TURN
server still gets its own relayed socket (aioice's code). A restarted or replaced
session is a new connection with a new username fragment; a closed one forgets its
addresses. A viewer whose address changes (NAT rebinding) is learned at its first
authenticated check from there; aioice moves the nominated pair when the peer nominates it.

Targets aioice 0.13 as installed with aiortc 1.16.0 (``tests/test_udp_mux.py`` pins the
attributes used).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any, Optional

from aioice import stun
from aioice.candidate import Candidate, candidate_foundation, candidate_priority
from aioice.ice import Connection, StunProtocol, get_host_addresses
from aioice.utils import random_string

from mediaserver.sfu.batched_send import BatchedSender, BatchSend

__all__ = ["MuxProtocol", "MuxStats", "UdpMux", "adopt_peer_connection"]

logger = logging.getLogger(__name__)

_RECEIVE_BUFFER = 8 << 20
_SEND_BUFFER = 4 << 20
_MAX_ADDRESSES = 16  #: remote addresses one connection may learn (candidates it checks)
_COOKIE = b"\x21\x12\xa4\x42"


class MuxStats:
    """Datagrams the mux dropped, by reason (what an operator's counters show)."""

    __slots__ = ("unknown_source", "bad_stun", "unknown_ufrag", "unmatched_response",
                 "ignored_stun", "address_limit")

    def __init__(self) -> None:
        self.unknown_source = 0  #: DTLS/RTP from an address no connection learned
        self.bad_stun = 0  #: STUN-range datagrams that do not parse
        self.unknown_ufrag = 0  #: requests naming no connection of this mux
        self.unmatched_response = 0  #: responses to no transaction of ours
        self.ignored_stun = 0  #: indications (no ICE use)
        self.address_limit = 0  #: addresses not learned: the connection has too many

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class _MuxTransport:
    """What aioice and aiortc read from ``protocol.transport``, served by the mux."""

    def __init__(self, mux: "UdpMux") -> None:
        self._mux = mux

    def sendto(self, data: bytes, addr: Any) -> None:
        self._mux.sendto(data, addr)

    def get_write_buffer_size(self) -> int:
        return self._mux.sender.backlog()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._mux.transport.get_extra_info(name, default)

    def close(self) -> None:
        """The mux's socket outlives any one connection: nothing to close."""


class MuxProtocol(StunProtocol):
    """One connection's local candidate on the mux (aioice's ``StunProtocol`` per socket)."""

    def __init__(self, mux: "UdpMux", connection: Connection, candidate: Candidate) -> None:
        super().__init__(connection)
        self.mux = mux
        self.local_candidate = candidate
        self.transport = _MuxTransport(mux)  # type: ignore[assignment]
        #: remote addresses routed to this protocol
        self.addresses: set[Any] = set()

    def send_stun(self, message: stun.Message, addr: tuple[str, int]) -> None:
        cls = message.message_class
        if cls is stun.Class.RESPONSE and "MESSAGE-INTEGRITY" in message.attributes:
            self.mux.learn(addr, self)  # a check we authenticated came from there
        elif cls is stun.Class.REQUEST:
            # our own check to a candidate the peer's SDP named: never takes an address
            # another connection owns (an SDP could name someone else's)
            self.mux.learn(addr, self, take=False)
        self.mux.sendto(bytes(message), addr)

    async def send_data(self, data: bytes, addr: tuple[str, int]) -> None:
        self.mux.sendto(data, addr)

    async def close(self) -> None:
        self.mux.forget(self)
        self.connection_lost(None)

    def __repr__(self) -> str:
        return f"mux-protocol({self.id}, {self.receiver.local_username})"


class UdpMux(asyncio.DatagramProtocol):
    """One UDP socket shared by the peer connections of this process (see module doc).

    ``await UdpMux.open(...)`` binds it; ``adopt_peer_connection`` (or ``adopt`` per ICE
    connection) puts a peer connection on it before it gathers; ``close`` releases it."""

    def __init__(self, advertise: list[str], send: Optional[BatchSend] = None) -> None:
        self.advertise = advertise
        self._send_strategy = send
        self.transport: Any = None
        self.sender: BatchedSender = None  # type: ignore[assignment]
        self.port = 0
        self.stats = MuxStats()
        self._by_ufrag: dict[str, list[MuxProtocol]] = {}
        self._by_addr: dict[Any, MuxProtocol] = {}
        self._closed = asyncio.get_running_loop().create_future()

    @classmethod
    async def open(cls, host: str = "0.0.0.0", port: int = 0, public_ip: str = "",
                   send: Optional[BatchSend] = None) -> "UdpMux":
        """Bind ``host:port`` (0: a free port). Candidates advertise ``public_ip`` if set
        (a host behind 1:1 NAT), else ``host`` if it is one address, else every address
        of this host aioice would use (loopback excluded)."""
        if public_ip:
            advertise = [public_ip]
        elif host not in ("0.0.0.0", ""):
            advertise = [host]
        else:
            advertise = get_host_addresses(use_ipv4=True, use_ipv6=False) or ["127.0.0.1"]
        loop = asyncio.get_running_loop()
        mux = cls(advertise, send)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECEIVE_BUFFER)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SEND_BUFFER)
            sock.bind((host or "0.0.0.0", port))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        await loop.create_datagram_endpoint(lambda: mux, sock=sock)
        mux.port = sock.getsockname()[1]
        mux.sender = BatchedSender(sock, send)
        logger.info("UDP mux on %s:%d, advertised as %s", host, mux.port, ", ".join(advertise))
        return mux

    # ------------------------------------------------------------ connections
    def adopt(self, connection: Connection) -> None:
        """Serve one aioice connection (not yet gathered) on this mux's socket."""
        if connection._local_candidates_start:
            raise RuntimeError("adopt a connection before it gathers candidates")
        while connection.local_username in self._by_ufrag:  # aiortc reuses one per peer connection
            connection._local_username = random_string(4)
        original = connection.get_component_candidates

        async def get_component_candidates(component: int, addresses: list[str],
                                           timeout: int = 5) -> list[Candidate]:
            protocols = [self._protocol(connection, component, host) for host in self.advertise]
            connection._protocols += protocols
            self._by_ufrag[connection.local_username] = protocols
            candidates = [p.local_candidate for p in protocols]
            if connection.turn_server is not None:  # relayed: aioice's own socket
                candidates += await original(component=component, addresses=[], timeout=timeout)
            return candidates

        connection.get_component_candidates = get_component_candidates  # type: ignore[method-assign]

    def _protocol(self, connection: Connection, component: int, host: str) -> MuxProtocol:
        candidate = Candidate(
            foundation=candidate_foundation("host", "udp", host), component=component,
            transport="udp", priority=candidate_priority(component, "host"),
            host=host, port=self.port, type="host",
        )
        protocol = MuxProtocol(self, connection, candidate)
        protocol.connection_made(protocol.transport)  # type: ignore[arg-type]
        return protocol

    def learn(self, addr: Any, protocol: MuxProtocol, take: bool = True) -> None:
        """Route datagrams from ``addr`` to ``protocol`` from now on; ``take=False``: only
        if no other connection has it."""
        current = self._by_addr.get(addr)
        if current is protocol or (current is not None and not take):
            return
        if len(protocol.addresses) >= _MAX_ADDRESSES:
            self.stats.address_limit += 1
            return
        if current is not None:  # the address moved to another connection
            current.addresses.discard(addr)
        self._by_addr[addr] = protocol
        protocol.addresses.add(addr)

    def forget(self, protocol: MuxProtocol) -> None:
        """A connection closed: its username fragment and addresses route nowhere."""
        for addr in protocol.addresses:
            if self._by_addr.get(addr) is protocol:
                del self._by_addr[addr]
        protocol.addresses.clear()
        ufrag = protocol.receiver.local_username
        protocols = self._by_ufrag.get(ufrag)
        if protocols is not None and protocol in protocols:
            protocols.remove(protocol)
            if not protocols:
                del self._by_ufrag[ufrag]

    def __len__(self) -> int:
        """Connections served now."""
        return len(self._by_ufrag)

    def routes(self) -> int:
        """Remote addresses routed to a connection now."""
        return len(self._by_addr)

    # ------------------------------------------------------------ datagrams
    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if data and data[0] > 3:  # DTLS (20-63) or RTP/RTCP (128-191)
            protocol = self._by_addr.get(addr)
            if protocol is None:
                self.stats.unknown_source += 1
                return
            protocol.receiver.data_received(data, protocol.local_candidate.component)
            return
        if len(data) < 20 or data[4:8] != _COOKIE:
            self.stats.bad_stun += 1
            return
        try:
            message = stun.parse_message(data)
            username = message.attributes.get("USERNAME")
        except Exception:  # aioice raises ValueError, struct.error, UnicodeDecodeError...
            self.stats.bad_stun += 1
            return
        cls = message.message_class
        if cls is stun.Class.REQUEST:
            protocols = self._by_ufrag.get(username.partition(":")[0]) if isinstance(username, str) else None
            if not protocols:
                self.stats.unknown_ufrag += 1
                return
            protocol = self._by_addr.get(addr)
            if protocol not in protocols:
                protocol = protocols[0]
            protocol.receiver.request_received(message, addr, protocol)
        elif cls is stun.Class.RESPONSE or cls is stun.Class.ERROR:
            tid = message.transaction_id
            protocol = self._by_addr.get(addr)
            if protocol is None or tid not in protocol.transactions:
                protocol = self._by_transaction(tid)
            if protocol is None:
                self.stats.unmatched_response += 1
                return
            protocol.transactions[tid].response_received(message, addr)
        else:
            self.stats.ignored_stun += 1

    def _by_transaction(self, tid: bytes) -> Optional[MuxProtocol]:
        for protocols in self._by_ufrag.values():
            for protocol in protocols:
                if tid in protocol.transactions:
                    return protocol
        return None

    def sendto(self, data: bytes, addr: Any) -> None:
        """Send one datagram now (STUN, DTLS, RTCP); media goes through ``sender``."""
        self.transport.sendto(data, addr)

    def error_received(self, exc: Exception) -> None:
        logger.debug("UDP mux: %s", exc)

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if not self._closed.done():
            self._closed.set_result(None)

    async def close(self) -> None:
        """Release the port (connections still on it stop receiving)."""
        if self.transport is None:
            return
        self.sender.close()
        self.transport.close()
        await self._closed


def adopt_peer_connection(mux: UdpMux, pc: Any) -> None:
    """Put every ICE transport of an aiortc ``RTCPeerConnection`` that has not gathered yet
    on ``mux``: call it between ``setRemoteDescription`` and ``setLocalDescription``."""
    for transport in pc._RTCPeerConnection__iceTransports:  # type: ignore[attr-defined]
        connection = transport.iceGatherer._connection
        if not connection._local_candidates_start and not getattr(connection, "_stagepass_mux", None):
            mux.adopt(connection)
            connection._stagepass_mux = mux
