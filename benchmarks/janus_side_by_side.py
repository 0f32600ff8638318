"""Stagepass beside Janus: server CPU per forwarded packet, same stream, interleaved.

Run from the repository root (``benchmarks/live_fanout.py --janus`` runs this)::

    .venv/bin/python benchmarks/janus_side_by_side.py [--viewers 25,50] [--rounds 2]
        [--seconds 12] [--json out.json]

Each *step* is one server with N light viewers, fresh processes, measured like
``live_fanout.py`` (the server's own CPU clock, one-second slices, median):

* **servers**: Stagepass (``stagepass serve``, all peers on one UDP port: the default),
  Stagepass with a UDP port per peer connection (``--udp-port off``, the previous way),
  Janus 1.1.2's streaming plugin (Debian's ``janus``; ``apt-get install janus``) with its
  default threading (a loop per handle), and Janus with ``event_loops = 2`` (handles
  share two loops: its best configuration on 2 cores). Janus gets a generated
  configuration: HTTP transport and the streaming plugin only, one RTP mountpoint;
* **the stream**: the same VP8 clip (640x480, 30 fps, ~1.5 Mbit/s, a keyframe every 2 s,
  encoded once with libvpx) replayed in real time by a feeder process: over WHIP to
  Stagepass (an aiortc peer packetizing the clip with aiortc's VP8 ``pack()``), as plain
  RTP packetized by the same code to Janus's mountpoint;
* **viewers**: aiortc peers that only decrypt and count RTP packets (never depayload or
  decode), up to 25 per process; over WHEP for Stagepass, the Janus HTTP API (create,
  attach, ``watch``, answer, ``start``) for Janus;
* **interleaved**: for each round, for each N in ``0`` and ``--viewers``, every server
  in turn; the figures are medians over rounds;
* **a baseline Stagepass** (``--base-root DIR``, e.g. a snapshot of main made with
  ``git archive main | tar -x -C DIR``): the server ``stagepass-base`` runs from that
  checkout, interleaved with the others, and a last column divides ``stagepass`` by it.

*us/packet* is the server CPU per forwarded packet net of ingest: (CPU at N - CPU at 0)
/ packets per second the viewers received. *ratio* divides Stagepass's by Janus's with
shared loops (<= 1.0: Stagepass costs less per packet). Linux only. The parts are in
``benchmarks/side_by_side/``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
for path in (str(ROOT), str(ROOT / "benchmarks")):
    if path not in sys.path:
        sys.path.insert(0, path)

import aiohttp  # noqa: E402

from common.children import ALL_CPUS  # noqa: E402
from side_by_side.clip import save_clip, stream_rate, vp8_clip  # noqa: E402
from side_by_side.feeder import feeder_worker  # noqa: E402
from side_by_side.report import report  # noqa: E402
from side_by_side.step import Step  # noqa: E402
from side_by_side.viewers import viewers_worker  # noqa: E402

SERVERS = ("stagepass", "stagepass-ports", "janus", "janus-el2")


async def run(args: argparse.Namespace) -> dict:
    ns = [0] + [int(n) for n in args.viewers.split(",") if n.strip() and int(n)]
    servers = [s for s in args.servers.split(",") if s]
    if any(s.startswith("janus") for s in servers) and shutil.which("janus") is None:
        raise SystemExit("janus not found: apt-get install janus (Debian's Janus 1.1.2), or --servers stagepass")
    if args.base_root is not None and "stagepass-base" not in servers:
        servers.insert(servers.index("stagepass") + 1 if "stagepass" in servers else 0, "stagepass-base")
    logdir = Path(tempfile.mkdtemp(prefix="stagepass-janus-"))
    print(f"logs in {logdir}; servers {', '.join(servers)}; N {ns}; {args.rounds} round(s)", flush=True)
    clip = vp8_clip()
    save_clip(clip, logdir / "clip.vp8")  # encoded once; feeders read it
    rate = stream_rate(clip)
    rows: list[dict] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        for r in range(args.rounds):
            for n in ns:
                for server in servers:
                    try:
                        row = await asyncio.wait_for(Step(server, n, args, logdir).run(http),
                                                     args.seconds + args.warmup + 150)
                    except (RuntimeError, OSError, asyncio.TimeoutError, aiohttp.ClientError) as exc:
                        print(f"  round {r + 1} {server:15} N={n:<3} FAILED: {exc}", flush=True)
                        continue
                    rows.append(row)
                    print(f"  round {r + 1} {server:15} N={n:<3} CPU {row['cpu_pct']:5.1f}%  "
                          f"{row['packets_out_per_s']:7.0f} pkt/s out  slowest viewer "
                          f"{row['viewer_pps_min'] or 0:.0f} pkt/s  machine {row['box_pct']:.0f}%", flush=True)
    return {"rows": rows, **report(rows, ns, servers, rate)}


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", default="25,50")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=12)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--servers", default=",".join(SERVERS), help="of " + ", ".join(SERVERS))
    parser.add_argument("--server-cpus", default="0" if len(ALL_CPUS) > 1 else "",
                        help="CPUs the server is pinned to, the feeder and viewers get the others")
    parser.add_argument("--base-root", type=Path, metavar="DIR",
                        help="also run Stagepass from this checkout (server stagepass-base)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="py-spy the Stagepass servers into DIR and print their hot spots "
                        "(numbers of a profiled run are not for comparison)")
    parser.add_argument("--worker", choices=["feeder", "viewers"], help=argparse.SUPPRESS)
    parser.add_argument("--kind", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--clip", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker == "feeder":
        asyncio.run(feeder_worker(args.url, args.clip))
        return 0
    if args.worker == "viewers":
        asyncio.run(viewers_worker(args.kind, args.url))
        return 0
    args.server_cpus = frozenset(int(c) for c in args.server_cpus.split(",") if c.strip())
    results = asyncio.run(run(args))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
