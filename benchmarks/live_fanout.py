"""Live fan-out benchmark: what one viewer costs Stagepass, and what it costs a naive relay.

Run from the repository root::

    .venv/bin/python benchmarks/live_fanout.py [--viewers 1,10,25,50,100,200]
        [--seconds 15] [--baseline-viewers 1,2,4] [--json results.json]

Every step (one viewer count on one server) runs with fresh processes:

* the server: Stagepass (``python -m stagepass.cli serve``) or the *baseline*, a stock
  aiortc relay in this file (``--baseline-server PORT``: decode the publisher,
  ``MediaRelay``, one encoding sender per viewer), which is what a newcomer builds first;
* one publisher process: synthetic 640x480 at 30 fps H.264 with a noisy band so the
  encoder really spends its (pinned) 1.5 Mbit/s, plus Opus, published over WHIP;
* viewer processes over WHEP: one *sample* viewer that decodes (``tests/peers.Viewer``)
  and checks that the frame numbers it reads back keep increasing, plus light viewers
  (up to 25 per process) that never decode: their receivers' ``_handle_rtp_packet`` only
  counts packets, bytes and frames (marker bits). A step with N viewers has the sample
  viewer and N-1 light ones; N=0 is the publisher alone (the idle reading).

Server CPU is the server process's own CPU time (its kernel CPU clock, the same count as
utime + stime in ``/proc/<pid>/stat`` at nanosecond resolution), sampled once a second
over a window that starts after every viewer receives video and a warm-up; CPU % is the
median of those one-second slices. Stagepass viewers connect *before* the publisher
so the server's delay samples (a 20 000-packet window it never resets) all come from
the full fan-out. Linux only. See ``benchmarks/README.md`` for the columns.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
for _path in (str(ROOT), str(ROOT / "benchmarks")):  # tests/support/peers.py and janus_side_by_side
    if _path not in sys.path:
        sys.path.insert(0, _path)

import aiohttp  # noqa: E402

from common.children import ALL_CPUS  # noqa: E402
from common.measure import git_commit, machine_cpu  # noqa: E402
from fanout.baseline import baseline_app  # noqa: E402
from fanout.profiling import hot_spots  # noqa: E402
from fanout.publisher import publisher_worker  # noqa: E402
from fanout.report import print_metrics_cost, print_row, print_summary  # noqa: E402
from fanout.results import add_marginals, metrics_cost, summary  # noqa: E402
from fanout.step import Step  # noqa: E402
from fanout.workers import sample_worker, viewers_worker  # noqa: E402


def counts(text: str) -> list[int]:
    return sorted({int(x) for x in text.split(",") if x.strip()})


async def run(args: argparse.Namespace) -> dict:
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)  # like Ctrl-C
    viewers, base_viewers = counts(args.viewers), counts(args.baseline_viewers)
    rows: list[dict] = []
    base_rows: list[dict] = []
    logdir = Path(tempfile.mkdtemp(prefix="stagepass-bench-"))
    cores = len(os.sched_getaffinity(0))
    before = machine_cpu()
    await asyncio.sleep(3)
    after = machine_cpu()
    background = (after[0] - before[0]) / max(1, after[1] - before[1]) * 100
    print(f"Stagepass from {args.server_root} ({git_commit(args.server_root) or 'not git'})",
          flush=True)
    pinning = (f"Stagepass server on CPU {','.join(map(str, sorted(args.server_cpus)))}, "
               "publisher and viewers on the others" if args.server_cpus else "no CPU pinning")
    print(f"logs in {logdir}; {cores} cores, {pinning}; {background:.0f}% busy before the run"
          + (" (other load: expect noisy numbers)" if background > 10 else ""), flush=True)
    args.background_pct = round(background, 1)
    failed: list[dict] = []
    metrics_rows: list[dict] = []
    # --metrics both: each Stagepass step with metrics off, then on, back to back
    modes = {"off": [False], "on": [True], "both": [False, True]}[args.metrics]
    plan = [("stagepass", n, m) for n in [0] + [n for n in viewers if n] for m in modes]
    if base_viewers:
        plan += [("baseline", n, False) for n in [0] + [n for n in base_viewers if n]]
    async with aiohttp.ClientSession() as http:
        for server, n, with_metrics in plan:
            try:
                row = await Step(server, n, args, logdir, metrics=with_metrics).run(http)
            except (RuntimeError, OSError, asyncio.TimeoutError, aiohttp.ClientError) as exc:
                failed.append({"server": server, "viewers": n, "error": f"{exc}"})
                print(f"  {server:9} N={n:<4} FAILED: {exc} (logs: {logdir})", flush=True)
                continue
            if server == "baseline":
                base_rows.append(row)
            elif with_metrics and args.metrics == "both":
                metrics_rows.append(row)
            else:
                rows.append(row)
            print_row(row)
            if args.profile and server == "stagepass":
                print(hot_spots(args.profile / f"stagepass-{n}.txt"), flush=True)
    add_marginals(rows)
    add_marginals(base_rows)
    add_marginals(metrics_rows)
    ref_n = 100 if 100 in viewers else max(viewers, default=0)
    if not rows:
        raise SystemExit("no Stagepass step succeeded")
    s = summary(rows, base_rows, ref_n, args.fps)
    s["failed_steps"] = failed
    print_summary(rows, base_rows, s)
    if metrics_rows:
        s["metrics_cost"] = metrics_cost(rows, metrics_rows)
        print_metrics_cost(s["metrics_cost"])
    for f in failed:
        print(f"FAILED step: {f['server']} N={f['viewers']}: {f['error']}")
    config = {k: str(v) if isinstance(v, Path) else sorted(v) if isinstance(v, frozenset)
              else v for k, v in vars(args).items()}
    config["server_commit"] = git_commit(args.server_root)
    return {"config": config, "stagepass": rows, "stagepass_metrics_on": metrics_rows, "baseline": base_rows,
            "summary": s}


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", default="1,10,25,50,100,200",
                        help="viewer counts to measure Stagepass with (0 is always measured)")
    parser.add_argument("--baseline-viewers", default="1,2,4",
                        help="viewer counts for the stock-aiortc baseline ('' to skip)")
    parser.add_argument("--seconds", type=int, default=15, help="measurement window per step")
    parser.add_argument("--warmup", type=float, default=4.0,
                        help="seconds between every viewer receiving and the window")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--kbps", type=int, default=1500, help="publisher H.264 bitrate")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--metrics", choices=["off", "on", "both"], default="off",
                        help="Stagepass with /metrics off (default), on (token set and scraped "
                        "every second), or both, back to back per viewer count, compared")
    parser.add_argument("--server-cpus", default="0" if len(ALL_CPUS) > 1 else "",
                        help="CPUs the Stagepass server is pinned to, the load generator "
                        "getting the others (default 0; '' to pin nothing)")
    parser.add_argument("--server-root", type=Path, default=ROOT, metavar="DIR",
                        help="run the Stagepass server from this checkout (default: this "
                        "repository), e.g. a 'git archive' snapshot of a commit")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="py-spy the server during each window into DIR and print its "
                        "hot spots (numbers of a profiled run are not for comparison)")
    parser.add_argument("--janus", action="store_true",
                        help="instead: the side-by-side run against Janus 1.1.2's streaming plugin "
                        "(benchmarks/janus_side_by_side.py; its options follow --janus-args)")
    parser.add_argument("--janus-args", default="", help="options for the Janus run, e.g. "
                        "'--viewers 25,50 --rounds 2'")
    # internal modes: this script's own subprocesses
    parser.add_argument("--baseline-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--worker", choices=["publisher", "viewers", "sample"],
                        help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.janus:
        import janus_side_by_side

        return janus_side_by_side.main(args.janus_args.split())
    if args.baseline_server:
        from aiohttp import web

        web.run_app(baseline_app(), host="127.0.0.1", port=args.baseline_server, print=None)
        return 0
    if args.worker:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent cleans up on Ctrl-C
        worker = {
            "publisher": lambda: publisher_worker(args.url, args.width, args.height,
                                                  args.fps, args.kbps),
            "viewers": lambda: viewers_worker(args.url),
            "sample": lambda: sample_worker(args.url),
        }[args.worker]
        asyncio.run(worker())
        return 0
    args.server_cpus = frozenset(int(c) for c in args.server_cpus.split(",") if c.strip())
    if not args.server_cpus <= ALL_CPUS:
        parser.error(f"--server-cpus: this process may use CPUs {sorted(ALL_CPUS)}")
    if args.width % 16:
        parser.error("--width must be a multiple of 16 (the frame's barcode has 16 bits)")
    try:
        results = asyncio.run(run(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("\ninterrupted; every process this run started was stopped", file=sys.stderr)
        return 130
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
        print(f"\nresults written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
