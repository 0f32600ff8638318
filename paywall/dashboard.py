"""``CreatorDashboard``: a creator's rooms with their sales, earnings and audience.

Numbers, per room: tickets sold (paid ticket and bundle orders; a refunded order no
longer counts), revenue per currency (gross of every order ever paid, minus refunds),
the creator's share from the ledger (the ``creator:<id>`` account, net of fees and
refunds), and the sessions (broadcasts) with their peak and average viewers. The
creator's balance is that account's total: earnings less the payouts recorded so far
(``paywall.payouts``), which are listed too.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from sqlalchemy import case, func, select

from .accounts import UserView
from .audience import AudienceLog
from .db import Database
from core.access import Refusal
from .ledger import Ledger
from .models import LedgerEntry, Order, Room
from .payouts import Payouts

__all__ = ["CreatorDashboard"]

BROADCAST_ID_RE = re.compile(r"^[0-9a-f]{1,32}$")
SESSIONS_PER_ROOM = 50


def _creator(user: UserView) -> None:
    if user.role not in ("creator", "admin"):
        raise Refusal(403, "not_a_creator", "only creators have a dashboard")


class CreatorDashboard:
    def __init__(self, db: Database, audience: AudienceLog, payouts: Payouts) -> None:
        self.db = db
        self.audience = audience
        self.payouts = payouts

    async def overview(self, user: UserView) -> dict[str, Any]:
        """The dashboard of the user's own rooms (creators and admins)."""
        _creator(user)
        account = f"creator:{user.id}"
        async with self.db() as s:
            rooms = (await s.execute(
                select(Room).where(Room.creator_id == user.id).order_by(Room.created_at, Room.id)
            )).scalars().all()
            ids = [r.id for r in rooms]
            tickets = dict((await s.execute(
                select(Order.room_id, func.count())
                .where(Order.room_id.in_(ids), Order.product.in_(("ticket", "bundle")), Order.status == "paid")
                .group_by(Order.room_id)
            )).all())
            revenue: dict[int, list[dict]] = defaultdict(list)
            for room_id, currency, gross, refunded in await s.execute(
                select(Order.room_id, Order.currency, func.sum(Order.amount),
                       func.sum(case((Order.status == "refunded", Order.amount), else_=0)))
                .where(Order.room_id.in_(ids), Order.status.in_(("paid", "refunded")))
                .group_by(Order.room_id, Order.currency).order_by(Order.currency)
            ):
                revenue[room_id].append({"currency": currency, "gross": int(gross), "refunded": int(refunded),
                                         "net": int(gross) - int(refunded)})
            earnings: dict[int, list[dict]] = defaultdict(list)
            for room_id, currency, total in await s.execute(
                select(Order.room_id, LedgerEntry.currency, func.sum(LedgerEntry.amount))
                .join(Order, Order.id == LedgerEntry.order_id)
                .where(LedgerEntry.account == account, Order.room_id.in_(ids))
                .group_by(Order.room_id, LedgerEntry.currency).order_by(LedgerEntry.currency)
            ):
                earnings[room_id].append({"currency": currency, "amount": -int(total)})
            balance = [{"currency": currency, "amount": amount}
                       for currency, amount in (await Ledger.creator_balance(s, user.id)).items()]
        out = []
        for room in rooms:
            sessions, total = await self.audience.sessions(room.id, limit=SESSIONS_PER_ROOM)
            out.append({
                "slug": room.slug,
                "title": room.title,
                "currency": room.currency,
                "ticket_price": room.ticket_price,
                "tickets_sold": int(tickets.get(room.id, 0)),
                "revenue": revenue.get(room.id, []),
                "earnings": earnings.get(room.id, []),
                "sessions": [x.as_dict() for x in sessions],
                "sessions_total": total,
            })
        return {"rooms": out, "balance": balance, "payouts": await self.payouts.of_creator(user.id)}

    async def session_audience(self, user: UserView, broadcast_id: str) -> dict[str, Any]:
        """One session's samples, to the creator of its room (or an admin); 404 otherwise,
        so others' broadcast ids are not even confirmed to exist."""
        _creator(user)
        if not BROADCAST_ID_RE.match(broadcast_id):
            raise Refusal(400, "invalid_broadcast", "a broadcast id is 1-32 lower-case hex digits")
        found = await self.audience.session(broadcast_id)
        if found is not None:
            session, points = found
            async with self.db() as s:
                room = await s.get(Room, session.room_id)
            if room is not None and (room.creator_id == user.id or user.role == "admin"):
                return {"room": {"slug": room.slug, "title": room.title}, "session": session.as_dict(),
                        "samples": [[t, v] for t, v in points]}
        raise Refusal(404, "broadcast_not_found", "no such broadcast among your rooms")
