"""The recorder's frame assembler: RTP packets put back in order and cut into frames,
losses dropped to the next keyframe (which it asks for), new publishers waited for on
their first keyframe; and a fanout sink that raises is removed while the fanout goes on."""

from __future__ import annotations

import time

import pytest

from core.logs import context_logger
from core.tasks import TaskOwner
from mediaserver.recording.frame_assembler import FrameAssembler
from mediaserver.sfu.fanout import Fanout
from tests.support.fanout_ports import packet as rtp

pytestmark = pytest.mark.e2e


class Collect:
    """An assembler's outputs and keyframe requests."""

    def __init__(self, kind: str = "video", window: float = 0.3) -> None:
        self.frames: list[tuple[int, int, bool, list]] = []
        self.requests = 0
        self.generations: list[tuple[int, str]] = []
        self.now = 0.0
        self.asm = FrameAssembler(
            kind,
            lambda g, ext, key, payloads: self.frames.append((g, ext, key, payloads)),
            self._request,
            lambda g, codec: self.generations.append((g, codec)),
            reorder_window=window,
            clock=lambda: self.now,
        )

    def _request(self) -> None:
        self.requests += 1

    def push(self, seq, ts, payload=b"x", marker=0, key=False, gen=1, codec="VP8"):
        self.asm.push(rtp(seq, ts, payload, marker), codec, gen, key)

    def payloads(self) -> list[list[bytes]]:
        return [f[3] for f in self.frames]

# ====================================================================== FrameAssembler
def test_frames_complete_on_marker_or_timestamp_change():
    c = Collect()
    c.push(10, 1000, b"a", key=True)
    c.push(11, 1000, b"b", marker=1)
    assert c.payloads() == [[b"a", b"b"]] and c.frames[0][2] is True
    c.push(12, 4000, b"c")  # no marker on this frame
    c.push(13, 4000, b"d")
    assert len(c.frames) == 1
    c.push(14, 7000, b"e", marker=1)  # a new timestamp closes the previous frame
    assert c.payloads() == [[b"a", b"b"], [b"c", b"d"], [b"e"]]
    assert [f[1] for f in c.frames] == [0, 3000, 6000]
    assert [f[2] for f in c.frames] == [True, False, False]
    assert c.generations == [(1, "VP8")]


def test_reordered_packets_are_put_back_in_order():
    c = Collect()
    c.push(100, 0, b"k0", key=True)
    c.push(102, 0, b"k2", marker=1)  # 101 is late
    c.push(104, 3000, b"d1", marker=1)  # the next frame too, with 103 missing
    assert c.frames == []
    c.push(101, 0, b"k1")
    assert c.payloads() == [[b"k0", b"k1", b"k2"]]
    c.push(103, 3000, b"d0")
    assert c.payloads() == [[b"k0", b"k1", b"k2"], [b"d0", b"d1"]]
    c.push(102, 0, b"dup", marker=1)  # a duplicate (retransmission) of an emitted packet
    assert len(c.frames) == 2 and c.asm.losses == 0


def test_keyframe_whose_first_packet_arrives_second_is_kept():
    c = Collect()
    c.push(51, 0, b"k1", marker=1)  # waiting: not a keyframe start, kept aside
    c.push(50, 0, b"k0", key=True)
    assert c.payloads() == [[b"k0", b"k1"]]


def test_loss_drops_to_the_next_keyframe_and_asks_for_one():
    c = Collect(window=0.3)
    c.push(1, 0, b"k", key=True, marker=1)
    requests = c.requests
    c.push(3, 3000, b"d1b", marker=1)  # 2 (the start of frame 1) never comes
    c.push(4, 6000, b"d2", marker=1)
    assert len(c.frames) == 1
    c.now += 0.5  # past the reorder window
    c.push(5, 9000, b"d3", marker=1)
    assert len(c.frames) == 1 and c.asm.losses == 1
    assert c.requests > requests  # asked the publisher for a keyframe
    c.push(6, 12000, b"d4", marker=1)  # a delta frame: still waiting
    c.push(2, 3000, b"d1a")  # the lost packet, far too late
    assert len(c.frames) == 1
    c.push(7, 15000, b"k2", key=True, marker=1)
    c.push(8, 18000, b"d5", marker=1)
    assert c.payloads() == [[b"k"], [b"k2"], [b"d5"]]
    assert [f[1] for f in c.frames] == [0, 15000, 18000]


