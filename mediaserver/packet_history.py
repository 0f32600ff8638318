"""``PacketHistory``: the last packets of one track, kept for retransmission, in memory
allocated once.

The fanout answers viewers' NACKs from the last ``size`` packets of its source. Kept as a
list of ``(generation, seq, timestamp, marker, payload, codec)`` tuples, every packet left
four or five Python objects alive for ``size`` packets (the tuple, two ints, the payload),
interleaved in the allocator's pools and arenas with the dozens of short-lived objects the
receive path makes per packet. Allocators only return a pool or an arena when nothing in
it is alive, so those scattered survivors kept pinning new memory: a live room's resident
size grew by tens of bytes per received packet, for as long as the broadcast lasted
(issue 23). Here the payloads are copied into one ``bytearray`` of ``size`` fixed slots
and the header fields into ``array`` columns: storing a packet allocates nothing.
``get`` builds the tuple (and a copy of the payload) only for the rare packet a viewer
asks for again.
"""

from __future__ import annotations

from array import array
from typing import Optional

__all__ = ["PacketHistory", "Entry"]

#: ``(generation, seq, timestamp, marker, payload, codec)``
Entry = tuple[int, int, int, int, bytes, str]

#: room for an RTP payload: a 1500-byte MTU minus IP, UDP, RTP and SRTP overhead
MAX_PAYLOAD = 1400


class PacketHistory:
    """The last ``size`` packets (a power of two), indexed by sequence number."""

    __slots__ = ("size", "_mask", "_slot", "_payloads", "_view", "_gen", "_seq", "_ts",
                 "_marker", "_length", "_codec", "_codecs", "_codec_ids")

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
        self._gen = self._seq = self._ts = self._marker = self._length = self._codec = array("q")

    def _allocate(self) -> memoryview:
        size = self.size
        self._payloads = bytearray(size * self._slot)
        self._view = memoryview(self._payloads)
        self._gen = array("q", bytes(8 * size))
        self._seq = array("q", bytes(8 * size))
        self._ts = array("q", bytes(8 * size))
        self._marker = array("b", bytes(size))
        self._length = array("l", [-1]) * size  # -1: empty slot
        self._codec = array("b", bytes(size))
        return self._view

    def put(self, generation: int, seq: int, ts: int, marker: int, payload: bytes, codec: str) -> None:
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
                bytes(self._view[start:start + n]), self._codecs[self._codec[i]])

    def clear(self) -> None:
        """Forget every packet and give the memory back."""
        if self._view is not None:
            self._view.release()
        self._view = self._payloads = None
        self._gen = self._seq = self._ts = self._marker = self._length = self._codec = array("q")
        self._codecs, self._codec_ids = [], {}

    def __len__(self) -> int:
        """Packets held."""
        if self._view is None:
            return 0
        return sum(1 for n in self._length if n >= 0)
