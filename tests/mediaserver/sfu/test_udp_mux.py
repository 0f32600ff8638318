"""The ICE mux: every peer connection of the server on one UDP port (``udp_mux``).

Real aiortc peers over loopback against the real app; hostile datagrams from plain
sockets; the aioice attributes the mux hooks pinned."""

from __future__ import annotations

import asyncio
import inspect
import os
import socket

import pytest
from aioice import stun
from aioice.ice import Connection, StunProtocol
from aiortc import RTCPeerConnection

from signalling.whip import ROOMS
from core.settings import ConfigError, Settings
from mediaserver.sfu.udp_mux import MuxProtocol, UdpMux
from tests.support.live_server import KEY
from tests.support.waiting import wait_for
from tests.support.peers import Peer, Publisher, Viewer

pytestmark = pytest.mark.inprocess


class CountingViewer(Peer):
    """A WHEP viewer that counts video RTP packets and never decodes (cheap: 20 of them)."""

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self.packets = 0
        receiver = self.pc.addTransceiver("video", direction="recvonly").receiver

        async def count(packet, arrival_time_ms) -> None:
            self.packets += 1

        receiver._handle_rtp_packet = count

    async def play(self, room: str) -> int:
        return await self.post(f"/whep/{room}")


def mux_of(app) -> UdpMux:
    mux = app[ROOMS].udp_mux
    assert mux is not None and mux.port > 0
    return mux


def nominated(session) -> object:
    transceiver = session.pc.getTransceivers()[0]
    return transceiver.sender.transport.transport._connection._nominated[1]


def server_port_seen_by(peer: Peer) -> int:
    """The server port the client's selected ICE pair sends to."""
    transceiver = peer.pc.getTransceivers()[0]
    return transceiver.sender.transport.transport._connection._nominated[1].remote_addr[1]


async def test_aioice_internals_the_mux_hooks_are_there():
    assert list(inspect.signature(Connection.get_component_candidates).parameters) == [
        "self", "component", "addresses", "timeout"]
    assert list(inspect.signature(Connection.request_received).parameters) == [
        "self", "message", "addr", "protocol"]
    assert list(inspect.signature(Connection.data_received).parameters) == ["self", "data", "component"]
    for name in ("_local_candidates_start", "_local_username", "_protocols", "_nominated", "turn_server"):
        assert name in Connection(ice_controlling=False).__dict__, name
    assert "transactions" in StunProtocol(None).__dict__
    pc = RTCPeerConnection()
    assert hasattr(pc, "_RTCPeerConnection__iceTransports")


async def test_publisher_and_viewers_of_two_rooms_share_one_port(server):
    base, app = server
    mux = mux_of(app)
    publishers = [Publisher(base, audio=False), Publisher(base, audio=False, start=1000)]
    assert await publishers[0].publish("demo", KEY) == 201
    assert await publishers[1].publish("other", "other-key-123") == 201
    viewers = [Viewer(base, audio=False), Viewer(base, audio=False)]
    assert await viewers[0].play("demo") == 201
    assert await viewers[1].play("other") == 201
    try:
        await wait_for(lambda: all(len(v.numbers) > 10 for v in viewers), timeout=15)
        assert viewers[0].numbers[-1] < 1000 <= viewers[1].numbers[-1]  # no cross-talk
        for peer in publishers + viewers:
            assert server_port_seen_by(peer) == mux.port
        rooms = app[ROOMS]
        sessions = [rooms.get("demo").publisher, rooms.get("other").publisher,
                    *rooms.get("demo").subscribers.values(), *rooms.get("other").subscribers.values()]
        assert len(sessions) == 4 and len(mux) == 4
        for session in sessions:
            pair = nominated(session)
            assert isinstance(pair.protocol, MuxProtocol) and pair.local_addr[1] == mux.port
        # every connection on the mux, and no other socket: candidates offer the one port
        for session in sessions:
            assert f" {mux.port} typ host" in session.pc.localDescription.sdp
            assert all(isinstance(p, MuxProtocol) for p in
                       session.pc.getTransceivers()[0].sender.transport.transport._connection._protocols)
        assert mux.sender.stats.datagrams > 0
    finally:
        for peer in viewers + publishers:
            await peer.close()


async def test_twenty_viewers_on_one_socket_get_every_packet_batched(server):
    base, app = server
    mux = mux_of(app)
    publisher = Publisher(base, audio=False)
    viewers = [CountingViewer(base) for _ in range(20)]
    for v in viewers:
        assert await v.play("demo") == 201
    try:
        await wait_for(lambda: all(v.pc.connectionState == "connected" for v in viewers), timeout=20)
        assert await publisher.publish("demo", KEY) == 201
        await wait_for(lambda: all(v.packets > 50 for v in viewers), timeout=20)
        fanout = app[ROOMS].get("demo").fanouts["video"]
        assert len(fanout) == 20
        stats = mux.sender.stats
        # each publisher packet's 20 copies leave together: far fewer calls than datagrams
        assert stats.datagrams > 20 * 50
        assert stats.syscalls * 5 < stats.datagrams, stats.as_dict()
        counts = [v.packets for v in viewers]
        assert max(counts) - min(counts) < 0.2 * max(counts)
    finally:
        for v in viewers:
            await v.close()
        await publisher.close()


