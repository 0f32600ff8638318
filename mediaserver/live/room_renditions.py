"""``RoomRenditions``: which video each viewer of one room gets for its network.

The full rendition (the room's video fanout), the room's low rendition (one per room,
started for the first viewer switched to it and stopped after the last leaves it) or audio
only; with ``low_rendition`` on, a ``RenditionSwitcher`` moves the room's viewers between
them from their receiver reports, from the first video viewer on. The room says who its
viewers are; this says what each of them watches.
"""

from __future__ import annotations

import logging
from typing import Callable, Optional

from core.settings import Settings
from core.tasks import TaskOwner
from mediaserver.live.adaptation import RENDITIONS
from mediaserver.live.low_rendition import LowRendition
from mediaserver.live.rendition_switcher import RenditionSwitcher
from mediaserver.live.subscriber import Subscriber
from mediaserver.sfu.fanout import Fanout

__all__ = ["RoomRenditions"]


class RoomRenditions:
    """The renditions of one room's video; ``viewers()``: the room's subscribers now."""

    def __init__(self, viewers: Callable[[], list[Subscriber]], fanouts: dict[str, Fanout],
                 settings: Settings, tasks: TaskOwner, log: logging.LoggerAdapter) -> None:
        self._viewers = viewers
        self.fanouts = fanouts
        self.settings = settings
        self.tasks = tasks
        self.log = log
        #: the low rendition for weak networks, while some viewer needs it
        self.low: Optional[LowRendition] = None
        #: moves viewers between renditions (``low_rendition`` on), from the first viewer
        self.switcher: Optional[RenditionSwitcher] = None

    def viewer_joined(self, kinds: list[str]) -> None:
        """A viewer of ``kinds`` joined: the first one with video starts the switcher."""
        if self.settings.media.low_rendition and "video" in kinds and self.switcher is None:
            self.switcher = RenditionSwitcher(self._viewers, self.set, self.log)
            self.tasks.spawn(self.switcher.run(), name="rendition-switcher")

    async def set(self, subscriber: Subscriber, rendition: str) -> None:
        """Give a viewer the full video, the room's low rendition (started for the first
        viewer that needs it, stopped after the last) or audio only."""
        if rendition not in RENDITIONS:
            raise ValueError(f"rendition: one of {', '.join(RENDITIONS)}")
        if rendition == subscriber.rendition or subscriber.closed:
            return
        target = None
        if rendition == "low":
            if self.low is None:
                self.low = LowRendition(self.fanouts["video"], self.tasks, self.log,
                                        self.settings.media.keyframe_min_interval)
            self.low.start()
            target = self.low.fanout
        elif rendition == "full":
            target = self.fanouts["video"]
        subscriber.switch_video(target, rendition)
        await self.stop_unwatched()

    async def stop_unwatched(self) -> None:
        """Stop the low rendition once no open viewer watches it (one switched or left)."""
        if self.low is not None and self.low.running and not any(
                s.rendition == "low" for s in self._viewers() if not s.closed):
            await self.low.stop()

    async def close(self) -> None:
        if self.low is not None:
            await self.low.stop()
