"""``Downstream``: one viewer's copy of one track, the state the fanout rewrites headers with.

Sequence numbers and timestamps are offset per viewer (``seq_delta``, ``ts_delta``), in
*segments* that each start on a keyframe, so a viewer's stream stays contiguous across drops,
publisher reconnects and rendition switches; the header extension block the viewer negotiated
(mid, abs-send-time) is precomputed once, as an ``ExtensionLayout`` shared by every viewer
that negotiated the same one, so the fanout builds the part of a packet after the fixed
header once per layout, not once per viewer.
"""

from __future__ import annotations

import random
import time
from typing import Optional

from mediaserver.sfu.aiortc_bridge import ABS_SEND_TIME_URI, MID_URI, NegotiatedStream, SenderPort
from mediaserver.sfu.retransmission import ViewerNacks

__all__ = ["Downstream", "ExtensionLayout", "packet_tail"]

#: ``(before, abs_send_time, after)``: the header extension block a viewer negotiated, around
#: the 3-byte abs-send-time value when it uses one. Interned: viewers with the same block
#: share one object, so the fanout tells them apart by identity.
ExtensionLayout = tuple[bytes, bool, bytes]
_LAYOUTS: dict[ExtensionLayout, ExtensionLayout] = {}


def packet_tail(layout: ExtensionLayout, abs_send: bytes, payload: bytes) -> bytes:
    """What follows the fixed header in a copy sent with ``layout``: extensions, payload.
    With no extension block this is ``payload`` itself (no copy)."""
    before, uses_abs, after = layout
    if uses_abs:
        return b"".join((before, abs_send, after, payload))
    return before + after + payload if before or after else payload


class Downstream:
    """One viewer's copy of one track: its port and its rewrite state."""

    __slots__ = (
        "port", "label", "ssrc", "rtx_ssrc", "payload_types", "rtx_payload_types",
        "clock_rates", "first_byte",
        "waiting", "generation", "pt", "seq_delta", "ts_delta", "last_vseq", "last_vts",
        "segments", "rtx_seq", "dropped", "retransmitted", "unsupported_codec",
        "start_ext", "nacks", "send_errors", "left_at", "layout",
    )

    def __init__(self, port: SenderPort, stream: NegotiatedStream, label: str) -> None:
        self.port = port
        self.label = label
        self.ssrc = port.ssrc
        self.rtx_ssrc = port.rtx_ssrc
        self.payload_types = stream.payload_types
        self.rtx_payload_types = stream.rtx_payload_types
        self.clock_rates = stream.clock_rates
        self._build_extensions(stream)
        self.waiting = True
        self.generation = -1
        self.pt = 0
        self.seq_delta = 0
        self.ts_delta = 0
        self.last_vseq: Optional[int] = None
        self.last_vts = random.getrandbits(32)
        self.segments: list[tuple[int, int, int, int]] = []  # (first vseq, seq_delta, ts_delta, gen)
        self.rtx_seq = random.getrandbits(15)
        self.dropped = 0
        self.retransmitted = 0
        self.unsupported_codec: Optional[str] = None
        self.start_ext = 0  #: the source's extended sequence number this viewer started at
        self.nacks = ViewerNacks()
        self.send_errors = 0  #: packets lost to a send that raised (see Fanout._send_failed)
        #: when it left another fanout of the same kind (a switch of rendition): its
        #: timeline continues from then, by wall clock
        self.left_at: Optional[float] = None

    def park(self) -> None:
        """It left its fanout for another rendition (or none): it restarts on a keyframe,
        and what it was sent before cannot be retransmitted (the other fanout's history
        and generations are not this one's)."""
        self.waiting = True
        self.generation = -1
        self.left_at = time.monotonic()
        self.segments.clear()

    def _build_extensions(self, stream: NegotiatedStream) -> None:
        """Precompute the one-byte header extension block (RFC 8285) for this viewer."""
        mid_id = stream.header_extensions.get(MID_URI)
        abs_id = stream.header_extensions.get(ABS_SEND_TIME_URI)
        mid = stream.mid.encode()
        elements = b""
        if mid_id and mid:
            elements += bytes([(mid_id << 4) | (len(mid) - 1)]) + mid
        body_len = len(elements) + (4 if abs_id else 0)
        layout: ExtensionLayout = (b"", False, b"")
        self.first_byte = 0x80
        if body_len:
            words = (body_len + 3) // 4
            self.first_byte = 0x90  # V=2, X=1
            before = b"\xbe\xde" + words.to_bytes(2, "big") + elements
            if abs_id:
                before += bytes([(abs_id << 4) | 2])
            layout = (before, bool(abs_id), b"\x00" * (words * 4 - body_len))
        self.layout = _LAYOUTS.setdefault(layout, layout)
