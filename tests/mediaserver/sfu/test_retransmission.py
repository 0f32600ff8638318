"""Each packet once, and retransmission with judgment: the fanout's duplicate suppression
and NACK answers (with recording ports), and the upstream ``NackRequester``."""

from __future__ import annotations

import asyncio

from aiortc.rtp import RtpPacket

from mediaserver.sfu.fanout import Downstream
from mediaserver.sfu.retransmission import LATE_LIMIT, NackRequester, ViewerNacks, extend_seq
from tests.support.fanout_ports import VP8_CONT, VP8_DELTA, VP8_KEY, FakePort, fanout, feed, packet, stream  # noqa: F401
from tests.support.waiting import wait_for
import pytest

pytestmark = pytest.mark.inprocess


def seqs(port: FakePort) -> list[int]:
    return [p.sequence_number for p in port.sent]


def recording_sink(f):
    got = []
    f.add_sink(lambda p, codec, gen, key: got.append((p.sequence_number, key)))
    return got


# ------------------------------------------------------------------ each packet once
async def test_duplicates_and_late_originals_are_forwarded_once(fanout):
    port = FakePort()
    fanout.add(Downstream(port, stream(), "v1"))
    got = recording_sink(fanout)
    seq, ts = feed(fanout, 100, ["K", "D", "D"])  # 100..105
    fanout.on_packet(packet(103, ts - 3000, VP8_DELTA), "VP8", 0.0)  # a copy of one sent
    fanout.on_packet(packet(105, ts - 3000, VP8_CONT, marker=1), "VP8", 0.0)  # copy of the newest
    assert len(port.sent) == 6 and len(got) == 6
    assert fanout.stats.duplicates == 2 and fanout.stats.packets_out == 6


async def test_a_gap_is_filled_once_and_the_late_original_dropped(fanout):
    port = FakePort()
    fanout.add(Downstream(port, stream(), "v1"))
    got = recording_sink(fanout)
    feed(fanout, 200, ["K"])  # 200, 201
    fanout.on_packet(packet(203, 4000, VP8_CONT, marker=1), "VP8", 0.0)  # 202 is missing
    fanout.on_packet(packet(202, 4000, VP8_DELTA), "VP8", 0.0)  # the retransmission
    fanout.on_packet(packet(202, 4000, VP8_DELTA), "VP8", 0.0)  # and the late original
    sent = seqs(port)
    assert len(sent) == 4 and len(set(sent)) == 4
    assert sent[3] == (sent[1] + 1) & 0xFFFF  # the gap filler took its own place
    assert [s for s, _ in got] == [200, 201, 203, 202]
    assert fanout.stats.duplicates == 1


async def test_packets_too_old_to_use_are_not_forwarded(fanout):
    port = FakePort()
    fanout.add(Downstream(port, stream(), "v1"))
    seq, ts = feed(fanout, 1000, ["K"] + ["D"] * 40)  # 82 packets
    fanout.on_packet(packet(seq - LATE_LIMIT - 1, ts, VP8_DELTA), "VP8", 0.0)
    assert len(port.sent) == 82 and fanout.stats.too_late == 1


async def test_sequence_wrap_is_not_a_duplicate(fanout):
    port = FakePort()
    fanout.add(Downstream(port, stream(), "v1"))
    feed(fanout, 65534, ["K", "D", "D"])  # 65534, 65535, 0, 1, 2, 3
    assert len(port.sent) == 6 and fanout.stats.duplicates == 0


async def test_a_late_keyframe_packet_never_starts_a_viewer(fanout):
    early = FakePort()
    fanout.add(Downstream(early, stream(), "early"))
    fanout.on_packet(packet(11, 9000, VP8_CONT, marker=1), "VP8", 0.0)  # 10 is late
    late = FakePort()
    fanout.add(Downstream(late, stream(), "late"))
    fanout.on_packet(packet(10, 9000, VP8_KEY), "VP8", 0.0)
    assert late.sent == [] and early.sent == []  # neither had started
    feed(fanout, 12, ["K"], ts0=12000)
    assert [p.payload for p in late.sent] == [VP8_KEY, VP8_CONT]


