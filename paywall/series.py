"""``SeriesCatalog``: courses, a set of a creator's rooms sold at one price.

A buyer of a series holds every room it had when they bought it; with ``include_later``
(the creator's choice, set when the series is created) also every room added afterwards.
Rooms are only added, never removed: a buyer keeps what they paid for.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from core.access import Refusal
from core.timeutil import utcnow

from .accounts import UserView
from .db import Database
from .models import Room, Series, SeriesRoom
from .money import check_amount, check_currency

__all__ = ["SeriesCatalog"]

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,63}$")
MAX_ROOMS = 200


class SeriesCatalog:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, user: UserView, data: dict[str, Any]) -> dict:
        """``{slug, title, price, currency, include_later?, rooms?: [room slugs]}`` by a creator."""
        if user.role not in ("creator", "admin"):
            raise Refusal(403, "not_a_creator", "only creators sell series")
        unknown = set(data) - {"slug", "title", "price", "currency", "include_later", "rooms"}
        if unknown:
            raise Refusal(400, "unknown_field", f"unknown field(s): {', '.join(sorted(unknown))}")
        slug, title = data.get("slug"), data.get("title")
        if not isinstance(slug, str) or not _SLUG.match(slug):
            raise Refusal(400, "invalid_slug", "slug: 2-64 lowercase letters, digits or '-'")
        if not isinstance(title, str) or not 1 <= len(title.strip()) <= 200:
            raise Refusal(400, "invalid_title", "title: 1 to 200 characters")
        price = check_amount(data.get("price"), field="price")
        currency = check_currency(data.get("currency"))
        include_later = data.get("include_later", False)
        if not isinstance(include_later, bool):
            raise Refusal(400, "invalid_include_later", "include_later: true or false")
        rooms = data.get("rooms", [])
        if (not isinstance(rooms, list) or len(rooms) > MAX_ROOMS or not all(isinstance(r, str) for r in rooms)
                or len(set(rooms)) != len(rooms)):
            raise Refusal(400, "invalid_rooms", f"rooms: up to {MAX_ROOMS} distinct room names")
        async with self.db() as s:
            series = Series(slug=slug, creator_id=user.id, title=title.strip(), price=price, currency=currency,
                            include_later=include_later)
            s.add(series)
            try:
                await s.flush()
            except IntegrityError:
                raise Refusal(409, "slug_taken", f"a series named {slug!r} exists") from None
            for room in await self._own_rooms(s, user.id, rooms):
                s.add(SeriesRoom(series_id=series.id, room_id=room.id))
            await s.commit()
        return await self.view(slug)

    async def add_room(self, user: UserView, slug: str, data: dict[str, Any]) -> dict:
        """``{room}``: one more of the creator's rooms in the series (idempotent)."""
        room_slug = data.get("room")
        if not isinstance(room_slug, str):
            raise Refusal(400, "invalid_room", "room: the room's name")
        async with self.db() as s:
            series = await self._series(s, slug)
            if series.creator_id != user.id and user.role != "admin":
                raise Refusal(403, "not_your_series", "only the series' creator adds rooms")
            [room] = await self._own_rooms(s, series.creator_id, [room_slug])
            if await s.get(SeriesRoom, (series.id, room.id)) is None:
                s.add(SeriesRoom(series_id=series.id, room_id=room.id, added_at=utcnow()))
                await s.commit()
        return await self.view(slug)

    async def view(self, slug: str) -> dict:
        async with self.db() as s:
            return await self._view(s, await self._series(s, slug))

    async def of_creator(self, creator_id: int) -> list[dict]:
        """The creator's series, newest first."""
        async with self.db() as s:
            rows = (await s.execute(select(Series).where(Series.creator_id == creator_id)
                                    .order_by(Series.id.desc()))).scalars().all()
            return [await self._view(s, series) for series in rows]

    @staticmethod
    async def _view(s, series: Series) -> dict:
        rooms = (await s.execute(select(Room.slug).join(SeriesRoom, SeriesRoom.room_id == Room.id)
                                 .where(SeriesRoom.series_id == series.id).order_by(SeriesRoom.added_at, Room.id)
                                 )).scalars().all()
        return {"slug": series.slug, "title": series.title, "creator_id": series.creator_id, "price": series.price,
                "currency": series.currency, "include_later": series.include_later, "rooms": list(rooms)}

    async def require(self, slug: Any) -> Series:
        if not isinstance(slug, str):
            raise Refusal(400, "invalid_series", "series: the series' name")
        async with self.db() as s:
            return await self._series(s, slug)

    async def slug_of(self, series_id: int) -> str:
        async with self.db() as s:
            return (await s.get(Series, series_id)).slug

    async def rooms(self, series_id: int) -> list[str]:
        async with self.db() as s:
            return list((await s.execute(select(Room.slug).join(SeriesRoom, SeriesRoom.room_id == Room.id)
                                         .where(SeriesRoom.series_id == series_id))).scalars())

    @staticmethod
    async def _series(s, slug: str) -> Series:
        series = (await s.execute(select(Series).where(Series.slug == slug))).scalar_one_or_none()
        if series is None:
            raise Refusal(404, "series_not_found", f"no series named {slug!r}")
        return series

    @staticmethod
    async def _own_rooms(s, creator_id: int, slugs: list[str]) -> list[Room]:
        """The rooms named ``slugs``, all of them ``creator_id``'s."""
        if not slugs:
            return []
        found = {r.slug: r for r in (await s.execute(select(Room).where(Room.slug.in_(slugs)))).scalars()}
        for slug in slugs:
            room = found.get(slug)
            if room is None:
                raise Refusal(404, "room_not_found", f"no room named {slug!r}")
            if room.creator_id != creator_id:
                raise Refusal(403, "not_your_room", f"{slug!r} is another creator's room")
        return [found[slug] for slug in slugs]

