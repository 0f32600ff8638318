"""CPU and network readings of processes and of the machine (Linux ``/proc``)."""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import time
from pathlib import Path
from typing import Optional

__all__ = ["CLK_TCK", "git_commit", "machine_cpu", "median", "process_cpu_seconds", "server_cpu_seconds",
           "udp_drops", "user_system_ticks"]

CLK_TCK = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by process ``pid``, all its threads, user + system.

    Reads the kernel's per-process CPU clock (nanoseconds; what ``clock_getcpuclockid``
    returns), falling back to utime + stime from ``/proc/<pid>/stat`` (10 ms ticks).
    """
    try:
        return time.clock_gettime((~pid << 3) | 2)  # MAKE_PROCESS_CPUCLOCK(pid, SCHED)
    except OSError:
        return sum(user_system_ticks(pid)) / CLK_TCK


def server_cpu_seconds(pid: int) -> float:
    """``pid``'s CPU seconds and its child processes' (a control plane and its media workers)."""
    total = process_cpu_seconds(pid)
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            total += process_cpu_seconds(int(child))
        except (OSError, ValueError):  # a child that just ended
            pass
    return total


def user_system_ticks(pid: int) -> tuple[int, int]:
    """utime and stime of ``pid`` in clock ticks (to split user and kernel time)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from ``/proc/stat``."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def udp_drops(pids: list[int]) -> int:
    """Datagrams the kernel dropped because a receive buffer was full, summed over the
    UDP sockets of ``pids`` (the ``drops`` column of ``/proc/net/udp{,6}``)."""
    inodes: set[str] = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if link.startswith("socket:["):
                        inodes.add(link[8:-1])
    drops = 0
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with contextlib.suppress(OSError), open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[9] in inodes:
                    drops += int(fields[-1])
    return drops


def median(values: list[float]) -> Optional[float]:
    return statistics.median(values) if values else None


def git_commit(root: Path) -> Optional[str]:
    """The commit ``root`` is checked out at, if it is a git checkout (``+dirty`` if the
    server packages differ from it)."""
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--",
                                "mediaserver", "signalling", "paywall", "web"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None
