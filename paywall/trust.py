"""``Trust``: content review and takedowns.

Creators start unverified; with ``review_unverified`` on, an unverified creator's new rooms
are ``pending``: out of the catalog, not sold, not watched, and so are their replays, until
an admin approves them (verified creators' rooms are listed at once). An admin takes a room
down: it leaves the catalog, its live broadcast ends (``on_takedown``, wired by the
assembly), its replays are hidden, and with ``refund`` every paid order of it is refunded
(which revokes the buyers' access). Every decision goes to the audit log.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Optional

from sqlalchemy import select

from .accounts import UserView
from .audit import AuditLog
from .catalog import Catalog, RoomView, room_view
from .db import Database
from core.access import Refusal
from .models import Order, Room, User
from .orders import OrderBook

__all__ = ["Trust"]

LISTINGS = ("listed", "pending", "rejected", "taken_down")


class Trust:
    def __init__(self, db: Database, catalog: Catalog, orders: OrderBook, audit: AuditLog,
                 review_unverified: bool = True) -> None:
        self.db = db
        self.catalog = catalog
        self.orders = orders
        self.audit = audit
        self.review_unverified = review_unverified
        #: ends a room's live broadcast on this node (set by the assembly)
        self.on_takedown: Optional[Callable[[str], Awaitable[None]]] = None

    async def initial_listing(self, creator: UserView) -> str:
        """``listed`` for admins, verified creators, or with review off; else ``pending``."""
        if not self.review_unverified or creator.role == "admin":
            return "listed"
        async with self.db() as s:
            verified = await s.scalar(select(User.verified).where(User.id == creator.id))
        return "listed" if verified else "pending"

    async def verify(self, admin: UserView, creator_id: int, verified: Any) -> dict:
        admin.require_admin("review content")
        if not isinstance(verified, bool):
            raise Refusal(400, "invalid_verified", "verified: true or false")
        async with self.db() as s:
            user = await s.get(User, creator_id)
            if user is None or user.role not in ("creator", "admin"):
                raise Refusal(404, "creator_not_found", f"no creator with id {creator_id}")
            user.verified = verified
            await s.commit()
        await self.audit.record(admin.id, "verification", f"user:{creator_id}", verified=verified)
        return {"id": creator_id, "verified": verified}

    async def queue(self, admin: UserView, listing: str = "pending") -> list[dict]:
        """Rooms with ``listing`` (the review queue: oldest first)."""
        admin.require_admin("review content")
        if listing not in LISTINGS:
            raise Refusal(400, "invalid_listing", f"listing: one of {', '.join(LISTINGS)}")
        async with self.db() as s:
            rows = (await s.execute(select(Room).where(Room.listing == listing).order_by(Room.id))).scalars()
            return [room_view(r).as_dict() for r in rows]

    async def decide(self, admin: UserView, slug: str, decision: Any) -> RoomView:
        """Approve (``listed``) or reject a room waiting for review."""
        admin.require_admin("review content")
        if decision not in ("approved", "rejected"):
            raise Refusal(400, "invalid_decision", 'decision: "approved" or "rejected"')
        room = await self.catalog.require(slug)
        if room.listing not in ("pending", "rejected", "listed"):
            raise Refusal(409, "taken_down", "a room taken down stays down")
        await self._set_listing(room, "listed" if decision == "approved" else "rejected")
        await self.audit.record(admin.id, "listing", f"room:{slug}", decision=decision)
        return await self.catalog.require(slug)

    async def take_down(self, admin: UserView, slug: str, body: dict) -> dict:
        admin.require_admin("review content")
        unknown = set(body) - {"reason", "refund"}
        if unknown:
            raise Refusal(400, "unknown_field", f"unknown field(s): {', '.join(sorted(unknown))}")
        reason, refund = body.get("reason"), body.get("refund", False)
        if not isinstance(reason, str) or not reason.strip() or len(reason) > 500:
            raise Refusal(400, "invalid_reason", "reason: why, in up to 500 characters")
        if not isinstance(refund, bool):
            raise Refusal(400, "invalid_refund", "refund: true or false")
        room = await self.catalog.require(slug)
        if room.listing == "taken_down":
            raise Refusal(409, "taken_down", "this room is already taken down")
        await self._set_listing(room, "taken_down")
        if self.on_takedown is not None:
            await self.on_takedown(slug)
        refunded = []
        if refund:
            async with self.db() as s:
                paid = (await s.execute(select(Order.id).where(Order.room_id == room.id, Order.status == "paid")
                                        .order_by(Order.created_at))).scalars().all()
            for order_id in paid:
                if await self.orders.refund_paid(order_id):
                    refunded.append(order_id)
        await self.audit.record(admin.id, "takedown", f"room:{slug}", reason=reason.strip(), refunded=refunded)
        return {"room": slug, "listing": "taken_down", "refunded": refunded}

    async def _set_listing(self, room: RoomView, listing: str) -> None:
        async with self.db() as s:
            row = await s.get(Room, room.id)
            row.listing = listing
            await s.commit()
