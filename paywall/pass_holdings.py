"""What a user holds in a room through passes: an active subscription to the room's creator,
or an active series the room belongs to (``paywall.passes`` sells them).

A pass grants the room's ``ticket`` and ``replay``. A subscription holds while it is
``active`` and its paid period (plus ``grace`` seconds: a renewal's invoice is paid a little
after the period ends) has not run out; ``past_due``, cancelled and refunded ones hold
nothing. A series holds the rooms it had when bought, and the rooms added later when the
series says so (``include_later``).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.timeutil import utcnow

from .models import Pass, Room, Series, SeriesRoom

__all__ = ["PASS_GRANTS", "held_through_passes", "rooms_held_through_passes"]

PASS_GRANTS = frozenset({"ticket", "replay"})


def _running_subscription(grace: float):
    return and_(Pass.kind == "subscription", Pass.current_period_end > utcnow() - dt.timedelta(seconds=grace))


async def held_through_passes(s: AsyncSession, user_id: int, room_id: int, creator_id: int, grace: float) -> set[str]:
    """``PASS_GRANTS`` if a pass of ``user_id`` covers the room, else nothing."""
    subscription = and_(_running_subscription(grace), Pass.creator_id == creator_id)
    in_series = select(SeriesRoom.series_id).join(Series, Series.id == SeriesRoom.series_id).where(
        SeriesRoom.room_id == room_id, SeriesRoom.series_id == Pass.series_id,
        or_(Series.include_later, SeriesRoom.added_at <= Pass.started_at))
    series = and_(Pass.kind == "series", in_series.exists())
    held = await s.execute(select(Pass.id).where(Pass.user_id == user_id, Pass.status == "active",
                                                 or_(subscription, series)).limit(1))
    return set(PASS_GRANTS) if held.first() is not None else set()


async def rooms_held_through_passes(s: AsyncSession, user_id: int, grace: float) -> set[int]:
    """The ids of every room a pass of ``user_id`` covers (for "my rooms" listings)."""
    creators = select(Pass.creator_id).where(Pass.user_id == user_id, Pass.status == "active",
                                             _running_subscription(grace))
    subscribed = select(Room.id).where(Room.creator_id.in_(creators))
    in_series = (select(SeriesRoom.room_id).join(Pass, Pass.series_id == SeriesRoom.series_id)
                 .join(Series, Series.id == SeriesRoom.series_id)
                 .where(Pass.user_id == user_id, Pass.kind == "series", Pass.status == "active",
                        or_(Series.include_later, SeriesRoom.added_at <= Pass.started_at)))
    return set((await s.execute(subscribed.union(in_series))).scalars())
