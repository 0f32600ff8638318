"""``PacketHistory``: the last packets of one track, kept for retransmission, in memory
allocated once.

The fanout answers viewers' NACKs from the last ``size`` packets of its source. Kept as a
list of ``(generation, seq, timestamp, marker, payload, codec, time)`` tuples, every packet
left several Python objects alive for ``size`` packets (the tuple, ints, a float, the
payload), interleaved in the allocator's pools and arenas with the dozens of short-lived
objects the receive path makes per packet. Allocators only return a pool or an arena when
nothing in it is alive, so those scattered survivors kept pinning new memory: a live
room's resident size grew by tens of bytes per received packet, for as long as the
broadcast lasted (issue 23). Here the payloads are copied into one ``bytearray`` of
``size`` fixed slots and the header fields into ``array`` columns: storing a packet
allocates nothing. ``get`` builds the tuple (and a copy of the payload) only for the rare
packet a viewer asks for again; ``holds`` and ``same_frame`` answer without building one.

Sequence numbers here are the fanout's *extended* ones (they keep growing past 65535).
"""

from __future__ import annotations

from array import array
from typing import Optional

__all__ = ["Entry", "MAX_PAYLOAD", "PacketHistory"]

#: ``(generation, seq, timestamp, marker, payload, codec, time received)``
Entry = tuple[int, int, int, int, bytes, str, float]

#: room for an RTP payload: the fanout forwards packets up to the 1,500-byte Ethernet
#: limit (``aiortc_bridge.MAX_RTP_PACKET`` covers that plus our header)
MAX_PAYLOAD = 1500


class PacketHistory:
    """The last ``size`` packets (a power of two), indexed by sequence number."""

    __slots__ = ("size", "_mask", "_slot", "_payloads", "_view", "_gen", "_seq", "_ts",
                 "_marker", "_length", "_codec", "_time", "_codecs", "_codec_ids")

    def __init__(self, size: int = 1024, max_payload: int = MAX_PAYLOAD) -> None:
        if size < 1 or size & (size - 1):
            raise ValueError("size must be a power of two")
        self.size = size
        self._mask = size - 1
        self._slot = max_payload
        self._codecs: list[str] = []
        self._codec_ids: dict[str, int] = {}
        self._payloads: Optional[bytearray] = None
        self._view: Optional[memoryview] = None
        self._empty()

    def _empty(self) -> None:
        self._gen = self._seq = self._ts = self._length = array("q")
        self._marker = self._codec = array("b")
        self._time = array("d")

    def _allocate(self) -> memoryview:
        size = self.size
        self._payloads = bytearray(size * self._slot)
        self._view = memoryview(self._payloads)
        self._gen = array("q", bytes(8 * size))
        self._seq = array("q", bytes(8 * size))
        self._ts = array("q", bytes(8 * size))
        self._marker = array("b", bytes(size))
        self._length = array("q", [-1]) * size  # -1: empty slot
        self._codec = array("b", bytes(size))
        self._time = array("d", bytes(8 * size))
        return self._view

    def put(self, generation: int, seq: int, ts: int, marker: int, payload: bytes, codec: str,
            received: float) -> None:
        """Keep a packet (a copy of its payload), replacing the one ``size`` packets older."""
        view = self._view
        if view is None:
            view = self._allocate()
        i = seq & self._mask
        n = len(payload)
        if n > self._slot:  # does not fit a slot: this one cannot be retransmitted
            self._length[i] = -1
            return
        codec_id = self._codec_ids.get(codec)
        if codec_id is None:
            codec_id = self._codec_ids[codec] = len(self._codecs)
            self._codecs.append(codec)
        start = i * self._slot
        view[start:start + n] = payload
        self._gen[i] = generation
        self._seq[i] = seq
        self._ts[i] = ts
        self._marker[i] = marker
        self._length[i] = n
        self._codec[i] = codec_id
        self._time[i] = received

    def get(self, seq: int) -> Optional[Entry]:
        """The packet stored in ``seq``'s slot (its own ``seq`` may differ), or None."""
        if self._view is None:
            return None
        i = seq & self._mask
        n = self._length[i]
        if n < 0:
            return None
        start = i * self._slot
        return (self._gen[i], self._seq[i], self._ts[i], self._marker[i],
                bytes(self._view[start:start + n]), self._codecs[self._codec[i]], self._time[i])

    def holds(self, seq: int, generation: int) -> bool:
        """Whether packet ``seq`` of ``generation`` is kept (no tuple, no copy)."""
        if self._view is None:
            return False
        i = seq & self._mask
        return self._length[i] >= 0 and self._seq[i] == seq and self._gen[i] == generation

    def same_frame(self, seq: int, generation: int, ts: int) -> bool:
        """Whether packet ``seq`` of ``generation`` is kept and carries timestamp ``ts``."""
        return self.holds(seq, generation) and self._ts[seq & self._mask] == ts

    def clear(self) -> None:
        """Forget every packet and give the memory back."""
        if self._view is not None:
            self._view.release()
        self._view = self._payloads = None
        self._empty()
        self._codecs, self._codec_ids = [], {}

    def __len__(self) -> int:
        """Packets held."""
        if self._view is None:
            return 0
        return sum(1 for n in self._length if n >= 0)
