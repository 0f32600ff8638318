"""Keyframe detection over the packet layouts real encoders send, through the fanout (a
viewer starts at the keyframe's first packet) and the recorder's frame assembler.

The H.264 layouts were captured from GStreamer 1.22 (``x264enc`` defaults, so an access
unit delimiter opens every access unit, ``rtph264pay mtu=1400``) on the way into
Stagepass; NAL headers and sizes are as captured, slice bodies are cut short.
"""

from __future__ import annotations

import struct

import pytest

from mediaserver.sfu.fanout import Downstream
from mediaserver.recording.frame_assembler import FrameAssembler
from mediaserver.sfu.rtp_payloads import is_keyframe_start
from tests.support.fanout_ports import FakePort, fanout, packet, stream  # noqa: F401 (fanout: fixture)

pytestmark = pytest.mark.unit

AUD_KEY = bytes.fromhex("0910")  # AUD, primary_pic_type 0 (I slices)
AUD = bytes.fromhex("0930")  # AUD of a P frame
SPS = bytes.fromhex("6742c015d90141fb016a0c0c0d4a000003000200000300791e2c5c90")
PPS = bytes.fromhex("68cb8cb2")
SEI = bytes.fromhex("0605ffffb5dc45e9bde6d948b7962cd820d923eeef78323634202d20636f80")  # x264's banner, cut
IDR = bytes.fromhex("65888406bfffff0f450001579f272727272727fe")  # single-NAL IDR slice
P_SLICE = bytes.fromhex("419a380d784cdfc3fe1f08450001414f1308cd04")
FU_IDR_START = bytes.fromhex("7c858884047c98a0002fbf272727272727fe1ff8") + bytes(1368)
FU_IDR_MIDDLE = bytes.fromhex("7c052ee569cc53f7007103ce28a0b76b1235b7ff") + bytes(1368)
FU_IDR_END = bytes.fromhex("7c45601003d60395a2e4945b30ff6f0162c88071")
FU_P_START = bytes.fromhex("5c819b201af099bf87fc3e082280008ca7d710f0") + bytes(1368)
FU_P_END = bytes.fromhex("5c41d30290e4e6fc2552834ccb40173a45dbfe12")


def stap_a(*nals: bytes) -> bytes:
    return b"\x78" + b"".join(struct.pack("!H", len(n)) + n for n in nals)


# Access units as packet lists (the marker is set on the last packet of each).
LAYOUTS = {
    # rtph264pay aggregate-mode=zero-latency: AUD, SPS, PPS (and the SEI) in one STAP-A
    "aud-sps-pps-in-stap-a": [stap_a(AUD_KEY, SPS, PPS, SEI), FU_IDR_START, FU_IDR_MIDDLE, FU_IDR_END],
    # rtph264pay defaults: each NAL unit its own packet, the AUD alone first
    "aud-alone-then-sps-pps-sei-fu-a": [AUD_KEY, SPS, PPS, SEI, FU_IDR_START, FU_IDR_MIDDLE, FU_IDR_END],
    # parameter sets out of band (sprop-parameter-sets): an AUD alone, then the IDR in FU-A
    "aud-alone-then-fu-a": [AUD_KEY, FU_IDR_START, FU_IDR_END],
    # an encoder that opens the access unit with an SEI (recovery point, timecode...)
    "sei-first": [SEI, SPS, PPS, IDR],
    # the whole keyframe in one STAP-A, IDR last
    "idr-in-stap-a": [stap_a(AUD_KEY, SPS, PPS, IDR)],
}
DELTA_FRAMES = [[stap_a(AUD, P_SLICE)], [AUD, FU_P_START, FU_P_END]]


@pytest.mark.parametrize(
    "codec,payload,expected",
    [
        ("VP8", bytes([0x10, 0x00]), True),
        ("VP8", bytes([0x10, 0x01]), False),  # interframe
        ("VP8", bytes([0x00, 0x00]), False),  # not the start of a partition
        ("VP8", bytes([0x11, 0x00]), False),  # partition 1
        ("VP8", bytes([0x90, 0x80, 0x81, 0x23, 0x00]), True),  # X + 15-bit picture id
        ("VP8", bytes([0x90, 0x80, 0x05, 0x01]), False),
        ("VP8", bytes([0x90, 0xE0, 0x05, 0x07, 0x20, 0x00]), True),  # I, L, T
        ("VP8", b"\x10", False),  # truncated
        ("H264", IDR, True),
        ("H264", FU_IDR_START, True),
        ("H264", FU_IDR_MIDDLE, False),  # FU-A continuation
        ("H264", FU_IDR_END, False),
        ("H264", stap_a(AUD_KEY, SPS, PPS, IDR), True),  # the IDR is the 4th unit
        ("H264", stap_a(AUD_KEY, SPS, PPS, SEI), False),  # no picture in it
        ("H264", stap_a(AUD, P_SLICE), False),
        ("H264", stap_a(AUD_KEY, SPS)[:-10] + b"\x00\x10\x65", False),  # sizes run past the end
        ("H264", b"\x78\x00\x00\x65", False),  # a zero-size unit
        ("H264", AUD_KEY, False),
        ("H264", SPS, False),  # parameter sets alone do not make a frame decodable
        ("H264", SEI, False),
        ("H264", P_SLICE, False),
        ("H264", FU_P_START, False),
        ("H264", b"", False),
        ("OPUS", b"\x00", True),
    ],
)
def test_keyframe_start(codec, payload, expected):
    assert is_keyframe_start(codec, payload) is expected