async def test_restarted_sequence_numbers_open_a_new_generation(fanout):
    port = FakePort()
    fanout.add(Downstream(port, stream(), "v1"))
    seq, ts = feed(fanout, 30000, ["K", "D"])
    gen = fanout.generation
    fanout.on_packet(packet(5, ts, VP8_KEY), "VP8", 0.0)  # far behind: not believed yet
    assert fanout.generation == gen and len(port.sent) == 4
    feed(fanout, 6, ["K", "D"], ts0=ts + 3000)  # the next one confirms the jump
    assert fanout.generation == gen + 1
    assert len(port.sent) == 8 and port.sent[4].payload == VP8_KEY
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs(port), seqs(port)[1:]))


# ------------------------------------------------------------------ sender reports
async def test_sender_report_pair_is_the_publishers_translated(fanout):
    port = FakePort()
    d = Downstream(port, stream(), "v1")
    fanout.add(d)
    seq, ts = feed(fanout, 100, ["K"], ts0=50000)
    ntp0, rtp0 = 0xE000000000000000, 123456
    fanout.on_sender_report(ntp0, rtp0, 90000)
    port.sr.clear()
    feed(fanout, seq, ["D"], ts0=ts)
    for ntp, rtp in port.sr:
        src_rtp = (rtp - d.ts_delta) & 0xFFFFFFFF
        # the pair lies on the publisher's line: ntp - ntp0 == (rtp - rtp0) / rate
        assert abs((ntp - ntp0) / 2**32 - ((src_rtp - rtp0) & 0xFFFFFFFF) / 90000) < 0.001
    # a retransmission leaves the pair alone
    n = len(port.sr)
    fanout.on_nack(d, [port.sent[0].sequence_number])
    assert len(port.sr) == n


# ------------------------------------------------------------------ NACK answers
def nack_setup(f, rtt=0.05, jitter=0):
    port = FakePort()
    port.rtt, port.jitter = rtt, jitter
    d = Downstream(port, stream(), "v1")
    f.add(d)
    feed(f, 500, ["K", "D", "D", "D"])
    return port, d


def resent(port: FakePort) -> list[int]:
    return [int.from_bytes(p.payload[:2], "big") for p in port.sent if p.payload_type == 101]


async def test_a_sequence_is_resent_at_most_once_per_round_trip(fanout):
    port, d = nack_setup(fanout, rtt=0.05)
    lost = port.sent[3].sequence_number
    await asyncio.sleep(0.06)  # older than a round trip: the viewer really misses it
    fanout.on_nack(d, [lost])
    fanout.on_nack(d, [lost])  # aiortc repeats every missing packet in each NACK
    fanout.on_nack(d, [lost, (lost + 1) & 0xFFFF])
    assert resent(port) == [lost, (lost + 1) & 0xFFFF]
    await asyncio.sleep(0.11)  # a round trip (+ hold) later it may really need it again
    fanout.on_nack(d, [lost])
    assert resent(port) == [lost, (lost + 1) & 0xFFFF, lost]
    assert fanout.stats.retransmitted == 3 and fanout.stats.nacks_repeated == 2


