"""``KeyframeRequester``: coalesces keyframe requests to one publisher track.

Joining viewers, viewers' PLI/FIR, the recorder and viewers that dropped packets all
want a keyframe. Each request costs the publisher a large frame, so requests are
coalesced: at most one PLI per ``min_interval`` (mediasoup uses one second), and a
request made during the quiet period is sent when it ends, never lost, unless a
keyframe went by in the meantime (``satisfied``), which answers it anyway.
"""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable, Optional

from core.tasks import TaskOwner

__all__ = ["KeyframeRequester"]


class KeyframeRequester:
    def __init__(
        self,
        send_pli: Callable[[], Awaitable[None]],
        tasks: TaskOwner,
        min_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._send_pli = send_pli
        self._tasks = tasks
        self._min_interval = min_interval
        self._clock = clock
        self._last_sent: Optional[float] = None
        self._scheduled = False
        self._pending = False
        self.requested = 0  #: requests received
        self.sent = 0  #: PLIs actually sent

    def request(self) -> None:
        """Ask for a keyframe as soon as the rate limit allows; cheap to call often."""
        self.requested += 1
        self._pending = True
        if self._scheduled:
            return
        now = self._clock()
        wait = 0.0 if self._last_sent is None else self._last_sent + self._min_interval - now
        self._scheduled = True
        self._tasks.spawn(self._send_after(max(wait, 0.0)), name="keyframe-request")

    async def _send_after(self, delay: float) -> None:
        try:
            if delay > 0:
                await asyncio.sleep(delay)
        finally:
            self._scheduled = False
        if not self._pending:
            return
        self._pending = False
        self._last_sent = self._clock()
        self.sent += 1
        await self._send_pli()

    def satisfied(self) -> None:
        """A keyframe reached the fanout: requests waiting for the quiet period are moot."""
        self._pending = False
