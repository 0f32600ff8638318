"""Where the server's CPU goes per forwarded packet, stage by stage, in one process.

Run from the repository root::

    .venv/bin/python benchmarks/packet_stages.py [--viewers 50] [--packets 2000]

The real ``Fanout`` forwards real-sized VP8 packets (1,150-byte payloads, a keyframe
every 60) to N viewers through real ``SenderPort``s, real libsrtp sessions and a real
socket to N loopback receivers (drained by a child process, as viewers would). Only
aiortc's peer objects are stand-ins (a sender with its counters, a DTLS transport holding
the SRTP session, the nominated ICE pair). Two send paths, in turns (medians of rounds):

* ``mux``: every viewer on the process's UDP mux: copies queued, one ``sendmmsg``
  per publisher packet (``udp_mux`` + ``batched_send``);
* ``ports``: a socket per viewer and one ``sendto`` per copy (``--udp-port off``);
* ``mux-python``: the mux path with a send strategy that takes every datagram without a
  system call: the Python (and libsrtp) part of a copy alone, what code changes move.

SRTP is ``--srtp gcm`` (AEAD_AES_256_GCM, what aiortc peers and browsers negotiate with
the server: aiortc offers it first) or ``cm`` (AES_CM_128_HMAC_SHA1_80, twice the cost).

It prints the CPU per forwarded packet (per viewer copy) of the whole path, then a
profile (cProfile, one more round): the own time of each function on the path (header
rewrite and bookkeeping in the fan-out loop, SRTP, the send call, the batch flush), over
1% of the total. Profiled numbers are inflated by the profiler; read them as shares.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import logging
import os
import pstats
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aiortc.rtcdtlstransport import State as DtlsState  # noqa: E402
from aiortc.rtp import RtpPacket  # noqa: E402
from pylibsrtp import Policy, Session  # noqa: E402

from core.tasks import TaskOwner  # noqa: E402
from mediaserver.sfu.aiortc_bridge import NegotiatedStream, SenderPort  # noqa: E402
from mediaserver.sfu.fanout import Downstream, Fanout  # noqa: E402
from mediaserver.sfu.udp_mux import UdpMux  # noqa: E402

PAYLOAD = 1150
DRAIN = """
import select, socket, sys
socks = []
for port in sys.argv[1:]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.bind(("127.0.0.1", int(port)))
    s.setblocking(False)
    socks.append(s)
print("ready", flush=True)
poll = select.epoll()
for s in socks:
    poll.register(s.fileno(), select.EPOLLIN)
by_fd = {s.fileno(): s for s in socks}
while True:
    for fd, _ in poll.poll():
        s = by_fd[fd]
        try:
            while True:
                s.recv(4096)
        except BlockingIOError:
            pass
"""


def free_ports(n: int) -> list[int]:
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class StandInSender:
    """What ``SenderPort`` reads and writes on aiortc's ``RTCRtpSender``."""

    def __init__(self, ssrc: int, dtls: Any) -> None:
        self._ssrc, self._rtx_ssrc = ssrc, ssrc + 1
        self.transport = dtls
        self._RTCRtpSender__ntp_timestamp = 0
        self._RTCRtpSender__rtp_timestamp = 0
        self._RTCRtpSender__packet_count = 0
        self._RTCRtpSender__octet_count = 0

    async def _handle_rtcp_packet(self, packet: Any) -> None:
        pass


PROFILES = {  # name: (libsrtp profile, master key + salt bytes)
    "gcm": (Policy.SRTP_PROFILE_AEAD_AES_256_GCM, 44),
    "cm": (Policy.SRTP_PROFILE_AES128_CM_SHA1_80, 30),
}


def srtp_session(profile: str = "gcm") -> Session:
    kind, key_size = PROFILES[profile]
    return Session(policy=Policy(key=os.urandom(key_size), ssrc_type=Policy.SSRC_ANY_OUTBOUND,
                                 srtp_profile=kind))


def take_all(sender: Any, start: int, count: int) -> int:
    """A batch send strategy that makes no system call: every datagram counts as taken."""
    return count


async def build(mode: str, ports: list[int], mux: UdpMux, profile: str = "gcm") -> tuple[Fanout, list]:
    log = logging.LoggerAdapter(logging.getLogger("bench"), {})
    fanout = Fanout("video", TaskOwner(log), log, keyframe_min_interval=1.0)
    loop = asyncio.get_running_loop()
    sockets = []
    stream = NegotiatedStream(mid="0", payload_types={"VP8": 96}, rtx_payload_types={96: 97},
                              clock_rates={"VP8": 90000},
                              header_extensions={"urn:ietf:params:rtp-hdrext:sdes:mid": 1,
                                                 "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time": 2})
    for i, port in enumerate(ports):
        addr = ("127.0.0.1", port)
        if mode.startswith("mux"):
            protocol = mux._protocol(SimpleNamespace(local_username=f"u{i:03d}"), 1, "127.0.0.1")
        else:
            transport, protocol = await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
            from aioice.ice import StunProtocol

            protocol = StunProtocol.__new__(StunProtocol)
            protocol.transport = transport
            sockets.append(transport)
        pair = SimpleNamespace(protocol=protocol, remote_addr=addr)
        dtls = SimpleNamespace(_state=DtlsState.CONNECTED, _tx_srtp=srtp_session(profile),
                               transport=SimpleNamespace(_connection=SimpleNamespace(_nominated={1: pair})))
        port_ = SenderPort(StandInSender(1000 + 2 * i, dtls), on_nack=lambda lost: None,
                           on_keyframe_request=lambda: None)
        fanout.add(Downstream(port_, stream, label=f"v{i}"))
    return fanout, sockets


