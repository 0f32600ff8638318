"""``PacketHistory`` and ``SampleRing``: per-packet state in memory allocated once."""

import sys

import pytest

from mediaserver.sfu.packet_history import PacketHistory
from mediaserver.sfu.samples import SampleRing

pytestmark = pytest.mark.unit


def test_history_returns_what_was_stored_and_forgets_what_was_overwritten():
    h = PacketHistory(8, max_payload=16)
    assert h.get(3) is None and len(h) == 0
    h.put(1, 3, 90000, 1, b"abc", "VP8", 1.5)
    h.put(1, 4, 93000, 0, b"", "OPUS", 2.0)
    assert h.get(3) == (1, 3, 90000, 1, b"abc", "VP8", 1.5)
    assert h.get(4) == (1, 4, 93000, 0, b"", "OPUS", 2.0)
    assert h.holds(3, 1) and not h.holds(3, 2) and not h.holds(11, 1)
    assert h.same_frame(3, 1, 90000) and not h.same_frame(3, 1, 93000)
    h.put(2, 11, 5, 0, b"x" * 16, "VP8", 3.0)  # same slot as 3
    assert h.get(3) == (2, 11, 5, 0, b"x" * 16, "VP8", 3.0)  # the caller checks the seq
    h.put(2, 12, 5, 0, b"y" * 17, "VP8", 3.0)  # too large for a slot: not kept, and 4 is gone
    assert h.get(12) is None and h.get(4) is None and len(h) == 1
    h.clear()
    assert h.get(11) is None and len(h) == 0
    h.put(3, 70000, 2**32 - 1, 1, b"z", "H264", 4.0)  # extended sequence numbers go past 65535
    assert h.get(70000) == (3, 70000, 2**32 - 1, 1, b"z", "H264", 4.0)
    full = PacketHistory(8)
    full.put(3, 70001, 0, 0, b"p" * 1500, "H264", 4.0)  # a full 1,500-byte payload fits by default
    assert full.holds(70001, 3) and full.get(70001)[4] == b"p" * 1500
    with pytest.raises(ValueError):
        PacketHistory(1000)


def test_storing_packets_keeps_no_python_object_alive():
    h = PacketHistory(1024)
    payloads = [bytes([i % 256]) * (100 + i % 1000) for i in range(64)]
    for seq in range(2048):  # allocate, wrap once
        h.put(1, seq, seq * 3000, seq & 1, payloads[seq % 64], "H264", seq * 0.01)
    before = sys.getallocatedblocks()
    for seq in range(2048, 2048 + 5000):
        h.put(1, seq, seq * 3000, seq & 1, payloads[seq % 64], "H264", seq * 0.01)
    assert sys.getallocatedblocks() - before < 10


def test_sample_ring_keeps_the_last_samples_oldest_first():
    r = SampleRing(3)
    assert list(r) == [] and len(r) == 0
    for v in (1.0, 2.0):
        r.append(v)
    assert list(r) == [1.0, 2.0]
    for v in (3.0, 4.0, 5.0):
        r.append(v)
    assert list(r) == [3.0, 4.0, 5.0] and len(r) == 3 and sorted(r) == [3.0, 4.0, 5.0]
    before = sys.getallocatedblocks()
    for i in range(5000):
        r.append(i * 0.5)
    assert sys.getallocatedblocks() - before < 10
    r.clear()
    assert list(r) == [] and len(r) == 0
