"""``Reviews``: ratings (1-5) and texts of rooms by the people who took the class, shown on
room and creator pages once an admin approved them; the creator may reply.

Who may review: the room must have had a broadcast (the class took place), and for a paid
room the reviewer must hold an active ticket or replay (a refund takes the right away, and
hides nothing already approved). Creators never review their own rooms. One review per user
and room: writing again replaces it and sends it back to moderation.
"""

from __future__ import annotations

from typing import Any, Optional

from sqlalchemy import func, select

from core.timeutil import iso_z, utcnow

from .accounts import UserView
from .audit import AuditLog
from .catalog import RoomView
from .db import Database
from core.access import Refusal
from .models import BroadcastRecord, Entitlement, Review, Room, User

__all__ = ["REVIEW_MAX_CHARS", "Reviews"]

REVIEW_MAX_CHARS = 2000
STATUSES = ("pending", "approved", "rejected")


def _text(value: Any, field: str, required: bool = False) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or len(value) > REVIEW_MAX_CHARS or (required and not value.strip()):
        raise Refusal(400, f"invalid_{field}", f"{field}: {'a non-empty' if required else 'a'} string of at "
                                                    f"most {REVIEW_MAX_CHARS} characters")
    return value.strip()


class Reviews:
    def __init__(self, db: Database, audit: AuditLog) -> None:
        self.db = db
        self.audit = audit

    async def write(self, user: UserView, room: RoomView, body: dict) -> dict:
        """Create or replace ``user``'s review of ``room`` (``{"rating": 1-5, "text"?}``): pending."""
        unknown = set(body) - {"rating", "text"}
        if unknown:
            raise Refusal(400, "unknown_field", f"unknown field(s): {', '.join(sorted(unknown))}")
        rating = body.get("rating")
        if not isinstance(rating, int) or isinstance(rating, bool) or not 1 <= rating <= 5:
            raise Refusal(400, "invalid_rating", "rating: a whole number from 1 to 5")
        text = _text(body.get("text"), "text")
        if user.id == room.creator_id:
            raise Refusal(403, "own_room", "creators do not review their own rooms")
        async with self.db() as s:
            held = await s.scalar(select(BroadcastRecord.id).where(BroadcastRecord.room_id == room.id).limit(1))
            if held is None:
                raise Refusal(403, "class_not_held", "reviews open once the class has taken place")
            if not room.free:
                owned = await s.scalar(select(Entitlement.id).where(
                    Entitlement.user_id == user.id, Entitlement.room_id == room.id, Entitlement.active).limit(1))
                if owned is None:
                    raise Refusal(403, "not_a_buyer", "only buyers of the class or its replay review it")
            review = (await s.execute(select(Review).where(Review.room_id == room.id, Review.user_id == user.id))
                      ).scalar_one_or_none()
            if review is None:
                review = Review(room_id=room.id, user_id=user.id, rating=rating, text=text)
                s.add(review)
            else:
                review.rating, review.text, review.updated_at = rating, text, utcnow()
                review.status, review.moderated_by, review.moderated_at = "pending", None, None
            await s.commit()
            return await self._one(s, review.id)

    async def reply(self, creator: UserView, review_id: int, body: dict) -> dict:
        """The room's creator answers a review (replacing an earlier reply)."""
        if set(body) != {"reply"}:
            raise Refusal(400, "unknown_field", 'send {"reply": "..."}')
        reply = _text(body["reply"], "reply", required=True)
        async with self.db() as s:
            row = (await s.execute(select(Review, Room.creator_id).join(Room, Room.id == Review.room_id)
                                   .where(Review.id == review_id))).one_or_none()
            if row is None or row[1] != creator.id:
                raise Refusal(404, "review_not_found", f"no review {review_id} of your rooms")
            row[0].reply, row[0].replied_at = reply, utcnow()
            await s.commit()
            return await self._one(s, review_id)

    async def moderate(self, admin: UserView, review_id: int, decision: Any) -> dict:
        admin.require_admin("moderate reviews")
        if decision not in ("approved", "rejected"):
            raise Refusal(400, "invalid_decision", 'decision: "approved" or "rejected"')
        async with self.db() as s:
            review = await s.get(Review, review_id)
            if review is None:
                raise Refusal(404, "review_not_found", f"no review {review_id}")
            review.status, review.moderated_by, review.moderated_at = decision, admin.id, utcnow()
            await s.commit()
            out = await self._one(s, review_id)
        await self.audit.record(admin.id, "review", f"review:{review_id}", decision=decision)
        return out

    async def queue(self, admin: UserView, status: str = "pending") -> list[dict]:
        """Reviews with ``status`` (the moderation queue: oldest first)."""
        admin.require_admin("moderate reviews")
        if status not in STATUSES:
            raise Refusal(400, "invalid_status", f"status: one of {', '.join(STATUSES)}")
        async with self.db() as s:
            return await self._list(s, Review.status == status, newest_first=False)

    async def of_room(self, room: RoomView, viewer: Optional[UserView] = None) -> dict:
        """The room's approved reviews (newest first) with its rating, and the viewer's own
        review whatever its status."""
        async with self.db() as s:
            reviews = await self._list(s, (Review.room_id == room.id) & (Review.status == "approved"))
            mine = None
            if viewer is not None:
                own = await s.scalar(select(Review.id).where(Review.room_id == room.id, Review.user_id == viewer.id))
                mine = await self._one(s, own) if own is not None else None
            rating = await self._rating(s, Review.room_id == room.id)
        return {"rating": rating, "reviews": reviews, "mine": mine}

    async def creator_rating(self, creator_id: int) -> dict:
        async with self.db() as s:
            return await self._rating(s, Review.room_id.in_(select(Room.id).where(Room.creator_id == creator_id)))

    # ------------------------------------------------------------------ reading
    async def _rating(self, s, where) -> dict:
        average, count = (await s.execute(select(func.avg(Review.rating), func.count(Review.id))
                                          .where(where, Review.status == "approved"))).one()
        return {"average": round(float(average), 2) if count else None, "count": int(count)}

    async def _list(self, s, where, newest_first: bool = True) -> list[dict]:
        order = Review.id.desc() if newest_first else Review.id.asc()
        rows = (await s.execute(select(Review, User.display_name, Room.slug).join(User, User.id == Review.user_id)
                                .join(Room, Room.id == Review.room_id).where(where).order_by(order).limit(200))).all()
        return [_as_dict(review, name, slug) for review, name, slug in rows]

    async def _one(self, s, review_id: int) -> dict:
        return (await self._list(s, Review.id == review_id))[0]


def _as_dict(review: Review, author: str, room: str) -> dict:
    return {"id": review.id, "room": room, "author": author, "rating": review.rating, "text": review.text,
            "status": review.status, "created_at": iso_z(review.created_at), "updated_at": iso_z(review.updated_at),
            "reply": review.reply, "replied_at": iso_z(review.replied_at)}
