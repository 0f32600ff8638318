"""The fanout's rewrite rules, with recording ports instead of sockets (tests/support/fanout_ports.py)."""

import struct

import pytest

from mediaserver.sfu.fanout import HISTORY_SIZE, Downstream
from tests.support.fanout_ports import VP8_KEY, FakePort, fanout, feed, stream  # noqa: F401  (fanout: fixture)

pytestmark = pytest.mark.inprocess


async def test_viewer_starts_on_keyframe_with_its_own_ssrc_pt_and_contiguous_seq(fanout):
    port = FakePort()
    d = Downstream(port, stream(), "v1")
    fanout.add(d)
    feed(fanout, 65530, ["D", "D", "K", "D", "D"])  # wraps the 16-bit sequence
    assert len(port.sent) == 6
    assert port.sent[0].payload == VP8_KEY
    assert {p.ssrc for p in port.sent} == {1111} and {p.payload_type for p in port.sent} == {100}
    seqs = [p.sequence_number for p in port.sent]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:]))
    assert [p.marker for p in port.sent] == [0, 1] * 3
    assert port.sent[0].extensions.mid is None  # parse() without a map does not name them...
    assert port.raw[0][0] == 0x90 and port.raw[0][12:14] == b"\xbe\xde"  # ...but they are there
    assert fanout.keyframes.requested >= 1  # it asked for the keyframe while it waited


async def test_viewer_without_extensions_gets_plain_headers(fanout):
    port = FakePort()
    fanout.add(Downstream(port, stream(extensions=False), "v1"))
    feed(fanout, 10, ["K"])
    assert port.raw[0][0] == 0x80 and port.raw[0][12:] == VP8_KEY


async def test_blocked_viewer_drops_then_resumes_on_next_keyframe_without_gaps(fanout):
    ok, slow = FakePort(), FakePort()
    d_ok, d_slow = Downstream(ok, stream(), "ok"), Downstream(slow, stream(), "slow")
    fanout.add(d_ok)
    fanout.add(d_slow)
    seq, ts = feed(fanout, 100, ["K", "D"])
    slow.blocked = True
    seq, ts = feed(fanout, seq, ["D", "D"], ts)
    assert d_slow.waiting and d_slow.dropped == 1  # one failed send, then it waits
    slow.blocked = False
    seq, ts = feed(fanout, seq, ["D", "K", "D"], ts)
    assert len(ok.sent) == 14
    resumed = slow.sent[4:]
    assert resumed[0].payload == VP8_KEY
    seqs = [p.sequence_number for p in slow.sent]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:]))  # no gap for the viewer to NACK


async def test_nack_is_answered_from_shared_history_as_rtx(fanout):
    port = FakePort()
    d = Downstream(port, stream(), "v1")
    fanout.add(d)
    feed(fanout, 500, ["K", "D", "D"])
    lost = port.sent[3]
    port.sent.clear()
    fanout.on_nack(d, [lost.sequence_number])
    assert len(port.sent) == 1
    rtx = port.sent[0]
    assert rtx.payload_type == 101 and rtx.ssrc == 2222
    assert struct.unpack("!H", rtx.payload[:2])[0] == lost.sequence_number
    assert rtx.payload[2:] == lost.payload and rtx.timestamp == lost.timestamp
    # without RTX negotiated, the packet is resent as it was
    plain_port = FakePort()
    d2 = Downstream(plain_port, stream(rtx=None), "v2")
    fanout.add(d2)
    feed(fanout, 506, ["K", "D"], ts0=10000)
    first = plain_port.sent[1]
    plain_port.sent.clear()
    fanout.on_nack(d2, [first.sequence_number])
    assert plain_port.raw[-1][12:] == first.payload and plain_port.sent[0].sequence_number == first.sequence_number


async def test_nack_for_packets_never_sent_or_too_old_is_ignored(fanout):
    port = FakePort()
    d = Downstream(port, stream(), "v1")
    fanout.add(d)
    seq, ts = feed(fanout, 0, ["K"])
    first_seq = port.sent[0].sequence_number
    feed(fanout, seq, ["D"] * (HISTORY_SIZE // 2 + 10), ts)
    sent = len(port.sent)
    fanout.on_nack(d, [first_seq, (first_seq - 5) & 0xFFFF, (port.sent[-1].sequence_number + 10) & 0xFFFF])
    assert len(port.sent) == sent


async def test_new_source_continues_viewer_timeline(fanout):
    port = FakePort()
    d = Downstream(port, stream(), "v1")
    fanout.add(d)
    feed(fanout, 100, ["K", "D"], ts0=5000)
    last = port.sent[-1]
    fanout.attach_source(None)  # the creator reconnects: new SSRC, seq and timestamps
    feed(fanout, 40000, ["D", "K", "D"], ts0=123456789)
    after = port.sent[4:]
    assert after[0].payload == VP8_KEY
    assert after[0].sequence_number == (last.sequence_number + 1) & 0xFFFF
    assert 0 < (after[0].timestamp - last.timestamp) & 0xFFFFFFFF < 90000 * 5


async def test_viewer_missing_the_codec_is_never_sent_garbage(fanout):
    port = FakePort()
    s = stream()
    s.payload_types = {"H264": 102}
    d = Downstream(port, s, "v1")
    fanout.add(d)
    feed(fanout, 1, ["K", "D", "K"])
    assert port.sent == [] and d.unsupported_codec == "VP8"
    assert not fanout.can_deliver_to(s.payload_types)


async def test_unready_viewer_waits(fanout):
    port = FakePort()
    port.is_ready = False
    d = Downstream(port, stream(), "v1")
    fanout.add(d)
    feed(fanout, 1, ["K", "D"])
    assert port.sent == []
    port.is_ready = True
    feed(fanout, 5, ["D", "K"], ts0=9000)
    assert port.sent[0].payload == VP8_KEY


async def test_removed_viewer_gets_nothing(fanout):
    port = FakePort()
    d = Downstream(port, stream(), "v1")
    fanout.add(d)
    feed(fanout, 1, ["K"])
    fanout.remove(d)
    feed(fanout, 3, ["D", "K"])
    assert len(port.sent) == 2 and len(fanout) == 0
