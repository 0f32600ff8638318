"""What a test viewer played: each decoded frame's number, with what its receiver knew of loss.

Under load (2 cores, other tests running) a viewer's packets can be lost for good somewhere on
the relay path. aiortc's video receiver then waits for the gap until its jitter buffer spans
512 packets, skips ahead and asks for a keyframe (RTCP PLI); the first frames it decodes after
the skip reference pictures it never got, and the decoder conceals them with the last picture
it has: they still show an older number (``[214, 214, 219]``: frame 218, timestamp 48000,
decoded on 214 after 215-217 were skipped, then the keyframe 219). A repeated number is
therefore a loss the viewer saw, not a frame forwarded twice, when it comes from a frame of its
own (a later RTP timestamp) that went to the decoder after the receiver asked for a keyframe.
``ReceiverLosses`` counts those keyframe requests per video receiver and ``PlayedFrame``
carries them with each number, so ``frames.in_order`` can tell the two apart.
"""

from __future__ import annotations

import queue
from typing import Any

from aiortc import RTCRtpReceiver

__all__ = ["PlayedFrame", "ReceiverLosses"]


class PlayedFrame(int):
    """A decoded frame's number (an ``int``, so tests compare it as one), with its RTP
    timestamp as the receiver mapped it (``pts``), the keyframe requests its receiver had
    sent when it went to the decoder (``requests``), and the same count for the first of
    the consecutive frames that showed this number (``first_requests``)."""

    pts: int
    requests: int
    first_requests: int

    def __new__(cls, number: int, pts: int, requests: int, first_requests: int) -> "PlayedFrame":
        frame = super().__new__(cls, number)
        frame.pts, frame.requests, frame.first_requests = pts, requests, first_requests
        return frame

    def after_loss(self) -> bool:
        """Whether the receiver asked for a keyframe (it skipped a gap, overflowed or failed
        to decode) since this number was first shown: a repeat of it is concealment."""
        return self.requests > self.first_requests


class _CountingQueue(queue.Queue):
    """The receiver's decoder queue, noting the keyframe requests sent when each encoded frame
    (by its mapped timestamp) went in."""

    def __init__(self, losses: "ReceiverLosses") -> None:
        super().__init__()
        self._losses = losses

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is not None:
            self._losses.requests_at[item[1].timestamp] = self._losses.keyframe_requests
        super().put(item, block, timeout)


class ReceiverLosses:
    """Counts the keyframe requests (PLI) an aiortc video receiver sends. Attach before the
    receiver starts (right after ``addTransceiver``): it replaces the decoder queue."""

    def __init__(self, receiver: RTCRtpReceiver) -> None:
        self.keyframe_requests = 0
        self.requests_at: dict[int, int] = {}  #: mapped timestamp -> requests sent by then
        send_pli = receiver._send_rtcp_pli

        async def counted_pli(media_ssrc: int) -> None:
            self.keyframe_requests += 1
            await send_pli(media_ssrc)

        receiver._send_rtcp_pli = counted_pli  # type: ignore[method-assign]
        receiver._RTCRtpReceiver__decoder_queue = _CountingQueue(self)  # type: ignore[attr-defined]

    def played(self, number: int, pts: int, previous: PlayedFrame | None) -> PlayedFrame:
        """The ``PlayedFrame`` for a decoded frame showing ``number``, after ``previous``."""
        requests = self.requests_at.pop(pts, self.keyframe_requests)
        first = previous.first_requests if previous is not None and previous == number else requests
        return PlayedFrame(number, pts, requests, first)
