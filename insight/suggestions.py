"""``Suggestions``: the recommender served from the platform's history.

The model is fitted at the first request, then again every ``refresh_seconds``, in a
background thread:
the history is read on the loop (async queries), the TF-IDF and neighbours are computed
off it. Answers exclude what the viewer owns now (their active entitlements, read per
request, so a purchase a minute ago counts) and rooms no longer in the catalog.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Optional

from sqlalchemy import select

from core.cpu import off_loop
from core.tasks import TaskOwner
from paywall.db import Database
from paywall.models import Entitlement, Room

from .history import load_items, load_usage
from .models import BehaviourEvent
from .recommend import Recommender

__all__ = ["Suggestions", "visited_rooms"]

log = logging.getLogger("stagepass.insight")


class Suggestions:
    def __init__(self, db: Database, refresh_seconds: float = 600.0) -> None:
        self.db = db
        self.refresh_seconds = refresh_seconds
        self.model: Optional[Recommender] = None
        self.tasks = TaskOwner(log)
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        self.tasks.spawn(self._run(), name="recommender-refit")

    async def _run(self) -> None:
        while True:  # the first fit happens at the first request (``_model``)
            await asyncio.sleep(self.refresh_seconds)
            try:
                await self.refit()
            except Exception:
                log.exception("recommender: refitting failed; the previous model keeps answering")

    async def refit(self) -> Recommender:
        async with self._lock:
            items, usage = await load_items(self.db), await load_usage(self.db)
            model = await off_loop(lambda: Recommender().fit(items, usage))
            self.model = model
            log.info("recommender: fitted on %d rooms, %d purchases", len(items), len(usage.purchases))
            return model

    async def _model(self) -> Recommender:
        return self.model if self.model is not None else await self.refit()

    async def _owned(self, user_id: Optional[int]) -> set[int]:
        if user_id is None:
            return set()
        async with self.db() as s:
            return set((await s.execute(select(Entitlement.room_id).where(
                Entitlement.user_id == user_id, Entitlement.active))).scalars())

    async def _views(self, ids: list[int]) -> list[dict]:
        if not ids:
            return []
        async with self.db() as s:
            rooms = {r.id: r for r in (await s.execute(select(Room).where(Room.id.in_(ids)))).scalars()}
        return [{"slug": rooms[i].slug, "title": rooms[i].title, "currency": rooms[i].currency,
                 "ticket_price": rooms[i].ticket_price} for i in ids if i in rooms]

    async def for_user(self, user_id: Optional[int], visited: set[int], limit: int = 10) -> list[dict]:
        model = await self._model()
        owned = await self._owned(user_id)
        return await self._views(model.for_user(user_id, limit, owned=owned, visited=visited))

    async def also_bought(self, room_id: int, user_id: Optional[int], limit: int = 6) -> list[dict]:
        model = await self._model()
        return await self._views(model.also_bought(room_id, limit, owned=await self._owned(user_id)))

    async def close(self) -> None:
        await self.tasks.close()


async def visited_rooms(db: Database, visitor: Optional[str]) -> set[int]:
    """Rooms an anonymous visitor looked at (the cold start of "for you")."""
    if not visitor:
        return set()
    async with db() as s:
        return set((await s.execute(select(BehaviourEvent.room_id).distinct().where(
            BehaviourEvent.visitor == visitor, BehaviourEvent.kind == "page_visit",
            BehaviourEvent.room_id.is_not(None)))).scalars())
