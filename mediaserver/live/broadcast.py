"""``Broadcast``: one live session of a room, and how a room tells its listeners of it.

A broadcast opens with the POST that is accepted, counts once its first media arrives
(``confirmed``: the "live now" notification and the audience log wait for it) and ends
with the creator's end, or is ``discarded`` if its publisher left without sending media.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Optional

__all__ = ["Broadcast", "BroadcastListener", "tell"]


@dataclass
class Broadcast:
    """One live session of a room: from the first publisher to the creator's explicit end
    (WHIP DELETE). A publisher that drops and returns stays in the same broadcast.
    ``t_ms`` is the media clock that danmaku, questions and recordings share."""

    id: str = field(default_factory=lambda: secrets.token_hex(8))
    started_at: float = field(default_factory=time.time)
    #: its first media arrived (the confirm listeners were told, once)
    confirmed: bool = False
    #: its publisher left without sending media: there was no broadcast. End listeners are
    #: told with this set, so they undo what its start did (clocks, the room's claim) and
    #: skip what only a real broadcast has (refunds, audience figures, packaging).
    discarded: bool = False

    def t_ms(self, now: Optional[float] = None) -> int:
        return max(0, int(((time.time() if now is None else now) - self.started_at) * 1000))


#: called with (room, broadcast): a ``Room`` or a ``WorkerRoom``
BroadcastListener = Callable[[Any, Broadcast], Awaitable[None]]


async def tell(listeners: list[BroadcastListener], room: Any, broadcast: Broadcast, what: str,
               log: logging.LoggerAdapter | logging.Logger) -> None:
    """Call each listener in turn; one that fails is logged (``what``: broadcast-start...)
    and the next ones are still told."""
    for listener in list(listeners):
        try:
            await listener(room, broadcast)
        except Exception:
            log.exception("%s listener failed (broadcast %s)", what, broadcast.id)