def h264_stream():
    s = stream(pt=102, rtx=103)
    s.payload_types = {"H264": 102}
    s.clock_rates = {"H264": 90000}
    return s


def packets(frames: list[list[bytes]], seq: int = 65530, ts: int = 90000) -> list:
    """RTP packets for ``frames`` (lists of payloads), wrapping the sequence number."""
    out = []
    for frame in frames:
        for i, payload in enumerate(frame):
            out.append(packet(seq, ts, payload, marker=int(i == len(frame) - 1)))
            seq += 1
        ts += 3000
    return out


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
async def test_a_viewer_starts_at_the_first_packet_of_the_keyframe(fanout, layout):
    key = LAYOUTS[layout]
    port = FakePort()
    fanout.add(Downstream(port, h264_stream(), "v1"))
    # delta frames first (the viewer must wait), then the keyframe, then more deltas
    for p in packets(DELTA_FRAMES + [key] + DELTA_FRAMES):
        fanout.on_packet(p, "H264", 0.0)
    sent = [p.payload for p in port.sent]
    assert sent == key + [q for f in DELTA_FRAMES for q in f], layout
    seqs = [p.sequence_number for p in port.sent]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:]))
    assert len({p.timestamp for p in port.sent}) == 1 + len(DELTA_FRAMES)
    assert port.sent[len(key) - 1].marker == 1


async def test_a_viewer_that_becomes_ready_within_the_keyframe_still_gets_all_of_it(fanout):
    """The transport comes up between the AUD and the IDR: the packets it missed are
    sent from the history before the IDR."""
    port = FakePort()
    port.is_ready = False
    fanout.add(Downstream(port, h264_stream(), "v1"))
    key = LAYOUTS["aud-alone-then-sps-pps-sei-fu-a"]
    pkts = packets([key])
    for p in pkts[:3]:
        fanout.on_packet(p, "H264", 0.0)
    port.is_ready = True
    for p in pkts[3:]:
        fanout.on_packet(p, "H264", 0.0)
    assert [p.payload for p in port.sent] == key


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
async def test_the_recording_starts_at_the_first_packet_of_the_keyframe(fanout, layout):
    """The recorder's assembler, as a fanout sink, as in a room."""
    key = LAYOUTS[layout]
    frames: list[tuple[bool, list[bytes]]] = []
    asm = FrameAssembler("video", lambda g, ext, k, payloads: frames.append((k, payloads)))
    fanout.add_sink(asm.push)
    for p in packets(DELTA_FRAMES + [key] + DELTA_FRAMES):
        fanout.on_packet(p, "H264", 0.0)
    assert frames[0] == (True, key), layout
    assert [f[1] for f in frames[1:]] == DELTA_FRAMES
    assert not any(k for k, _ in frames[1:])


async def test_a_viewer_that_cannot_take_the_keyframe_waits_for_the_next_without_a_gap(fanout):
    """Its socket backs up while a keyframe's first packets go out from the history: it
    waits for the next keyframe, and its sequence numbers stay contiguous (no gap it would
    NACK into packets it never started on)."""
    port = FakePort()
    d = Downstream(port, h264_stream(), "v1")
    fanout.add(d)
    key = LAYOUTS["aud-alone-then-sps-pps-sei-fu-a"]
    stream_ = packets([key] + DELTA_FRAMES + [key, key])
    n = len(key) + sum(len(f) for f in DELTA_FRAMES)
    for p in stream_[:n]:
        fanout.on_packet(p, "H264", 0.0)
    port.blocked = True  # backs up within a delta frame: waits for the next keyframe
    for p in stream_[n:n + 2]:
        fanout.on_packet(p, "H264", 0.0)
    assert d.waiting
    port.blocked = False
    fanout.on_packet(stream_[n + 2], "H264", 0.0)  # PPS of the keyframe: still waiting
    port.blocked = True  # and backed up again when the IDR shows the frame is a keyframe
    for p in stream_[n + 3:n + len(key)]:
        fanout.on_packet(p, "H264", 0.0)
    port.blocked = False
    for p in stream_[n + len(key):]:
        fanout.on_packet(p, "H264", 0.0)
    assert [p.payload for p in port.sent] == key + [q for f in DELTA_FRAMES for q in f] + key
    seqs = [p.sequence_number for p in port.sent]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:]))
