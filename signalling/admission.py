"""``Admission``: applies a ``Grant`` to a session that just started.

Takes the session's seat (ending the oldest sessions of the same ticket, on any node),
ends a free-preview session when its window closes, and gives the seat back when the
session ends. ``revoke`` ends every session of a ticket (refunds). A seat holder may
have ``evict(reason)`` to say why it ends (the chat tells its client); otherwise it is
closed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Optional

from mediaserver.live.peer_session import PeerSession
from paywall.seats import REVOKED, SEAT_TAKEN, Seats

from core.access import Grant

__all__ = ["Admission"]

log = logging.getLogger("stagepass.admission")


class Admission:
    def __init__(self, seats: Optional[Seats] = None) -> None:
        self.seats: Seats = seats or Seats()
        self.seats.on_evict = self._evicted
        self._sessions: dict[str, PeerSession] = {}

    async def admit(self, grant: Grant, session: PeerSession) -> None:
        session.user_id = grant.user_id
        if grant.seat_key is not None:
            key = grant.seat_key
            self._sessions[session.id] = session

            async def release() -> None:
                self._sessions.pop(session.id, None)
                await self.seats.release(key, session.id)

            await self.seats.take(key, session.id, grant.seat_limit)
            # after the seat is taken: a session that closed meanwhile runs ``release`` at once
            # (a listener added after close runs then), so the seat is never left taken
            session.on_close(release)
        if grant.ends_in is not None:
            session.tasks.spawn(self._end_after(session, grant.ends_in), name="preview-end")

    @staticmethod
    async def _end_after(session: PeerSession, seconds: float) -> None:
        await asyncio.sleep(seconds)
        session.log.info("free preview over, ending session")
        await session.close()

    async def _evicted(self, holder: str, reason: str = SEAT_TAKEN) -> None:
        session = self._sessions.pop(holder, None)
        if session is not None:
            session.log.info("%s, ending session",
                             "ticket revoked (refund)" if reason == REVOKED else "ticket in use on a newer device")
            evict = getattr(session, "evict", None)
            session.tasks.spawn(evict(reason) if evict is not None else session.close(), name="evicted")

    async def revoke(self, user_id: int, room: str) -> None:
        """End every session of ``user_id``'s ticket for ``room``, players and chat
        connections, on every node."""
        await self.seats.evict_all(f"{room}:{user_id}")
        await self.seats.evict_all(f"chat:{room}:{user_id}")
