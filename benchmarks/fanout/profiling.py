"""py-spy on the server during a step's window, and the hot spots of its profile."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sys
from pathlib import Path

from common.children import ALL_CPUS, child_setup

__all__ = ["hot_spots", "start_profiler"]


async def start_profiler(pid: int, seconds: int, output: Path) -> asyncio.subprocess.Process:
    """py-spy on ``pid`` for the window, non-blocking (the server is never paused),
    writing collapsed stacks ("frame;frame;... count" lines) to ``output``."""
    py_spy = shutil.which("py-spy", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    if py_spy is None:
        raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
    output.parent.mkdir(parents=True, exist_ok=True)
    return await asyncio.create_subprocess_exec(
        py_spy, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "250",
        "--nonblocking", "--format", "raw", "--output", str(output),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        preexec_fn=child_setup(ALL_CPUS))


def hot_spots(path: Path, top: int = 12) -> str:
    """The functions with the most samples in a py-spy raw profile, self and inclusive,
    leaving out samples waiting in ``epoll``."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        count = int(n)
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]  # per function
        if frames[-1].startswith("EpollSelector.select"):
            continue  # waiting for packets; py-spy --nonblocking cannot always tell idle
        total += count
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
    if not total:
        return f"{path}: no samples"

    def listing(counts: dict[str, int]) -> list[str]:
        best = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
        return [f"    {100 * c / total:5.1f}%  {frame}" for frame, c in best]

    return "\n".join([f"{path} ({total} busy samples); self time:", *listing(own),
                      "  inclusive (own code and below):",
                      *listing({f: c for f, c in inclusive.items() if "/work/" in f
                                or "mediaserver" in f or "signalling" in f})])
