"""What the control plane knows of a room's media from its workers' snapshots, in the
shapes ``/metrics`` and the admin read of an in-process room: its recording, its fanouts'
counters summed over workers, its host's keyframe requests."""

from __future__ import annotations

from typing import Optional

from mediaserver.live.broadcast import Broadcast

__all__ = ["FanoutTotals", "Keyframes", "Recording"]


class Recording:
    """What the control plane knows of a room's recording in its host worker."""

    def __init__(self, broadcast: Broadcast, state: dict) -> None:
        self.broadcast = broadcast
        self._state = state

    def state(self) -> dict:
        return self._state


class Keyframes:
    """The keyframe requests of a room's video in its host worker (a ``KeyframeRequester``'s counts)."""

    def __init__(self, requested: int, sent: int) -> None:
        self.requested = requested
        self.sent = sent


class FanoutTotals:
    """One kind's counters over the workers (``stats`` as a ``FanoutStats``'s; for video,
    ``keyframes`` as the host's ``KeyframeRequester``)."""

    def __init__(self) -> None:
        self.stats = self
        self.keyframes: Optional[Keyframes] = None
        self.packets_in = self.packets_out = self.dropped = self.retransmitted = self.send_errors = 0

    def add(self, counters: dict, from_host: bool) -> None:
        if from_host:
            self.packets_in += counters.get("packets_in", 0)
        self.packets_out += counters.get("packets_out", 0)
        self.dropped += counters.get("dropped", 0)
        self.retransmitted += counters.get("retransmitted", 0)
        self.send_errors += counters.get("send_errors", 0)
