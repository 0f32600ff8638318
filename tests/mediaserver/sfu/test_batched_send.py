"""``BatchedSender``: partial batches, a full socket, a refused destination; the real
``sendmmsg`` read back from loopback sockets."""

from __future__ import annotations

import asyncio
import errno
import socket

import pytest

from mediaserver.sfu import batched_send
from mediaserver.sfu.batched_send import BatchedSender, mmsg_sender, sendto_sender
from mediaserver.sfu.rtp_payloads import RTP_HEADER

pytestmark = pytest.mark.unit


class FakeSocket:
    """Takes at most ``per_call`` datagrams a call; raises what ``script`` says first."""

    def __init__(self, per_call: int, script: list = ()) -> None:
        self.per_call = per_call
        self.script = list(script)
        self.sent: list[tuple[bytes, object]] = []
        self.calls = 0
        self.r, self.w = socket.socketpair()  # a real fd for add_writer
        self.family = socket.AF_INET

    def fileno(self) -> int:
        return self.w.fileno()

    def send(self, sender: BatchedSender, start: int, count: int) -> int:
        self.calls += 1
        if self.script:
            action = self.script.pop(0)
            if action is not None:
                raise action
        taken = [(sender.datagram(i), sender.addrs[i]) for i in range(start, start + min(count, self.per_call))]
        self.sent += taken
        return len(taken)

    def close(self) -> None:
        self.r.close()
        self.w.close()


def datagrams(n: int) -> list[tuple[bytes, tuple[str, int]]]:
    return [(b"packet %d" % i, ("127.0.0.1", 5000 + i % 3)) for i in range(n)]


async def test_a_batch_taken_in_part_is_continued_in_order():
    fake = FakeSocket(per_call=7)
    sender = BatchedSender(fake, fake.send)
    items = datagrams(20)
    for data, addr in items:
        sender.add(data, addr)
    assert fake.sent == []  # nothing before the end of this loop turn
    await asyncio.sleep(0)
    assert fake.sent == items
    assert fake.calls == 3 and sender.stats.partial == 2  # 7 of 20, 7 of 13, then 6 of 6
    assert sender.stats.datagrams == 20 and sender.backlog() == 0
    fake.close()


async def test_held_datagrams_leave_at_the_last_release_without_a_loop_turn():
    """A publisher packet's copies are queued between ``hold`` and ``release`` (the receive
    path fanning it out): they leave at once at the outermost release, in one call."""
    fake = FakeSocket(per_call=64)
    sender = BatchedSender(fake, fake.send)
    items = datagrams(5)
    batched_send.hold()
    batched_send.hold()  # nested: a relay fanning out inside a fan-out
    try:
        for data, addr in items:
            sender.add(data, addr)
    finally:
        batched_send.release()
    assert fake.sent == []  # the outer hold is still open
    batched_send.release()
    assert fake.sent == items and fake.calls == 1
    sender.add(*items[0])  # no hold: at the end of the loop turn, as before
    assert fake.calls == 1
    await asyncio.sleep(0)
    assert fake.sent == items + items[:1] and fake.calls == 2
    fake.close()


async def test_a_full_socket_keeps_the_rest_until_writable_and_bounds_the_backlog():
    fake = FakeSocket(per_call=5, script=[None, BlockingIOError(errno.EAGAIN, "full")])
    sender = BatchedSender(fake, fake.send, limit_bytes=100)
    items = datagrams(12)
    for data, addr in items:
        sender.add(data, addr)
    sender.flush()
    assert fake.sent == items[:5]
    assert sender.backlog() == sum(len(d) for d, _ in items[5:]) and sender.stats.blocked == 1
    # while blocked: queued up to the limit, then dropped and counted
    extra = datagrams(30)
    for data, addr in extra:
        sender.add(data, addr)
    sender.flush()
    assert sender.stats.overflow > 0
    kept = 30 - sender.stats.overflow
    await asyncio.sleep(0.05)  # the socketpair is writable: the sender drains
    assert fake.sent == items + extra[:kept]
    assert sender.backlog() == 0
    fake.close()


async def test_a_refused_destination_costs_only_its_own_datagram():
    fake = FakeSocket(per_call=100, script=[OSError(errno.ENETUNREACH, "unreachable")])
    sender = BatchedSender(fake, fake.send)
    items = datagrams(10)
    for data, addr in items:
        sender.add(data, addr)
    sender.flush()
    assert fake.sent == items[1:] and sender.stats.errors == 1
    fake.close()


@pytest.mark.parametrize("strategy", ["sendmmsg", "sendto"])
async def test_real_socket_delivers_every_datagram_to_its_own_destination(strategy):
    if strategy == "sendmmsg" and batched_send._LIBC is None:
        pytest.skip("sendmmsg is Linux/glibc only")
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    out.setblocking(False)
    receivers = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
    for r in receivers:
        r.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        r.bind(("127.0.0.1", 0))
        r.settimeout(1)
    send = mmsg_sender if strategy == "sendmmsg" else sendto_sender
    sender = BatchedSender(out, send)
    expected: list[list[bytes]] = [[], [], []]
    for i in range(300):  # more than one sendmmsg call holds
        data = bytes([i % 251]) * (100 + i % 200)
        expected[i % 3].append(data)
        sender.add(data, receivers[i % 3].getsockname())
    sender.flush()
    try:
        for r, want in zip(receivers, expected):
            got = [r.recv(2048) for _ in want]
            assert got == want
        calls = sender.stats.syscalls
        assert calls == (2 if strategy == "sendmmsg" else 300)  # 256 + 44
    finally:
        out.close()
        for r in receivers:
            r.close()


async def test_srtp_protected_in_its_slot_is_what_the_viewer_decrypts():
    """The fan-out's path: libsrtp protects each packet in place in the arena; a receiver
    with the same keys gets every original packet back, in order."""
    from pylibsrtp import Policy, Session
    from pylibsrtp._binding import lib

    key = bytes(range(30))

    def session(direction: int) -> Session:
        return Session(policy=Policy(key=key, ssrc_type=direction,
                                     srtp_profile=Policy.SRTP_PROFILE_AES128_CM_SHA1_80))

    tx, rx = session(Policy.SSRC_ANY_OUTBOUND), session(Policy.SSRC_ANY_INBOUND)
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    out.setblocking(False)
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(1)
    sender = BatchedSender(out)
    packets = [bytes([0x80, 96]) + i.to_bytes(2, "big") + bytes(4) + (7).to_bytes(4, "big")
               + bytes([i % 256]) * (200 + i) for i in range(300)]
    try:
        for i, p in enumerate(packets):
            if i % 2:  # as the fanout queues a copy: its header's fields, then the shared rest
                sender.add_transformed(p[12:], receiver.getsockname(), lib.srtp_protect, tx._srtp[0], 144,
                                       RTP_HEADER.unpack_from(p))
            else:
                sender.add_transformed(p, receiver.getsockname(), lib.srtp_protect, tx._srtp[0], 144)
        too_long = bytes([0x80, 96]) + bytes(10) + bytes(batched_send.SLOT_SIZE)
        with pytest.raises(ValueError, match="too long"):
            sender.add_transformed(too_long, receiver.getsockname(), lib.srtp_protect, tx._srtp[0], 144)
        await asyncio.sleep(0)  # the loop turn ends: the batch leaves
        got = [receiver.recv(4096) for _ in packets]
        assert all(len(g) == len(p) + 10 for g, p in zip(got, packets))  # the 80-bit tag
        assert [rx.unprotect(g) for g in got] == packets
        assert sender.stats.datagrams == 300
    finally:
        out.close()
        receiver.close()
