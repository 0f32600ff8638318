"""``usable_memory``: the memory this process may use, for defaults sized by it.

The machine's physical memory, narrowed by a cgroup memory limit (``docker --memory``, a
Kubernetes memory limit), as ``usable_cpus`` narrows the CPUs by the cgroup's CPU quota: a
container limited to 2 GB of a 256 GB host counts 2 GB. ``workers_memory_holds`` is the rule
the default worker counts share: each kind of worker process (media, interaction) may take a
quarter of it, at its measured size per process.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["MEMORY_SHARE", "usable_memory", "workers_memory_holds"]

#: the share of the usable memory the default count of one kind of worker may take (the other
#: kind, the control plane and the OS need the rest)
MEMORY_SHARE = 0.25

#: cgroup v2, then v1 (v1 says "no limit" with a number near 2**63)
_LIMIT_FILES = (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))


def _cgroup_limit() -> int | None:
    for path in _LIMIT_FILES:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            return int(text)
    return None  # "max", or no cgroup memory controller here


def usable_memory() -> int:
    """Bytes: physical memory, or the cgroup's limit when that is lower."""
    physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    limit = _cgroup_limit()
    return min(physical, limit) if limit is not None else physical


def workers_memory_holds(worker_memory: int) -> int:
    """How many workers of ``worker_memory`` bytes each ``MEMORY_SHARE`` of the usable memory
    holds (rounded down; 0 when not even one)."""
    return int(usable_memory() * MEMORY_SHARE) // worker_memory