def packets(count: int, first: int = 0) -> list[RtpPacket]:
    """``count`` packets of a 30 fps stream from packet number ``first`` on (5 a frame)."""
    out = []
    payload = b"\x80\x80\x00" + os.urandom(PAYLOAD - 3)  # VP8 descriptor: not a partition start
    keyframe = b"\x90\x80\x00\x10" + payload[4:]  # S=1, then a VP8 header with P=0
    for i in range(first, first + count):
        frame, part = divmod(i, 5)
        key = frame % 12 == 0 and part == 0
        out.append(RtpPacket(payload_type=96, marker=int(part == 4), sequence_number=i & 0xFFFF,
                             timestamp=frame * 3000, ssrc=1, payload=keyframe if key else payload))
    return out


async def one_round(fanout: Fanout, mux: UdpMux, count: int) -> float:
    """CPU seconds per forwarded copy: ``count`` new packets go through the fan-out and
    out (the mux's batch is flushed after each packet, as the event loop would)."""
    batch = packets(count, fanout.stats.packets_in)
    before = fanout.stats.packets_out
    flush = mux.sender.flush
    c0 = time.process_time()
    for packet in batch:
        fanout.on_packet(packet, "VP8", time.perf_counter())
        flush()
    cpu = time.process_time() - c0
    await asyncio.sleep(0.05)
    return cpu / max(1, fanout.stats.packets_out - before)


def stage_table(profile: cProfile.Profile, copies: int) -> list[tuple[str, float]]:
    stats = pstats.Stats(profile)
    rows: dict[str, float] = {}
    for (filename, _, name), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        label = name
        if "srtp_protect" in name or "sendmmsg" in name or ("sendto" in name and "method" in name):
            label = name
        elif filename.endswith(("fanout.py", "sender_port.py", "batched_send.py", "udp_mux.py",
                                "__init__.py", "selector_events.py", "packet_history.py", "rtp_payloads.py")):
            label = f"{Path(filename).name}:{name}"
        else:
            continue
        rows[label] = rows.get(label, 0.0) + tottime
    total = sum(rows.values())
    out = sorted(rows.items(), key=lambda kv: -kv[1])
    return [(k, v / copies * 1e6) for k, v in out if v / total > 0.01]


async def run(args: argparse.Namespace) -> None:
    ports = free_ports(args.viewers)
    drain = subprocess.Popen([sys.executable, "-c", DRAIN, *map(str, ports)], stdout=subprocess.PIPE)
    assert drain.stdout is not None and drain.stdout.readline().strip() == b"ready"
    mux = await UdpMux.open("127.0.0.1", 0)
    quiet = await UdpMux.open("127.0.0.1", 0, send=take_all)
    muxes = {"mux": mux, "ports": mux, "mux-python": quiet}
    try:
        built = {mode: await build(mode, ports, muxes[mode], args.srtp) for mode in muxes}
        results: dict[str, list[float]] = {mode: [] for mode in muxes}
        for mode in built:  # warm up: SRTP sessions, sockaddr cache, the keyframe gate
            await one_round(built[mode][0], muxes[mode], 200)
        for _ in range(args.rounds):
            for mode in muxes:
                results[mode].append(await one_round(built[mode][0], muxes[mode], args.packets))
        print(f"\n{args.viewers} viewers, {args.packets} packets x {args.rounds} rounds, "
              f"{PAYLOAD}-byte payloads, SRTP {args.srtp}; CPU per forwarded copy (median of rounds):\n")
        print("| send path | us per copy | syscalls per publisher packet |")
        print("|---|---|---|")
        for mode, values in results.items():
            calls = mux.sender.stats.syscalls / max(1, mux.sender.stats.datagrams) * args.viewers
            syscalls = {"mux": f"{calls:.2f}", "ports": str(args.viewers), "mux-python": "0"}[mode]
            print(f"| {mode} | {statistics.median(values) * 1e6:.2f} | {syscalls} |")
        for mode in ("mux", "ports"):
            fanout = built[mode][0]
            profile = cProfile.Profile()
            before = fanout.stats.packets_out
            profile.enable()
            await one_round(fanout, mux, args.packets)
            profile.disable()
            copies = fanout.stats.packets_out - before
            print(f"\nProfile, {mode} path: own time per forwarded copy (us, profiler-inflated)\n")
            print("| function | us |")
            print("|---|---|")
            for label, us in stage_table(profile, copies):
                print(f"| {label} | {us:.2f} |")
        for _, sockets in built.values():
            for s in sockets:
                s.close()
    finally:
        await mux.close()
        await quiet.close()
        drain.kill()
        drain.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", type=int, default=50)
    parser.add_argument("--packets", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--srtp", choices=sorted(PROFILES), default="gcm")
    asyncio.run(run(parser.parse_args()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
