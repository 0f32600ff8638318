"""``Reports``: a creator's analytics of one room, from the behaviour events, the orders
and the ledger (the maths is in ``insight.measures``).

* ``room``: the conversion funnel, revenue and ROI, and a line per session.
* ``session``: one session's live and replay retention (with drop-off moments),
  engagement per viewer-minute, and its peak moments (danmaku bursts) as chapters.

A person is the account (``u<id>``) or, before sign-up, the visitor id (``v<id>``). Only
the room's creator (or an admin) sees a room; anyone else gets ``404`` as for no room.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from typing import Any, Iterable, Optional

from sqlalchemy import case, column, func, select, table
from sqlalchemy.ext.asyncio import AsyncSession

from core.cpu import off_loop
from paywall.accounts import UserView
from paywall.db import Database
from core.access import Refusal
from paywall.models import BroadcastRecord, LedgerEntry, Order, Room

from . import measures
from .models import BehaviourEvent, RoomCost
from .text import top_terms

__all__ = ["HEARTBEAT_MS", "Reports", "SALES", "person", "watch_time"]

HEARTBEAT_MS = 10_000  # the replay page's heartbeat: each one stands for this much watching
WATCHED_MS = 5 * 60_000
SALES = ("ticket", "replay", "bundle")
#: the chat's danmaku table, read without importing the chat package (a layer above)
DANMAKU = table("danmaku", column("room_id"), column("broadcast"), column("user_id"), column("text"),
                column("t_ms"), column("deleted"), column("sent_at"))


def person(user_id: Optional[int], visitor: Optional[str]) -> Optional[str]:
    if user_id is not None:
        return f"u{user_id}"
    return f"v{visitor}" if visitor else None


class Reports:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def room_of(self, user: UserView, slug: str) -> Room:
        if user.role not in ("creator", "admin"):
            raise Refusal(403, "not_a_creator", "only creators have analytics")
        async with self.db() as s:
            room = (await s.execute(select(Room).where(Room.slug == slug))).scalar_one_or_none()
        if room is None or (room.creator_id != user.id and user.role != "admin"):
            raise Refusal(404, "room_not_found", "no such room among yours")
        return room

    async def _events(self, s: AsyncSession, room_id: int, kinds: Iterable[str],
                      broadcast: Optional[str] = None) -> list[BehaviourEvent]:
        query = (select(BehaviourEvent).where(BehaviourEvent.room_id == room_id, BehaviourEvent.kind.in_(tuple(kinds)))
                 .order_by(BehaviourEvent.at, BehaviourEvent.id))
        if broadcast is not None:
            query = query.where(BehaviourEvent.broadcast == broadcast)
        return list((await s.execute(query)).scalars())

    # ------------------------------------------------------------ room
    async def room(self, user: UserView, slug: str) -> dict[str, Any]:
        room = await self.room_of(user, slug)
        async with self.db() as s:
            events = await self._events(s, room.id, ("page_visit", "preview_start", "checkout_started",
                                                      "checkout_completed", "live_join", "live_leave",
                                                      "replay_progress"))
            revenue = await self._revenue(s, room)
            sessions = await self._sessions(s, room.id, events)
        watch, funnel = await off_loop(lambda: _audience(events, dict(sessions)))
        minutes = sum(watch.values()) / 60_000
        revenue["viewer_minutes"] = round(minutes, 2)
        revenue["net_per_viewer_minute"] = round(revenue["net"] / minutes, 2) if minutes else None
        return {
            "room": {"slug": room.slug, "title": room.title, "currency": room.currency},
            "funnel": funnel,
            "revenue": revenue,
            "sessions": [{"id": b, "duration_ms": d} for b, d in sessions],
        }

    async def _revenue(self, s: AsyncSession, room: Room) -> dict[str, Any]:
        gross, refunded = (await s.execute(
            select(func.coalesce(func.sum(Order.amount), 0),
                   func.coalesce(func.sum(case((Order.status == "refunded", Order.amount), else_=0)), 0))
            .where(Order.room_id == room.id, Order.currency == room.currency,
                   Order.status.in_(("paid", "refunded")))
        )).one()
        legs = dict((await s.execute(
            select(LedgerEntry.account, func.sum(LedgerEntry.amount))
            .join(Order, Order.id == LedgerEntry.order_id)
            .where(Order.room_id == room.id, LedgerEntry.currency == room.currency,
                   LedgerEntry.account.in_(("platform:fees", f"creator:{room.creator_id}")))
            .group_by(LedgerEntry.account)
        )).all())
        costs = await self.costs(room, s)
        cost = sum(c["amount"] for c in costs if c["currency"] == room.currency)
        net = -int(legs.get(f"creator:{room.creator_id}", 0))
        return {
            "currency": room.currency, "gross": int(gross), "refunds": int(refunded),
            "fees": -int(legs.get("platform:fees", 0)), "net": net, "costs": cost, "cost_items": costs,
            "profit": net - cost, "roi": round((net - cost) / cost, 4) if cost else None,
        }

    async def _sessions(self, s: AsyncSession, room_id: int, events: list[BehaviourEvent]) -> list[tuple[str, int]]:
        """The room's broadcasts, newest first, with their duration (the audience log's, else
        the latest media time seen in the events)."""
        records = (await s.execute(select(BroadcastRecord).where(BroadcastRecord.room_id == room_id)
                                   .order_by(BroadcastRecord.started_at.desc()))).scalars().all()
        seen: dict[str, int] = defaultdict(int)
        for e in events:
            if e.broadcast and e.kind in ("live_join", "live_leave", "replay_progress"):
                seen[e.broadcast] = max(seen[e.broadcast], e.t_ms or 0)
        out = []
        for record in records:
            end = record.ended_at
            duration = int((end - record.started_at).total_seconds() * 1000) if end else seen.get(record.id, 0)
            out.append((record.id, duration))
        known = {b for b, _ in out}
        out += [(b, d) for b, d in seen.items() if b not in known]
        return out

    # ------------------------------------------------------------ session
    async def session(self, user: UserView, slug: str, broadcast: str) -> dict[str, Any]:
        room = await self.room_of(user, slug)
        async with self.db() as s:
            events = await self._events(s, room.id, ("live_join", "live_leave", "replay_progress", "danmaku",
                                                      "question"), broadcast)
            sessions = dict(await self._sessions(s, room.id, events))
            danmaku = (await s.execute(
                select(DANMAKU.c.t_ms, DANMAKU.c.text)
                .where(DANMAKU.c.room_id == room.id, DANMAKU.c.broadcast == broadcast, DANMAKU.c.deleted.is_(False))
                .order_by(DANMAKU.c.t_ms)
            )).all()
        if broadcast not in sessions:
            raise Refusal(404, "session_not_found", "no such session of this room")
        duration = sessions[broadcast]
        numbers = await off_loop(lambda: _session_numbers(events, danmaku, broadcast, duration))
        return {"room": {"slug": room.slug, "title": room.title},
                "session": {"id": broadcast, "duration_ms": duration}, **numbers}

    # ------------------------------------------------------------ costs
    async def costs(self, room: Room, s: Optional[AsyncSession] = None) -> list[dict]:
        async def read(s: AsyncSession) -> list[dict]:
            rows = (await s.execute(select(RoomCost).where(RoomCost.room_id == room.id)
                                    .order_by(RoomCost.created_at, RoomCost.id))).scalars()
            return [{"id": c.id, "category": c.category, "amount": c.amount, "currency": c.currency,
                     "note": c.note} for c in rows]

        if s is not None:
            return await read(s)
        async with self.db() as s:
            return await read(s)

    async def add_cost(self, user: UserView, slug: str, body: dict) -> dict:
        room = await self.room_of(user, slug)
        category, amount, note = body.get("category"), body.get("amount"), body.get("note", "")
        if category not in ("production", "promotion", "other"):
            raise Refusal(400, "invalid_category", "category: production, promotion or other")
        if not isinstance(amount, int) or isinstance(amount, bool) or not 1 <= amount <= 10**12:
            raise Refusal(400, "invalid_amount", "amount: a positive whole number of minor units (cents)")
        if not isinstance(note, str) or len(note) > 200:
            raise Refusal(400, "invalid_note", "note: text up to 200 characters")
        if set(body) - {"category", "amount", "note"}:
            raise Refusal(400, "unexpected_field", "a cost has category, amount and note only")
        cost = RoomCost(room_id=room.id, category=category, amount=amount, currency=room.currency, note=note)
        async with self.db() as s:
            s.add(cost)
            await s.commit()
        return {"id": cost.id, "category": category, "amount": amount, "currency": room.currency, "note": note}


def watch_time(events: list[BehaviourEvent], durations: dict[str, int]) -> dict[str, int]:
    """Milliseconds each person watched (live intervals plus replay heartbeats)."""
    total: dict[str, int] = defaultdict(int)
    by_broadcast: dict[str, list] = defaultdict(list)
    beats: set[tuple[str, str, int]] = set()
    for e in events:
        who = person(e.user_id, e.visitor)
        if who is None or not e.broadcast:
            continue
        if e.kind in ("live_join", "live_leave"):
            by_broadcast[e.broadcast].append((who, e.kind, e.t_ms or 0))
        elif e.kind == "replay_progress":
            beats.add((who, e.broadcast, (e.t_ms or 0) // HEARTBEAT_MS))
    for broadcast, rows in by_broadcast.items():
        for who, spans in measures.live_intervals(rows, durations.get(broadcast, 0)).items():
            total[who] += measures.watched_ms(spans)
    for who, _, _ in beats:
        total[who] += HEARTBEAT_MS
    return dict(total)


def _audience(events: list[BehaviourEvent], durations: dict[str, int]) -> tuple[dict[str, int], list[dict]]:
    """(milliseconds watched per person, the funnel) of a room's events (off the loop)."""
    watch = watch_time(events, durations)
    return watch, measures.funnel(_funnel_steps(events, watch))


