"""A user-space loss and jitter shim for real aiortc peers (no ``netem`` on these machines).

``Impairment`` decides, per datagram, whether it is dropped and how long it is held:
random loss (``loss``), bursts of consecutive losses (``burst``: a Gilbert-Elliott chain
with the same average loss), a delay drawn uniformly in ``[0, jitter]`` seconds per
datagram (so packets overtake each other, like netem's jitter), and a bandwidth limit
(``rate`` bit/s: datagrams leave one after another at that rate from a queue holding at
most ``queue`` seconds of them, the rest dropped, like ``tc``'s token bucket ``tbf``).

``Link`` applies one impairment to the SRTP/SRTCP datagrams of one peer connection, in
one direction: ``"out"`` wraps the ``sendto`` of every ICE socket the peer gathered (its
uplink), ``"in"`` wraps their ``datagram_received`` (its downlink). STUN and DTLS pass
untouched, so the connection is set up normally; install the link after negotiation (the
sockets exist once the local description is set) and media is impaired from its first
packet. It works on an aiortc client as well as on a server-side session (to impair a
browser's downlink, wrap the server's session for that browser, direction ``"out"``).

The link also *counts* what crosses it, after the impairment for ``"in"`` (what the peer
gets) and before it for ``"out"`` (what the peer sends): RTP packets per SSRC and how many
repeated a (SSRC, sequence number) already seen, which is exactly what the receiver's SRTP
rejects as a replay. SRTP leaves the RTP header in the clear, so no keys are needed.
"""

from __future__ import annotations

import asyncio
import collections
import random
import re
import time
from typing import Any, Optional

__all__ = ["Impairment", "Link", "rtx_ssrcs"]


class Impairment:
    def __init__(self, loss: float = 0.0, jitter: float = 0.0, burst: float = 0.0,
                 seed: Optional[int] = None, rate: float = 0.0, queue: float = 0.15) -> None:
        """``burst``: mean length (packets) of a loss burst; 0 for independent losses.
        ``rate``: bit/s the link carries (0: no limit), from a queue of ``queue`` seconds."""
        self.loss = loss
        self.jitter = jitter
        self.burst = burst
        self.rate = rate
        self.queue = queue
        self._free_at = 0.0  # when the limited link has sent what is queued (monotonic)
        self.queue_drops = 0
        self._rng = random.Random(seed)
        self._bad = False  # Gilbert-Elliott state
        self.seen = 0
        self.dropped = 0

    def drop(self) -> bool:
        self.seen += 1
        if self.burst > 1 and self.loss > 0:
            # stay in the bad state for ``burst`` packets on average; enter it so that the
            # long-run share of bad packets equals ``loss``
            leave = 1.0 / self.burst
            enter = leave * self.loss / (1.0 - self.loss)
            self._bad = self._rng.random() >= leave if self._bad else self._rng.random() < enter
            lost = self._bad
        else:
            lost = self._rng.random() < self.loss
        self.dropped += lost
        return lost

    def delay(self) -> float:
        return self._rng.uniform(0.0, self.jitter) if self.jitter else 0.0

    def hold(self, size: int) -> Optional[float]:
        """Seconds a datagram of ``size`` bytes is held (jitter, then its turn on a
        limited link), or None: it is lost (at random, or the link's queue is full)."""
        if self.drop():
            return None
        delay = self.delay()
        if self.rate:
            now = time.monotonic()
            start = max(now, self._free_at)
            if start - now > self.queue:
                self.queue_drops += 1
                self.dropped += 1
                return None
            self._free_at = start + size * 8 / self.rate
            delay += self._free_at - now
        return delay

    @property
    def active(self) -> bool:
        return bool(self.loss or self.jitter or self.rate)


def _is_srtp(data: bytes) -> bool:
    return len(data) >= 12 and 128 <= data[0] <= 191


def _is_rtcp(data: bytes) -> bool:
    return 192 <= data[1] <= 223


