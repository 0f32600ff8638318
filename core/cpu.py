"""CPU-heavy steps off the event loop that forwards media.

The one event loop carries every room's packets, Socket.IO and HTTP, so nothing that takes
more than a few milliseconds of CPU runs on it (see DESIGN.md): password hashing, media
packaging, large exports. They run in ``background_executor`` threads, which run at a
lower CPU priority (nice +10 on Linux, inherited by the threads a C library starts from
them), so even a flood of such work yields the CPU to live media. C work (argon2, PyAV)
releases the GIL; pure-Python work (an XML export) shares it in 5 ms slices instead of
holding the loop for its whole duration.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os
import sys
import threading
from typing import Any, Callable, TypeVar

__all__ = ["background_executor", "lower_thread_priority", "off_loop"]

T = TypeVar("T")


def lower_thread_priority(niceness: int = 10) -> None:
    """Nice the calling thread only (Linux keeps a nice value per thread); elsewhere a no-op."""
    if not sys.platform.startswith("linux"):
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
    except (AttributeError, OSError):
        pass


def background_executor(name: str, workers: int = 1, niceness: int = 10) -> concurrent.futures.ThreadPoolExecutor:
    """A bounded pool of low-priority threads (``niceness`` 1-19); its owner shuts it down."""
    return concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name,
                                                 initializer=lower_thread_priority, initargs=(niceness,))


_shared: concurrent.futures.ThreadPoolExecutor | None = None


async def off_loop(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn(*args, **kwargs)`` in the process's shared low-priority pool (two threads,
    for exports and other one-off CPU steps of a request)."""
    global _shared
    if _shared is None:
        _shared = background_executor("cpu", workers=2)
    return await asyncio.get_running_loop().run_in_executor(_shared, functools.partial(fn, *args, **kwargs))
