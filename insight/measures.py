"""The numbers of creator analytics, as pure functions of event tuples (no database).

* Retention: the share of a session's joiners watching at each minute. Live: a viewer
  watches from each ``live_join`` to the next ``live_leave`` (or the session's end).
  Replay: a viewer watches minute ``m`` when a heartbeat (every ~10 s) lands in it.
* Drop-offs: the minutes where the retention curve falls the most (at least ``min_drop``).
* Funnel: distinct people (the account, else the visitor id) at each step, with the rate
  from the step before and from the first step.
* Bursts: 30-second windows whose danmaku count stands out (mean + 2 standard deviations
  of the session's windows, and at least 3): the session's peak moments.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

import numpy as np

__all__ = ["FUNNEL_STEPS", "Burst", "bursts", "drop_offs", "funnel", "live_intervals", "live_retention",
           "replay_retention", "watched_ms"]

MINUTE_MS = 60_000
FUNNEL_STEPS = ("visited", "previewed", "checkout", "purchased", "watched_5_min")


def live_intervals(events: Iterable[tuple[str, str, int]], end_ms: int) -> dict[str, list[tuple[int, int]]]:
    """``(person, kind, t_ms)`` of ``live_join``/``live_leave`` in time order -> each
    person's watching intervals; an interval still open ends at ``end_ms``."""
    open_at: dict[str, list[int]] = defaultdict(list)
    out: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for person, kind, t_ms in events:
        if kind == "live_join":
            open_at[person].append(t_ms)
        elif open_at[person]:
            start = open_at[person].pop(0)
            out[person].append((start, max(start, min(t_ms, end_ms))))
    for person, starts in open_at.items():
        out[person].extend((s, max(s, end_ms)) for s in starts)
    return dict(out)


def _minutes(duration_ms: int) -> np.ndarray:
    return np.arange(0, max(duration_ms, 0) // MINUTE_MS + 1) * MINUTE_MS


def live_retention(intervals: dict[str, list[tuple[int, int]]], duration_ms: int) -> list[float]:
    """Share of the joiners watching at the start of each minute of the session."""
    if not intervals:
        return []
    marks = _minutes(duration_ms)
    watching = np.zeros(len(marks), dtype=np.int64)
    for spans in intervals.values():
        here = np.zeros(len(marks), dtype=bool)
        for start, end in spans:
            here |= (marks >= start) & (marks <= end)
        watching += here
    return [round(float(x), 4) for x in watching / len(intervals)]


def replay_retention(beats: Iterable[tuple[str, int]], duration_ms: int) -> list[float]:
    """``(person, position_ms)`` heartbeats -> share of replay viewers in each minute."""
    seen: dict[str, set[int]] = defaultdict(set)
    last = max(duration_ms, 0) // MINUTE_MS
    for person, t_ms in beats:
        minute = t_ms // MINUTE_MS
        if 0 <= minute <= last:
            seen[person].add(minute)
    if not seen:
        return []
    counts = np.zeros(last + 1, dtype=np.int64)
    for minutes in seen.values():
        counts[list(minutes)] += 1
    return [round(float(x), 4) for x in counts / len(seen)]


def drop_offs(curve: Sequence[float], limit: int = 3, min_drop: float = 0.05) -> list[dict]:
    """The steepest falls of a retention curve: ``[{minute, t_ms, drop}]``, steepest first
    (``minute``: where the fall lands)."""
    if len(curve) < 2:
        return []
    falls = -np.diff(np.asarray(curve, dtype=float))
    order = np.argsort(-falls, kind="stable")
    return [{"minute": int(i) + 1, "t_ms": (int(i) + 1) * MINUTE_MS, "drop": round(float(falls[i]), 4)}
            for i in order[:limit] if falls[i] >= min_drop]


def watched_ms(intervals: Sequence[tuple[int, int]]) -> int:
    """Time covered by (possibly overlapping) intervals."""
    total, reach = 0, None
    for start, end in sorted(intervals):
        if reach is None or start > reach:
            total += end - start
            reach = end
        elif end > reach:
            total += end - reach
            reach = end
    return total


def funnel(steps: dict[str, set[str]]) -> list[dict]:
    """Distinct people per step (``FUNNEL_STEPS``) with rates: from the step before and
    from the first step (null when the base is 0)."""
    out = []
    first: Optional[int] = None
    previous: Optional[int] = None
    for name in FUNNEL_STEPS:
        count = len(steps.get(name, ()))
        first = count if first is None else first
        out.append({"step": name, "people": count,
                    "rate": None if previous is None else (round(count / previous, 4) if previous else None),
                    "of_first": round(count / first, 4) if first else None})
        previous = count
    return out


@dataclass(frozen=True)
class Burst:
    t_ms: int  # the window's start
    count: int


def bursts(times_ms: Sequence[int], duration_ms: int, window_ms: int = 30_000, min_count: int = 3) -> list[Burst]:
    """Windows with a danmaku burst, in time order."""
    if not times_ms:
        return []
    n = max(duration_ms, max(times_ms)) // window_ms + 1
    counts = np.bincount(np.asarray(times_ms, dtype=np.int64) // window_ms, minlength=n)
    threshold = max(min_count, counts.mean() + 2 * counts.std())
    return [Burst(int(i) * window_ms, int(c)) for i, c in enumerate(counts) if c >= threshold]
