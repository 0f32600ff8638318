"""``SampleRing``: the last N float samples in preallocated memory.

Per-packet statistics (the fanout's in-server delays) used to live in a
``deque(maxlen=N)`` of Python floats: one new float object kept alive per packet, and a
new deque block every 64 packets, until N were held. On a live server those long-lived
little objects were interleaved, in the allocators' pools, with the many short-lived
ones the receive path makes per packet (datagrams, SRTP output, parsed headers, the
bandwidth estimator's arithmetic), so resident memory crept up for minutes with every
packet received (issue 23). A ring of C doubles allocated once makes no allocation per
sample at all.
"""

from __future__ import annotations

from array import array
from typing import Iterator, Optional

__all__ = ["SampleRing"]


class SampleRing:
    """Keeps the last ``size`` samples; ``append`` stores a C double, allocates nothing."""

    __slots__ = ("_values", "_next", "_count", "maxlen")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self.maxlen = size
        self._values: Optional[array] = None  # allocated by the first sample
        self._next = 0
        self._count = 0

    def append(self, value: float) -> None:
        values = self._values
        if values is None:
            values = self._values = array("d", bytes(8 * self.maxlen))
        i = self._next
        values[i] = value
        self._next = 0 if i + 1 == self.maxlen else i + 1
        if self._count < self.maxlen:
            self._count += 1

    def clear(self) -> None:
        """Forget every sample and give the memory back."""
        self._values = None
        self._next = self._count = 0

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[float]:
        """Oldest first."""
        if self._values is None:
            return iter(())
        if self._count < self.maxlen:
            return iter(self._values[: self._count])
        return iter(self._values[self._next:] + self._values[: self._next])
