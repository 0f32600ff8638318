"""Helpers for insight tests: the behaviour events a server has written."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from insight.assembly import INSIGHT
from insight.models import BehaviourEvent


async def events_of(app, **where: Any) -> list[BehaviourEvent]:
    """Every event written so far (pending ones are flushed first), oldest first."""
    insight = app[INSIGHT]
    await insight.events.flush()
    query = select(BehaviourEvent).order_by(BehaviourEvent.id)
    for column, value in where.items():
        query = query.where(getattr(BehaviourEvent, column) == value)
    async with insight.db() as s:
        return list((await s.execute(query)).scalars())