def _binding_request(username: str | None, password: str | None) -> bytes:
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    if username is not None:
        request.attributes["USERNAME"] = username
        request.attributes["PRIORITY"] = 1
        request.attributes["ICE-CONTROLLING"] = 1
    if password is not None:
        request.add_message_integrity(password.encode())
    return bytes(request)


class Watching:
    """A publisher live in "demo" and one decoding viewer receiving it, through the mux."""

    def __init__(self, base: str, app) -> None:
        self.base, self.app, self.mux = base, app, mux_of(app)
        self.room = None
        self.publisher = Publisher(base, audio=False)
        self.viewer = Viewer(base, audio=False)

    def session(self):
        """The server's session of the (first) viewer."""
        return next(iter(self.room.subscribers.values()))

    async def frames_after(self, count: int, timeout: float = 10) -> None:
        n = len(self.viewer.numbers)
        await wait_for(lambda: len(self.viewer.numbers) > n + count, timeout=timeout)


@pytest.fixture
async def watching(server):
    w = Watching(*server)
    assert await w.publisher.publish("demo", KEY) == 201
    assert await w.viewer.play("demo") == 201
    try:
        await wait_for(lambda: len(w.viewer.numbers) > 5, timeout=15)
        w.room = w.app[ROOMS].get("demo")
        yield w
    finally:
        await w.viewer.close()
        await w.publisher.close()


async def test_hostile_datagrams_are_dropped_counted_and_change_nothing(watching):
    mux = watching.mux
    attacker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    attacker.bind(("127.0.0.1", 0))
    attacker.settimeout(0.3)
    try:
        connection = watching.session().pc.getTransceivers()[0].sender.transport.transport._connection
        ufrag = connection.local_username
        target = ("127.0.0.1", mux.port)
        before = mux.stats.as_dict()
        routes = dict(mux._by_addr)
        attacker.sendto(b"\xff" + os.urandom(199), target)  # no protocol of RFC 7983
        attacker.sendto(b"\x80" + os.urandom(100), target)  # RTP from nowhere
        attacker.sendto(b"\x16\xfe\xfd" + os.urandom(60), target)  # DTLS from nowhere
        attacker.sendto(b"\x00\x01\x00\x08" + os.urandom(16), target)  # STUN header, bad length
        attacker.sendto(b"\x00\x01" + os.urandom(30), target)  # STUN range, no cookie
        attacker.sendto(_binding_request("nope:x", "whatever-password-123"), target)  # unknown ufrag
        attacker.sendto(_binding_request(None, None), target)  # no USERNAME
        attacker.sendto(_binding_request(f"{ufrag}:evil", "wrong-password-1234567"), target)
        reply = await asyncio.get_running_loop().run_in_executor(None, attacker.recv, 2048)
        answer = stun.parse_message(reply)
        assert answer.message_class == stun.Class.ERROR and answer.attributes["ERROR-CODE"][0] == 401
        await asyncio.sleep(0.2)
        after = mux.stats.as_dict()
        assert after["unknown_source"] - before["unknown_source"] == 3
        assert after["bad_stun"] - before["bad_stun"] == 2
        assert after["unknown_ufrag"] - before["unknown_ufrag"] == 2
        assert mux._by_addr == routes  # the failed check taught the mux nothing
        attacker.sendto(b"\x80" + os.urandom(100), target)  # still a stranger
        await asyncio.sleep(0.1)
        assert mux.stats.unknown_source == after["unknown_source"] + 1
        await watching.frames_after(10, timeout=5)
        assert watching.viewer.pc.connectionState == "connected"
    finally:
        attacker.close()


async def test_a_peer_that_leaves_is_forgotten_and_a_new_session_takes_the_same_port(watching):
    mux, room, first = watching.mux, watching.room, watching.viewer
    session = watching.session()
    protocol = nominated(session).protocol
    learned = set(protocol.addresses)
    assert learned and all(mux._by_addr[a] is protocol for a in learned)
    ufrag = session.pc.getTransceivers()[0].sender.transport.transport._connection.local_username
    assert await first.delete() == 200
    await first.close()
    await wait_for(lambda: not room.subscribers, timeout=5)
    assert ufrag not in mux._by_ufrag and not learned & set(mux._by_addr)
    assert len(mux) == 1  # the publisher
    # the viewer comes back: a new session (new ICE credentials) on the same port
    again = Viewer(watching.base, audio=False)
    try:
        assert await again.play("demo") == 201
        await wait_for(lambda: len(again.numbers) > 5, timeout=15)
        assert server_port_seen_by(again) == mux.port
    finally:
        await again.close()


