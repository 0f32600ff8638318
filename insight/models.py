"""Insight tables: the append-only behaviour events, visitor ids joined to accounts, and
the costs a creator enters per room (for ROI), and coupons offered to buyers at risk. Same ``Base`` and migrations as the paywall
(``paywall/migrations``, revision 0008)."""

from __future__ import annotations

import datetime as dt
from typing import Optional

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.behaviour import EVENT_KINDS
from paywall.models import Base, TZDateTime, utcnow

__all__ = ["BehaviourEvent", "COST_CATEGORIES", "CouponOffer", "RoomCost", "VisitorLink"]

COST_CATEGORIES = ("production", "promotion", "other")
_KINDS = ",".join(f"'{k}'" for k in EVENT_KINDS)
#: BIGINT ids on PostgreSQL; SQLite only auto-increments an INTEGER PRIMARY KEY
EventId = BigInteger().with_variant(Integer, "sqlite")


class BehaviourEvent(Base):
    """One thing a viewer did. ``t_ms``: media time (live clock or replay position);
    ``value``: an amount in minor units (checkout, tip) or a count (likes)."""

    __tablename__ = "behaviour_events"
    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(TZDateTime, default=utcnow)
    kind: Mapped[str] = mapped_column(String(24))
    user_id: Mapped[Optional[int]] = mapped_column(ForeignKey("users.id"), nullable=True)
    visitor: Mapped[Optional[str]] = mapped_column(String(32), nullable=True, index=True)
    room_id: Mapped[Optional[int]] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), nullable=True)
    broadcast: Mapped[Optional[str]] = mapped_column(String(32), nullable=True)
    t_ms: Mapped[Optional[int]] = mapped_column(BigInteger, nullable=True)
    value: Mapped[Optional[int]] = mapped_column(BigInteger, nullable=True)
    data: Mapped[str] = mapped_column(Text, default="")  # small JSON object, or empty
    __table_args__ = (
        Index("ix_behaviour_events_room", "room_id", "kind", "at"),
        Index("ix_behaviour_events_user", "user_id", "kind", "at"),
        Index("ix_behaviour_events_at", "at"),
        CheckConstraint(f"kind in ({_KINDS})", name="ck_behaviour_events_kind"),
    )


class VisitorLink(Base):
    """A first-party visitor id (cookie) joined to the account that signed up or logged in."""

    __tablename__ = "visitor_links"
    visitor: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    linked_at: Mapped[dt.datetime] = mapped_column(TZDateTime, default=utcnow)


class RoomCost(Base):
    """What a room cost its creator (production, promotion...), for revenue and ROI."""

    __tablename__ = "room_costs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), index=True)
    category: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    note: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(TZDateTime, default=utcnow)
    __table_args__ = (
        CheckConstraint("amount > 0", name="ck_room_costs_amount"),
        CheckConstraint("category in ('production','promotion','other')", name="ck_room_costs_category"),
    )


class CouponOffer(Base):
    """A single-use coupon a creator sent to one of their buyers at risk of churning; the
    buyer sees it in ``GET /api/me/offers``."""

    __tablename__ = "coupon_offers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(32))
    percent: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(TZDateTime, default=utcnow)
