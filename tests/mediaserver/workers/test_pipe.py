"""The worker pipe between two fanouts, over real unix datagram sockets in one process:
packets cross once and unchanged, a packet lost on the pipe is NACKed back up and resent
from the origin's history (a keyframe is asked for when the origin lacks it too), keyframe
requests and sender reports cross, a new publisher on the origin is a new generation on
the relay, and a closed relay tells its room and listeners."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from aiortc.rtp import RtpPacket

from core.tasks import TaskOwner
from mediaserver.sfu.fanout import Fanout
from mediaserver.workers import pipe
from mediaserver.workers.pipe import PipeOut, PipeSocket, PipeSource, socket_path

pytestmark = pytest.mark.inprocess

CHANNEL = 7


def fanouts(tasks: TaskOwner, log) -> dict[str, Fanout]:
    return {kind: Fanout(kind, tasks, log, keyframe_min_interval=0.01) for kind in ("video", "audio")}


def packet(seq: int, keyframe: bool = False) -> RtpPacket:
    payload = bytes([0x65 if keyframe else 0x41]) + seq.to_bytes(2, "big") * 50
    return RtpPacket(payload_type=102, marker=seq % 3 == 0, sequence_number=seq, timestamp=seq * 3000, payload=payload)


async def eventually(predicate, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_pipe_carries_a_room_between_two_workers(tmp_path, monkeypatch):
    monkeypatch.setattr(pipe, "_SENDER_REPORT_EVERY", 0.05)
    log = logging.LoggerAdapter(logging.getLogger("test.pipe"), {"room": "r", "session": "-"})
    tasks = TaskOwner(log)
    sock_a, sock_b = PipeSocket(socket_path(tmp_path, 0), log), PipeSocket(socket_path(tmp_path, 1), log)
    origin, relayed = fanouts(tasks, log), fanouts(tasks, log)
    plis: list[float] = []

    async def publisher_pli() -> None:
        plis.append(time.monotonic())

    origin["video"].attach_source(publisher_pli)
    out = PipeOut(sock_a, CHANNEL, sock_b.path, origin, log)
    out.start()
    closed: list[str] = []

    async def on_closed(source) -> None:
        closed.append("room")

    source = PipeSource(room_name="r", sock=sock_b, channel=CHANNEL, origin_path=sock_a.path, fanouts=relayed,
                        on_closed=on_closed, room_tasks=tasks, stale_after=5.0)
    source.attach()
    got: list[tuple[int, int, int, bytes, str, int]] = []
    relayed["video"].add_sink(lambda p, codec, gen, key: got.append(
        (p.sequence_number, p.timestamp, p.marker, p.payload, codec, gen)))
    try:
        sent = [packet(seq, keyframe=seq == 1) for seq in range(1, 11)]
        for p in sent:
            origin["video"].on_packet(p, "H264", time.perf_counter())
        await eventually(lambda: len(got) == 10)
        assert [g[:5] for g in got] == [(p.sequence_number, p.timestamp, p.marker, p.payload, "H264") for p in sent]
        assert source.codecs == {"video": "H264"} and source.last_media() is not None
        generation = got[-1][5]

        # a packet lost on the pipe: NACKed up when a viewer asks for it, resent, fills the gap
        origin["video"].remove_sink(out._sinks["video"])
        origin["video"].on_packet(packet(11), "H264", time.perf_counter())
        origin["video"].add_sink(out._sinks["video"])
        origin["video"].on_packet(packet(12), "H264", time.perf_counter())
        await eventually(lambda: got[-1][0] == 12)
        assert relayed["video"].source_recovering(11) is True  # the viewer waits for it
        await eventually(lambda: got[-1][0] == 11)
        assert got[-1][3] == packet(11).payload and out.resent == 1

        # one the origin never got either: the origin asks its publisher for a keyframe
        before = len(plis)
        relayed["video"].source_recovering(40000)
        await eventually(lambda: len(plis) > before)
        assert out.keyframes_asked == 1

        # a keyframe request on the relay reaches the origin's publisher
        await asyncio.sleep(0.02)
        before = len(plis)
        relayed["video"].request_keyframe()
        await eventually(lambda: len(plis) > before)

        # the origin's sender report crosses, carried forward to when it was sent
        origin["video"].on_sender_report(1 << 40, 123456, 90000)
        await eventually(lambda: relayed["video"].source_clock is not None)
        ntp, rtp, _, rate = relayed["video"].source_clock
        assert rate == 90000 and ntp >= 1 << 40 and 123456 <= rtp < 123456 + 90000

        # a new publisher on the origin: a new generation on the relay too
        origin["video"].attach_source(publisher_pli)
        origin["video"].on_packet(packet(500, keyframe=True), "H264", time.perf_counter())
        await eventually(lambda: got[-1][0] == 500)
        assert got[-1][5] > generation

        # the relay let go of: its room and listeners hear of it, the channel is free
        listened: list[str] = []

        async def listener() -> None:
            listened.append("listener")

        source.on_close(listener)
        await source.close()
        assert closed == ["room"] and listened == ["listener"] and CHANNEL not in sock_b.endpoints
    finally:
        await out.close()
        await tasks.close()
        sock_a.close()
        sock_b.close()
    assert not origin["video"].sinks


async def test_a_burst_the_receiving_worker_cannot_read_yet_waits_and_arrives_in_order(tmp_path):
    """A worker's unix datagram queue takes only ``net.unix.max_dgram_qlen`` datagrams (10 by
    default) until it reads, whatever its buffer size: a burst sent while it is busy (here:
    sent without the event loop running, so nothing is read) must wait, not be lost."""
    log = logging.LoggerAdapter(logging.getLogger("test.pipe"), {"room": "r", "session": "-"})
    sock_a, sock_b = PipeSocket(socket_path(tmp_path, 0), log), PipeSocket(socket_path(tmp_path, 1), log)
    got: list[int] = []

    class Counting:
        def datagram(self, kind, kind_index, codec, generation, body) -> None:
            got.append(int.from_bytes(body[:2], "big"))

    sock_b.endpoints[CHANNEL] = Counting()
    try:
        burst = 200
        sent = [sock_a.send(sock_b.path, pipe._HEADER.pack(pipe.RTP, 0, 0, 0, CHANNEL) + n.to_bytes(2, "big") + bytes(700))
                for n in range(burst)]
        assert all(sent) and sock_a.send_failures == 0
        await eventually(lambda: len(got) == burst)
        assert got == list(range(burst)) and sock_a.sent == burst
    finally:
        sock_a.close()
        sock_b.close()