@pytest.fixture
def quick_consent(monkeypatch):
    """Consent checks every 0.2 s instead of 5: set before the peers connect, since each
    round sleeps the interval read when it began (the first round would sleep 4-6 s)."""
    monkeypatch.setattr("aioice.ice.CONSENT_INTERVAL", 0.2)


async def test_consent_lost_closes_the_session_and_frees_its_routes(quick_consent, watching):
    """A viewer that vanishes without a DELETE: the server's consent checks (RFC 7675) go
    unanswered, the session ends and the mux forgets it."""
    protocol = nominated(watching.session()).protocol
    assert protocol.addresses
    # the viewer's host goes silent: its ICE socket stops answering
    client = watching.viewer.pc.getTransceivers()[0].sender.transport.transport._connection
    for p in client._protocols:
        p.datagram_received = lambda data, addr: None
    await wait_for(lambda: not watching.room.subscribers, timeout=15)
    assert not protocol.addresses and len(watching.mux) == 1


async def move_client_socket(peer: Peer) -> tuple:
    """The client's NAT rebinds: its ICE socket is replaced by one on a new port (the old
    one goes silent). Returns the new local address."""
    connection = peer.pc.getTransceivers()[0].sender.transport.transport._connection
    protocol = connection._nominated[1].protocol
    old = protocol.transport
    host = old.get_extra_info("sockname")[0]
    loop = asyncio.get_running_loop()
    new, _ = await loop.create_datagram_endpoint(lambda: protocol, local_addr=(host, 0))
    old.set_protocol(asyncio.DatagramProtocol())
    old.close()
    return new.get_extra_info("sockname")[:2]


async def renominate(peer: Peer) -> None:
    """What a browser does after a network change: a check with USE-CANDIDATE (the client
    is ICE-controlling) on its pair, now from its new address."""
    connection = peer.pc.getTransceivers()[0].sender.transport.transport._connection
    pair = connection._nominated[1]
    request = connection.build_request(pair, nominate=True)
    await pair.protocol.request(request, pair.remote_addr,
                                integrity_key=connection.remote_password.encode())


async def test_a_viewer_whose_address_changes_is_followed_once_it_renominates(watching):
    session = watching.session()
    old_addr = nominated(session).remote_addr
    new_addr = await move_client_socket(watching.viewer)
    assert new_addr != old_addr
    await renominate(watching.viewer)  # its first authenticated check from there
    await wait_for(lambda: nominated(session).remote_addr == new_addr, timeout=5)
    assert watching.mux._by_addr[new_addr] is nominated(session).protocol
    await watching.frames_after(15)  # media follows
    assert watching.viewer.pc.connectionState == "connected"


async def test_a_candidate_naming_another_peers_address_does_not_steal_its_route():
    """A peer's SDP may list any address as its candidate: our checks to it must not
    take the route of the connection that owns that address; an authenticated check
    from there may (the address really moved)."""
    from types import SimpleNamespace

    mux = await UdpMux.open("127.0.0.1", 0)
    try:
        victim = mux._protocol(SimpleNamespace(local_username="vict"), 1, "127.0.0.1")
        attacker = mux._protocol(SimpleNamespace(local_username="evil"), 1, "127.0.0.1")
        address = ("127.0.0.1", 9)  # discard port: what we send there goes nowhere
        mux.learn(address, victim)
        request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
        attacker.send_stun(request, address)
        assert mux._by_addr[address] is victim and address not in attacker.addresses
        response = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.RESPONSE,
                                transaction_id=request.transaction_id)
        response.add_message_integrity(b"password-of-the-new-owner")
        attacker.send_stun(response, address)
        assert mux._by_addr[address] is attacker and address not in victim.addresses
    finally:
        await mux.close()


def test_udp_port_setting():
    assert Settings.load([], {}).media.udp_port_for(0) == 0
    s = Settings.load(["--udp-port", "40000-40003", "--public-ip", "203.0.113.7"], {})
    assert [s.media.udp_port_for(i) for i in range(4)] == [40000, 40001, 40002, 40003]
    with pytest.raises(ConfigError, match="no port for worker 4"):
        s.media.udp_port_for(4)
    assert Settings.load([], {"STAGEPASS_UDP_PORT": "off"}).media.udp_port_for(0) is None
    for bad in ("70000", "5-3", "abc", "0-10"):
        with pytest.raises(ConfigError, match="udp_port"):
            Settings.load(["--udp-port", bad], {})
    with pytest.raises(ConfigError, match="public_ip"):
        Settings.load(["--public-ip", "example.org"], {})


async def test_public_ip_is_what_candidates_advertise():
    mux = await UdpMux.open("127.0.0.1", 0, public_ip="203.0.113.7")
    try:
        pc = RTCPeerConnection()
        pc.addTransceiver("video", direction="sendonly")
        connection = pc.getTransceivers()[0].sender.transport.transport._connection
        mux.adopt(connection)
        await connection.gather_candidates()
        [candidate] = connection.local_candidates
        assert (candidate.host, candidate.port, candidate.type) == ("203.0.113.7", mux.port, "host")
        await pc.close()
        assert len(mux) == 0
    finally:
        await mux.close()
