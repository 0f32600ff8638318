"""The garbage collector of a long-running server process: frozen start-up heap, pause
accounting.

A full collection walks every tracked object; a server's start-up heap (modules,
SQLAlchemy metadata, aiortc, the app) is most of them and never becomes garbage.
``freeze_startup_heap`` moves it to the permanent generation once the app has started, so
the collections that fan-out garbage triggers stay short. ``GcPauses`` measures how long
the collector stops the event loop (``gc.callbacks``), per generation, for the metrics
and the benchmarks.
"""

from __future__ import annotations

import gc
import time

__all__ = ["GcPauses", "freeze_startup_heap", "gc_pauses"]


def freeze_startup_heap() -> int:
    """Collect once, then freeze everything alive; returns the objects frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


class GcPauses:
    """Seconds spent in the collector since ``install``, by generation."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.collections = [0, 0, 0]
        self._started = 0.0
        self._installed = False

    def install(self) -> None:
        if not self._installed:
            gc.callbacks.append(self._callback)
            self._installed = True

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            generation = info.get("generation", 2)
            self.seconds[generation] += time.perf_counter() - self._started
            self.collections[generation] += 1

    @property
    def total(self) -> float:
        return sum(self.seconds)


#: the process's one pause counter (the collector is per process)
gc_pauses = GcPauses()
