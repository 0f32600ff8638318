"""What the publisher's receive path costs per packet: this tree's ``ReceiverTap`` against
the one of a git ref (``main`` by default), in the same process and run.

Run from the repository root::

    .venv/bin/python benchmarks/receive_path.py [--packets 5000] [--rounds 101] [--ref main]

A real aiortc ``RTCRtpReceiver`` (of a peer connection that never connects) gets a VP8
codec and real-sized packets (1,150-byte payloads) through ``receiver._handle_rtp_packet``,
as aiortc's DTLS transport hands them over; the tap forwards each to a handler that drops
it. Three taps, in turns (the order rotates every round), each over ``--packets`` packets:

* ``ref``: the tap of ``--ref``, loaded from ``git show``;
* ``tree``: this tree's tap without a first-packet handler;
* ``tree+first``: this tree's tap with one (how a ``Publisher`` builds it), measured after
  its first packet: its first-packet check must have swapped itself out by then.

It prints the median CPU nanoseconds (of the thread: other processes' load moves it less
than wall time) per packet of each and their ratio to ``ref``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aiortc import RTCPeerConnection  # noqa: E402
from aiortc.rtcrtpparameters import RTCRtpCodecParameters  # noqa: E402
from aiortc.rtp import RtpPacket  # noqa: E402

from mediaserver.sfu import receiver_tap  # noqa: E402

PAYLOAD = 1150
PAYLOAD_TYPE = 96


def tap_module_of(ref: str) -> ModuleType:
    """``mediaserver/sfu/receiver_tap.py`` as it is at git ``ref``, as a module of its own."""
    source = subprocess.run(["git", "show", f"{ref}:mediaserver/sfu/receiver_tap.py"], cwd=ROOT,
                            check=True, capture_output=True, text=True).stdout
    spec = importlib.util.spec_from_loader(f"receiver_tap_at_{ref}", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    exec(compile(source, f"{ref}:receiver_tap.py", "exec"), module.__dict__)
    return module


def packets(n: int) -> list[RtpPacket]:
    return [RtpPacket(payload_type=PAYLOAD_TYPE, sequence_number=i & 0xFFFF, timestamp=(i // 8) * 3000,
                      ssrc=1234, marker=int(i % 8 == 7), payload=bytes(PAYLOAD)) for i in range(n)]


def drop(packet: RtpPacket, codec: str, arrival: float) -> None:
    pass


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=101)
    parser.add_argument("--ref", default="main")
    args = parser.parse_args()

    reference = tap_module_of(args.ref)
    pc = RTCPeerConnection()
    receivers = {}
    firsts: list[float] = []
    for name in ("ref", "tree", "tree+first"):
        receiver = pc.addTransceiver("video", direction="recvonly").receiver
        receiver._RTCRtpReceiver__codecs = {  # what ``receive()`` sets once negotiated
            PAYLOAD_TYPE: RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=PAYLOAD_TYPE)}
        if name == "ref":
            reference.ReceiverTap(receiver, drop)
        elif name == "tree":
            receiver_tap.ReceiverTap(receiver, drop)
        else:
            receiver_tap.ReceiverTap(receiver, drop, firsts.append)
        receivers[name] = receiver
    batch = packets(args.packets)
    for receiver in receivers.values():  # warm up; the first packet reaches ``tree+first``'s handler
        for packet in batch[:1000]:
            await receiver._handle_rtp_packet(packet, 0)
    assert len(firsts) == 1, firsts

    per_packet: dict[str, list[float]] = {name: [] for name in receivers}
    names = list(receivers)
    for r in range(args.rounds):
        for name in names[r % 3:] + names[:r % 3]:
            receiver = receivers[name]
            start = time.thread_time_ns()
            for packet in batch:  # looked up per packet, as aiortc's DTLS transport does
                await receiver._handle_rtp_packet(packet, 0)
            per_packet[name].append((time.thread_time_ns() - start) / len(batch))
    await pc.close()
    assert len(firsts) == 1, "the first-packet handler was called again"

    base = statistics.median(per_packet["ref"])
    print(f"{'tap':<12} {'CPU ns/packet (median)':>18} {'min':>8} {'max':>8} {'vs ' + args.ref:>8}")
    for name, values in per_packet.items():
        median = statistics.median(values)
        print(f"{name:<12} {median:>22.0f} {min(values):>8.0f} {max(values):>8.0f} {median / base:>8.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