async def test_no_resend_before_the_last_keyframe_or_past_the_window(fanout):
    port, d = nack_setup(fanout)
    before_key = port.sent[2].sequence_number
    seq, ts = feed(fanout, 508, ["K", "D"], ts0=20000)
    fanout.on_nack(d, [before_key])
    assert resent(port) == []
    seq, ts = feed(fanout, seq, ["D"] * (LATE_LIMIT // 2), ts0=ts)
    too_old = port.sent[8].sequence_number  # the keyframe, now LATE_LIMIT + 4 behind
    fanout.on_nack(d, [too_old])
    assert resent(port) == [] and fanout.stats.nacks_unusable == 2


async def test_a_viewer_that_waits_for_every_packet_still_gets_one_before_the_keyframe(fanout):
    """aiortc's jitter buffer plays strictly in order: stuck on a packet from before the
    latest keyframe, it can only go on once it gets that packet."""
    port, d = nack_setup(fanout)
    d.nacks.repeats = 3  # it lists every missing packet in each NACK
    before_key = port.sent[2].sequence_number
    feed(fanout, 508, ["K", "D"], ts0=20000)
    await asyncio.sleep(0.06)  # a round trip: it really misses it
    fanout.on_nack(d, [before_key])
    assert resent(port) == [before_key]


async def test_what_the_server_never_got_waits_for_upstream_then_asks_for_a_keyframe(fanout):
    port, d = nack_setup(fanout)  # source 500..507
    feed(fanout, 509, ["D"], ts0=20000)  # the server never got 508: the viewer sees the gap
    hole = (port.sent[7].sequence_number + 1) & 0xFFFF
    requested = fanout.keyframes.requested
    recovering = {508}
    fanout.source_recovering = lambda seq: seq in recovering
    fanout.on_nack(d, [hole])  # the publisher's retransmission may still come
    assert resent(port) == [] and fanout.keyframes.requested == requested
    recovering.clear()  # the server gave up on it
    fanout.on_nack(d, [hole])
    assert resent(port) == [] and fanout.keyframes.requested == requested + 1
    assert fanout.stats.nack_keyframes == 1


async def test_early_nacks_are_held_for_the_reorder_window_and_dropped_if_it_arrived(fanout):
    port, d = nack_setup(fanout, rtt=0.001, jitter=900)  # 10 ms of jitter: hold 30 ms
    d.nacks.repeats = 3  # an aiortc-like viewer: every NACK lists all it still misses
    lost = port.sent[5].sequence_number
    late = port.sent[6].sequence_number
    fanout.on_nack(d, [lost, late])  # right after sending: may just be reordered
    assert resent(port) == [] and set(d.nacks.pending) == {lost, late}
    newer = port.sent[7].sequence_number
    fanout.on_nack(d, [lost, newer])  # a newer NACK that no longer lists `late`: it arrived
    assert set(d.nacks.pending) == {lost, newer}
    await asyncio.sleep(0.06)
    assert resent(port) == [lost, newer] and not d.nacks.pending


async def test_a_held_nack_a_full_list_viewer_did_not_repeat_is_dropped(fanout):
    port, d = nack_setup(fanout, rtt=0.001, jitter=900)
    d.nacks.repeats = 3
    fanout.on_nack(d, [port.sent[7].sequence_number])
    fanout.on_nack(d, [port.sent[5].sequence_number])  # spoke again, without the first
    await asyncio.sleep(0.06)
    assert resent(port) == [port.sent[5].sequence_number]


async def test_before_its_first_round_trip_a_full_list_viewer_is_held_for_the_default(fanout):
    """Until a receiver report answered a sender report, the server does not know the
    viewer's round trip: its early NACKs are held for the default round trip (100 ms), not
    answered at once (in the first second of a session on a jittery link they are mostly
    packets still on their way)."""
    port, d = nack_setup(fanout, rtt=None)
    d.nacks.repeats = 3
    late = port.sent[5].sequence_number
    fanout.on_nack(d, [late])
    assert resent(port) == [] and set(d.nacks.pending) == {late}
    newer = port.sent[7].sequence_number
    fanout.on_nack(d, [newer])  # the next NACK no longer lists it: it arrived
    await wait_for(lambda: not d.nacks.pending, timeout=2)
    assert resent(port) == [newer]


async def test_a_browser_like_viewer_is_answered_at_once(fanout):
    """libwebrtc waits out reordering before it NACKs, and lists a packet once per round
    trip: its NACKs are answered at once, and leaving a packet out says nothing."""
    port, d = nack_setup(fanout, rtt=0.001, jitter=900)
    fanout.on_nack(d, [port.sent[5].sequence_number])
    fanout.on_nack(d, [port.sent[7].sequence_number])
    assert not d.nacks.full_lists and not d.nacks.pending
    assert resent(port) == [port.sent[5].sequence_number, port.sent[7].sequence_number]


def test_full_list_viewers_are_recognised_by_quick_repeats():
    aiortc_like, browser_like = ViewerNacks(), ViewerNacks()
    t = 0.0
    for i in range(6):  # each new gap: a NACK listing every packet still missing
        aiortc_like.listed([10, 20 + i], now=t)
        browser_like.listed([20 + i], now=t)  # each missing packet once...
        t += 0.01
    browser_like.listed([20], now=t + 0.1)  # ...and again a round trip later
    assert aiortc_like.full_lists and not browser_like.full_lists


async def test_nack_state_goes_with_the_viewer(fanout):
    port, d = nack_setup(fanout, rtt=0.001, jitter=900)
    d.nacks.repeats = 3
    fanout.on_nack(d, [port.sent[5].sequence_number])
    assert d.nacks.timer is not None
    fanout.remove(d)
    assert d.nacks.timer is None and not d.nacks.pending
    await asyncio.sleep(0.05)
    assert resent(port) == []


def test_viewer_nacks_forget_old_entries():
    v = ViewerNacks()
    for i in range(600):
        assert v.may_resend(i, now=i * 0.01, interval=0.05)
    assert len(v.resent) < 200


def test_extend_seq_unwraps_both_ways():
    assert extend_seq(0x1FFFF, 0) == 0x20000
    assert extend_seq(0x20001, 0xFFFF) == 0x1FFFF
    assert extend_seq(0x10005, 5) == 0x10005


# ------------------------------------------------------------------ upstream NACKs
def test_upstream_waits_a_reorder_window_before_nacking():
    n = NackRequester(min_window=0.02)
    n.add(1, now=0.0)
    n.add(3, now=0.001)  # 2 is missing... or late
    assert n.due(now=0.005) == []
    n.add(2, now=0.010)  # it was late
    assert n.due(now=0.1) == [] and not n.pending
    assert n.window >= 0.01  # and the window learned from it


def test_upstream_nacks_once_then_retries_until_it_comes_or_gives_up():
    n = NackRequester(min_window=0.01, min_retry=0.05, max_retries=3)
    n.add(10, now=0.0)
    n.add(12, now=0.0)
    assert n.due(now=0.02) == [11]
    assert n.due(now=0.03) == []  # not again before the retry interval
    assert n.due(now=0.08) == [11]
    assert n.due(now=0.14) == [11]  # the third and last time
    assert n.due(now=0.5) == [] and n.gave_up == 1 and not n.pending


def test_upstream_retransmission_clears_and_window_grows_with_reordering():
    n = NackRequester(min_window=0.005, max_window=0.1)
    n.add(100, now=0.0)
    t = 0.0
    for i in range(20):  # every other packet arrives 30 ms late
        t += 0.01
        n.add(102 + 2 * i, now=t)
        n.add(101 + 2 * i, now=t + 0.03)
    assert 0.03 <= n.window <= 0.1
    n.add(200, now=1.0)
    assert n.due(now=1.0 + n.window) != []
    for s in range(141, 200):
        n.add(s, retransmission=True, now=1.2)
    assert not n.pending


def test_upstream_forgets_packets_too_old_for_viewers():
    n = NackRequester()
    n.add(0, now=0.0)
    n.add(5000, now=0.0)  # a long outage: only the last LATE_LIMIT are worth asking for
    assert len(n.due(now=1.0)) == LATE_LIMIT - 1