class Link:
    """One direction of one peer's media, impaired and counted; see the module docstring."""

    def __init__(self, pc: Any, direction: str, impairment: Optional[Impairment] = None) -> None:
        assert direction in ("in", "out")
        self.direction = direction
        self.impairment = impairment or Impairment()
        self.packets: collections.Counter[int] = collections.Counter()  # RTP per SSRC
        self.duplicates: collections.Counter[int] = collections.Counter()
        self._seen: dict[int, set[int]] = collections.defaultdict(set)
        self.rtcp = 0
        self._loop = asyncio.get_running_loop()
        self._installed: list[tuple[Any, str, Any]] = []
        for protocol in _protocols(pc):
            if direction == "out":
                transport = protocol.transport
                if transport is not None:
                    self._wrap(transport, "sendto", self._sendto_wrapper(transport.sendto))
            else:
                self._wrap(protocol, "datagram_received",
                           self._receive_wrapper(protocol.datagram_received))

    def _wrap(self, obj: Any, name: str, wrapper: Any) -> None:
        self._installed.append((obj, name, obj.__dict__.get(name)))
        setattr(obj, name, wrapper)

    def remove(self) -> None:
        """Restore the sockets (new packets pass unimpaired; held ones are still delivered)."""
        for obj, name, previous in self._installed:
            if previous is None:
                obj.__dict__.pop(name, None)
            else:
                setattr(obj, name, previous)
        self._installed.clear()

    def _count(self, data: bytes) -> None:
        if _is_rtcp(data):
            self.rtcp += 1
            return
        ssrc = int.from_bytes(data[8:12], "big")
        seq = int.from_bytes(data[2:4], "big")
        self.packets[ssrc] += 1
        seen = self._seen[ssrc]
        if seq in seen:
            self.duplicates[ssrc] += 1
        else:
            seen.add(seq)
            if len(seen) > 60000:  # a 16-bit space: forget the oldest half of the cycle
                seen.intersection_update(range(seq - 30000, seq + 1))

    def _sendto_wrapper(self, sendto: Any) -> Any:
        def impaired_sendto(data: bytes, addr: Any = None) -> None:
            if not _is_srtp(data):
                return sendto(data, addr)
            self._count(data)
            imp = self.impairment
            if not imp.active:
                return sendto(data, addr)
            delay = imp.hold(len(data))
            if delay is None:
                return None
            if delay:
                self._loop.call_later(delay, _safe, sendto, data, addr)
            else:
                sendto(data, addr)
            return None

        return impaired_sendto

    def _receive_wrapper(self, received: Any) -> Any:
        def deliver(data: bytes, addr: Any) -> None:
            self._count(data)
            received(data, addr)

        def impaired_received(data: bytes, addr: Any) -> None:
            if not _is_srtp(data):
                return received(data, addr)
            imp = self.impairment
            if not imp.active:
                return deliver(data, addr)
            delay = imp.hold(len(data))
            if delay is None:
                return None
            if delay:
                self._loop.call_later(delay, _safe, deliver, data, addr)
            else:
                deliver(data, addr)
            return None

        return impaired_received

    # ------------------------------------------------------------ reading the counts
    def total(self, ssrcs: Optional[set[int]] = None) -> int:
        return sum(n for s, n in self.packets.items() if ssrcs is None or s in ssrcs)

    def duplicate_count(self, ssrcs: Optional[set[int]] = None) -> int:
        return sum(n for s, n in self.duplicates.items() if ssrcs is None or s in ssrcs)


def _safe(fn: Any, data: bytes, addr: Any) -> None:
    try:
        fn(data, addr)
    except Exception:  # the transport closed while the datagram was held
        pass


def _protocols(pc: Any) -> list:
    out = []
    for transceiver in pc.getTransceivers():
        ice = transceiver.sender.transport.transport
        for protocol in ice._connection._protocols:
            if protocol not in out:
                out.append(protocol)
    return out


def rtx_ssrcs(sdp: str) -> dict[int, int]:
    """media SSRC -> RTX SSRC, from the ``a=ssrc-group:FID`` lines of a description."""
    return {int(m): int(r) for m, r in re.findall(r"a=ssrc-group:FID (\d+) (\d+)", sdp)}
