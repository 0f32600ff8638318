"""The platform's history as the models need it: rooms as ``Item``s, purchases, watch time
and visits as ``Usage``, and each buyer's churn features (``insight.churn.FEATURES``) at a
given moment, with, for training, whether they did anything in the days after it."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import defaultdict
from typing import Iterable, Optional

from sqlalchemy import func, select

from paywall.db import Database
from paywall.models import BroadcastRecord, Order, Room

from .models import BehaviourEvent
from .recommend import Item, Usage
from .reports import DANMAKU, SALES, watch_time

__all__ = ["churn_features", "churn_labels", "load_items", "load_usage"]

DANMAKU_PER_ROOM = 500
ENGAGED = ("danmaku", "question", "like", "tip")
WATCHING = ("live_join", "live_leave", "replay_progress")


async def load_items(db: Database) -> list[Item]:
    """Every catalog room with its latest danmaku (for the words its viewers use)."""
    async with db() as s:
        rooms = (await s.execute(select(Room).order_by(Room.id))).scalars().all()
        ranked = (select(DANMAKU.c.room_id, DANMAKU.c.text,
                         func.row_number().over(partition_by=DANMAKU.c.room_id, order_by=DANMAKU.c.t_ms.desc())
                         .label("n"))
                  .where(DANMAKU.c.deleted.is_(False)).subquery())
        chatter: dict[int, list[str]] = defaultdict(list)
        for room_id, text in await s.execute(select(ranked.c.room_id, ranked.c.text).where(ranked.c.n <= DANMAKU_PER_ROOM)):
            chatter[room_id].append(text)
    return [Item(r.id, r.title, r.description, tuple(json.loads(r.tags)), " ".join(chatter.get(r.id, ())))
            for r in rooms]


async def _durations(s) -> dict[str, int]:
    rows = await s.execute(select(BroadcastRecord.id, BroadcastRecord.started_at, BroadcastRecord.ended_at))
    return {b: int((end - start).total_seconds() * 1000) for b, start, end in rows if end is not None}


async def _watch_by_room(s, until: Optional[dt.datetime] = None) -> dict[tuple[int, int], int]:
    """Milliseconds each account watched of each room (live and replay)."""
    query = select(BehaviourEvent).where(BehaviourEvent.kind.in_(WATCHING), BehaviourEvent.user_id.is_not(None))
    if until is not None:
        query = query.where(BehaviourEvent.at <= until)
    by_room: dict[int, list[BehaviourEvent]] = defaultdict(list)
    for event in (await s.execute(query.order_by(BehaviourEvent.at, BehaviourEvent.id))).scalars():
        by_room[event.room_id].append(event)
    durations = await _durations(s)
    for events in by_room.values():
        for e in events:
            durations.setdefault(e.broadcast or "", 0)
            durations[e.broadcast or ""] = max(durations[e.broadcast or ""], e.t_ms or 0)
    out = {}
    for room_id, events in by_room.items():
        for who, ms in watch_time(events, durations).items():
            out[(int(who[1:]), room_id)] = ms
    return out


async def load_usage(db: Database) -> Usage:
    usage = Usage()
    async with db() as s:
        for user_id, room_id in await s.execute(
                select(Order.user_id, Order.room_id).where(Order.status == "paid", Order.product.in_(SALES))):
            usage.purchases.add((user_id, room_id))
        usage.watch_ms = await _watch_by_room(s)
        for user_id, room_id in await s.execute(
                select(BehaviourEvent.user_id, BehaviourEvent.room_id).distinct()
                .where(BehaviourEvent.kind == "page_visit", BehaviourEvent.user_id.is_not(None),
                       BehaviourEvent.room_id.is_not(None))):
            usage.visits.setdefault(user_id, set()).add(room_id)
    return usage


async def churn_features(db: Database, at: dt.datetime, users: Optional[Iterable[int]] = None) -> dict[int, dict]:
    """``FEATURES`` of every buyer (or of ``users``) who had bought before ``at``."""
    wanted = set(users) if users is not None else None
    window = at - dt.timedelta(days=180)
    async with db() as s:
        orders = (await s.execute(
            select(Order.user_id, Order.room_id, Order.amount, Order.paid_at)
            .where(Order.status.in_(("paid", "refunded")), Order.product.in_(SALES), Order.paid_at <= at))).all()
        last_event = dict((await s.execute(
            select(BehaviourEvent.user_id, func.max(BehaviourEvent.at))
            .where(BehaviourEvent.user_id.is_not(None), BehaviourEvent.at <= at).group_by(BehaviourEvent.user_id))).all())
        engaged = dict((await s.execute(
            select(BehaviourEvent.user_id, func.count())
            .where(BehaviourEvent.kind.in_(ENGAGED), BehaviourEvent.user_id.is_not(None), BehaviourEvent.at <= at)
            .group_by(BehaviourEvent.user_id))).all())
        watched = await _watch_by_room(s, until=at)
        room_length: dict[int, int] = defaultdict(int)
        for room_id, start, end in await s.execute(
                select(BroadcastRecord.room_id, BroadcastRecord.started_at, BroadcastRecord.ended_at)
                .where(BroadcastRecord.ended_at.is_not(None))):
            room_length[room_id] += int((end - start).total_seconds() * 1000)
    bought: dict[int, list] = defaultdict(list)
    for user_id, room_id, amount, paid_at in orders:
        if wanted is None or user_id in wanted:
            bought[user_id].append((room_id, amount, _utc(paid_at)))
    hours_of: dict[int, float] = defaultdict(float)
    for (u, _), ms in watched.items():
        hours_of[u] += ms / 3_600_000
    out = {}
    for user_id, rows in bought.items():
        last = max([paid for _, _, paid in rows] + ([_utc(last_event[user_id])] if user_id in last_event else []))
        recent = [(room, amount) for room, amount, paid in rows if paid > window]
        rooms = {room for room, _, _ in rows}
        length = sum(room_length.get(room, 0) for room in rooms)
        seen = sum(watched.get((user_id, room), 0) for room in rooms)
        hours = hours_of[user_id]
        out[user_id] = {
            "recency_days": (at - last).total_seconds() / 86400,
            "frequency": float(len(recent)),
            "monetary": math.log1p(sum(amount for _, amount in recent)),
            "completion": min(1.0, seen / length) if length else 0.0,
            "engagement": engaged.get(user_id, 0) / hours if hours >= 0.05 else 0.0,
            "tenure_days": (at - min(paid for _, _, paid in rows)).total_seconds() / 86400,
        }
    return out


async def churn_labels(db: Database, at: dt.datetime, horizon_days: float, users: Iterable[int]) -> dict[int, int]:
    """1 for each of ``users`` who neither bought nor did anything in the ``horizon_days`` after ``at``."""
    end = at + dt.timedelta(days=horizon_days)
    async with db() as s:
        active = set((await s.execute(select(Order.user_id).where(
            Order.status == "paid", Order.paid_at > at, Order.paid_at <= end))).scalars())
        active |= set((await s.execute(select(BehaviourEvent.user_id).where(
            BehaviourEvent.user_id.is_not(None), BehaviourEvent.at > at, BehaviourEvent.at <= end))).scalars())
    return {u: 0 if u in active else 1 for u in users}


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
