"""Media on a bad network: what viewers see through Stagepass, and peer to peer.

Run from the repository root::

    .venv/bin/python benchmarks/network.py [--seconds 6] [--viewers 2]
        [--codecs H264,VP8] [--cases none,uplink,downlink,both,bursts] [--no-baseline]
        [--json results.json]

For each codec and case, a synthetic aiortc publisher (numbered 320x240 frames with a
noise band, 30 fps, plus Opus) and decoding aiortc viewers run in this process, with
5% loss and up to 30 ms of jitter injected in user space (``tests/support/netshim.py``):

* ``none``: no impairment;
* ``uplink``: on the publisher's outgoing media (the server repairs it with NACK/RTX);
* ``downlink``: on each viewer's incoming media;
* ``both``: both;
* ``bursts``: both, losses in bursts of 4 packets on average (same 5% overall).

Each case runs twice: through a Stagepass server (WHIP/WHEP, in this process) and, as the
baseline, directly peer to peer (one publisher connection per viewer: aiortc to aiortc,
the same impairments in series on that one path). Per row, over the viewers:

* ``shown/sent``: of the frames the publisher made in the window, those the viewers
  decoded (median; on media time: late ones count, see ``Session.measure``) / all of them;
* ``freeze``: the longest time without a decoded frame (worst viewer);
* ``>200ms``, ``>1s``: freezes longer than that (all viewers);
* ``dup%``: packets a viewer received twice (its SRTP rejects them as replays);
* ``rtx%``: retransmitted packets received / media packets received;
* ``kf``: keyframes the publisher was asked for (PLI/FIR it received) in the window.

The machine is shared: compare the two modes of one run, not numbers across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # tests/ lives in the repository, not the package
    sys.path.insert(0, str(ROOT))

from aiohttp import web  # noqa: E402

from stagepass.app import create_app  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.access import StreamKeyAccess  # noqa: E402
from signalling.whip import ROOMS  # noqa: E402
from tests.support.impaired_session import CASES, Session  # noqa: E402

ROOM, KEY = "bench", "bench-network-key"

COLUMNS = [  # header, width, row -> text
    ("mode", 10, lambda r: r["mode"]),
    ("codec", 5, lambda r: r["codec"]),
    ("case", 9, lambda r: r["case"]),
    ("shown/sent", 11, lambda r: f"{r['shown']}/{r['sent']}"),
    ("freeze s", 9, lambda r: f"{r['longest_freeze']:.2f}"),
    (">200ms", 7, lambda r: str(r["freezes_200ms"])),
    (">1s", 4, lambda r: str(r["freezes_1s"])),
    ("dup%", 6, lambda r: f"{r['duplicate_pct']:.1f}"),
    ("rtx%", 6, lambda r: f"{r['retransmission_pct']:.1f}"),
    ("kf", 4, lambda r: str(r["keyframes_asked"])),
    ("order", 6, lambda r: "ok" if r["in_order"] else "BAD"),
]


async def start_server() -> tuple[web.AppRunner, str, web.Application]:
    settings = Settings.build(data_dir=Path(tempfile.mkdtemp(prefix="stagepass-net-")),
                        rooms={ROOM: KEY}, recordings=False, low_rendition=False,  # the forwarding path
                        workers=1)  # in this process
    settings.validate()
    app = create_app(settings, access=StreamKeyAccess(settings.stream_keys()))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}", app


async def run_case(mode: str, codec: str, case: str, args: argparse.Namespace) -> dict:
    uplink, downlink = CASES[case]
    runner = app = None
    base: Optional[str] = None
    if mode == "stagepass":
        runner, base, app = await start_server()
    session = Session(base, f"video/{codec}", viewers=args.viewers,
                      uplink=uplink, downlink=downlink, seed=args.seed)
    try:
        await session.start(ROOM, KEY)
        await session.wait_playing(frames=10, timeout=30)
        await asyncio.sleep(args.warmup)
        results = await session.measure(args.seconds)
        media = sum(r.media_packets for r in results)
        row = {
            "mode": mode, "codec": codec, "case": case,
            "sent": session.frames_sent,
            "shown": int(statistics.median(r.frames for r in results)),
            "longest_freeze": max(r.longest_freeze for r in results),
            "freezes_200ms": sum(r.freezes_200ms for r in results),
            "freezes_1s": sum(r.freezes_1s for r in results),
            "duplicate_pct": 100 * sum(r.duplicates for r in results) / media if media else 0.0,
            "retransmission_pct": 100 * sum(r.retransmissions for r in results) / media if media else 0.0,
            "keyframes_asked": session.pli_received,
            "in_order": all(r.numbers_in_order for r in results),
        }
        if app is not None:
            row["server"] = app[ROOMS].get(ROOM).stats()["fanouts"]
        return row
    finally:
        await session.close()
        if runner is not None:
            await runner.cleanup()


def table(rows: list[dict]) -> str:
    lines = ["".join(h.rjust(w + 1) for h, w, _ in COLUMNS)]
    lines += ["".join(f(r).rjust(w + 1) for _, w, f in COLUMNS) for r in rows]
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> list[dict]:
    rows: list[dict] = []
    modes = ["stagepass"] + ([] if args.no_baseline else ["p2p"])
    for codec in args.codecs:
        for case in args.cases:
            for mode in modes:
                t0 = time.monotonic()
                try:
                    row = await asyncio.wait_for(run_case(mode, codec, case, args),
                                                 timeout=args.seconds + args.warmup + 60)
                except (AssertionError, asyncio.TimeoutError, OSError) as exc:
                    print(f"  {mode} {codec} {case}: FAILED ({exc})", flush=True)
                    continue
                rows.append(row)
                print(f"  {mode:9} {codec:4} {case:8} shown {row['shown']}/{row['sent']} "
                      f"freeze {row['longest_freeze']:.2f} s  dup {row['duplicate_pct']:.1f}%  "
                      f"rtx {row['retransmission_pct']:.1f}%  ({time.monotonic() - t0:.0f} s)",
                      flush=True)
    return rows


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="measurement window per case")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds after the first frames")
    parser.add_argument("--viewers", type=int, default=2)
    parser.add_argument("--codecs", default="H264,VP8")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--seed", type=int, default=1, help="seed of the loss/jitter draws")
    parser.add_argument("--no-baseline", action="store_true", help="skip the peer-to-peer runs")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    args.codecs = [c.strip().upper() for c in args.codecs.split(",") if c.strip()]
    args.cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in args.cases if c not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {unknown}; choose from {list(CASES)}")
    logging.basicConfig(level=logging.ERROR)  # aiortc warns on every undecodable frame
    print(f"{len(args.codecs) * len(args.cases)} cases x "
          f"{'1 mode' if args.no_baseline else '2 modes'}, {args.viewers} viewers, "
          f"{args.seconds:.0f} s each; 5% loss, jitter up to 30 ms", flush=True)
    rows = asyncio.run(run(args))
    print()
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
        print(f"\nrows written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