def test_loss_with_a_keyframe_already_buffered_resumes_on_it():
    c = Collect(window=0.3)
    c.push(1, 0, b"k", key=True, marker=1)
    c.push(3, 3000, b"d1b", marker=1)  # 2 lost
    c.push(4, 6000, b"k2", key=True, marker=1)
    c.push(5, 9000, b"d3", marker=1)
    c.now += 0.5
    c.push(6, 12000, b"d4", marker=1)
    assert c.payloads() == [[b"k"], [b"k2"], [b"d3"], [b"d4"]]


def test_sequence_and_timestamp_wraparound():
    c = Collect()
    ts = 0xFFFFFFFF - 4000
    seq = 0xFFFE
    c.push(seq, ts, b"k0", key=True)
    c.push(seq + 1, ts, b"k1", marker=1)  # 0xFFFF
    c.push(seq + 3, ts + 3000, b"a1", marker=1)  # seq 1 before seq 0
    c.push(seq + 2, ts + 3000, b"a0")  # seq 0
    c.push(seq + 4, ts + 6000, b"b", marker=1)  # the RTP timestamp wrapped
    assert c.payloads() == [[b"k0", b"k1"], [b"a0", b"a1"], [b"b"]]
    assert [f[1] for f in c.frames] == [0, 3000, 6000]
    assert c.asm.losses == 0


def test_new_generation_waits_for_its_keyframe():
    c = Collect()
    c.push(1, 0, b"k", key=True, marker=1)
    c.push(2, 3000, b"half")  # the old source vanished mid-frame
    c.push(900, 777000, b"d", marker=1, gen=2)  # a new source starts with a delta frame
    c.push(901, 780000, b"k", key=True, marker=1, gen=2)
    assert c.payloads() == [[b"k"], [b"k"]]
    assert c.frames[1][0] == 2 and c.frames[1][1] == 3000  # counted from the gen's first packet
    assert c.generations == [(1, "VP8"), (2, "VP8")]


def test_audio_packets_are_frames_and_late_ones_are_dropped():
    c = Collect("audio")
    c.push(0xFFFF, 0xFFFFFFFF - 959, b"a", codec="OPUS")
    c.push(0, 0, b"b", codec="OPUS")  # both wrapped
    c.push(2, 1920, b"d", codec="OPUS")  # 1 lost: audio goes on
    c.push(1, 960, b"c", codec="OPUS")  # too late
    assert c.payloads() == [[b"a"], [b"b"], [b"d"]]
    assert [f[1] for f in c.frames] == [0, 960, 2880]
    assert c.requests == 0


def test_sink_that_raises_is_removed_and_the_fanout_goes_on():
    f = Fanout("video", TaskOwner(context_logger("t")), context_logger("t", "room"))
    f.attach_source(None)
    calls = []

    def bad(*args):
        raise RuntimeError("boom")

    f.add_sink(bad)
    f.add_sink(lambda *args: calls.append(args[2:]))
    f.on_packet(rtp(1, 0, bytes([0x10, 0x00, 0x9D, 0x01, 0x2A]), marker=1), "VP8", time.perf_counter())
    f.on_packet(rtp(2, 3000, bytes([0x10, 0x01, 0x00]), marker=1), "VP8", time.perf_counter())
    assert calls == [(1, True), (1, False)]
    assert len(f.sinks) == 1
