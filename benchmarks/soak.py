"""Soak: one live room for a long time, viewers coming and going, recording on.

Run from the repository root (not in CI)::

    .venv/bin/python benchmarks/soak.py [--minutes 30] [--churn 3]

One Stagepass server (``benchmarks/memory.py``'s server worker), one WHIP publisher
(pre-encoded H.264 + Opus), recording on, a WHEP viewer joining every ``--churn`` seconds
and leaving ``--churn`` seconds later. Prints the RSS / fds / tasks / peer-connection
curve every ``--sample`` seconds, the slope after the warm-up, and whether memory, open
fds, tasks and peer connections came back to their baseline once the room stopped.
Everything is ``memory.py``'s ``Run``; this script only picks the soak's settings.

Not covered yet: chat traffic (Socket.IO needs the paywall app and signed-up users; the
media-only server used here has no Socket.IO).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

from memory import HEADER, Run  # noqa: E402


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--churn", type=float, default=3.0, help="a viewer joins/leaves every S s")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--sample", type=float, default=30.0)
    p.add_argument("--settle", type=float, default=15.0)
    args = p.parse_args(argv)
    args.recordings, args.cycles, args.cycle_minutes = "on", 0, 0.0
    logdir = Path(tempfile.mkdtemp(prefix="soak-"))
    result = asyncio.run(Run("stagepass", 1, args, logdir).run())
    before, after = result["before"], result["stopped"][0]
    print()
    print(HEADER)
    print(Run.summary(result))
    back = {k: after[k] - before[k] for k in ("rss_mb", "fds", "tasks", "pcs")}
    print("after the room stopped, minus before it started:",
          ", ".join(f"{k} {v:+.1f}" if k == "rss_mb" else f"{k} {v:+d}" for k, v in back.items()))
    ok = back["fds"] <= 0 and back["tasks"] <= 0 and back["pcs"] <= 0 and back["rss_mb"] < 5
    print("returned to baseline" if ok else "NOT back to baseline")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