def _session_numbers(events: list[BehaviourEvent], danmaku: list, broadcast: str, duration: int) -> dict[str, Any]:
    """Retention, drop-offs, engagement and chapters of one session (off the loop)."""
    live = measures.live_intervals(
        ((person(e.user_id, e.visitor), e.kind, e.t_ms or 0) for e in events if e.kind in ("live_join", "live_leave")),
        duration)
    beats = [(person(e.user_id, e.visitor), e.t_ms or 0) for e in events if e.kind == "replay_progress"]
    live_curve = measures.live_retention(live, duration)
    replay_curve = measures.replay_retention(beats, duration)
    minutes = sum(watch_time(events, {broadcast: duration}).values()) / 60_000
    counts = Counter(e.kind for e in events)
    found = measures.bursts([t for t, _ in danmaku], duration)
    return {
        "live": {"joiners": len(live), "retention": live_curve, "drop_offs": measures.drop_offs(live_curve)},
        "replay": {"viewers": len({p for p, _ in beats}), "retention": replay_curve,
                   "drop_offs": measures.drop_offs(replay_curve)},
        "engagement": {
            "viewer_minutes": round(minutes, 2), "danmaku": counts["danmaku"], "questions": counts["question"],
            "danmaku_per_viewer_minute": round(counts["danmaku"] / minutes, 4) if minutes else None,
            "questions_per_viewer_minute": round(counts["question"] / minutes, 4) if minutes else None,
        },
        "chapters": [{"t_ms": b.t_ms, "danmaku": b.count,
                      "title": " ".join(top_terms([text for t, text in danmaku if b.t_ms <= t < b.t_ms + 30_000]))
                      or f"{b.count} danmaku"} for b in found],
    }


def _funnel_steps(events: list[BehaviourEvent], watch: dict[str, int]) -> dict[str, set[str]]:
    steps: dict[str, set[str]] = defaultdict(set)
    for e in events:
        who = person(e.user_id, e.visitor)
        if who is None:
            continue
        if e.kind == "page_visit":
            steps["visited"].add(who)
        elif e.kind == "preview_start":
            steps["previewed"].add(who)
        elif e.kind in ("checkout_started", "checkout_completed") and json.loads(e.data or "{}").get("product") in SALES:
            steps["checkout" if e.kind == "checkout_started" else "purchased"].add(who)
    steps["watched_5_min"] = {p for p in steps["purchased"] if watch.get(p, 0) >= WATCHED_MS}
    return steps
