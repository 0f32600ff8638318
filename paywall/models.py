"""The paywall's tables. Money is always integer minor units plus an ISO 4217 currency.

The schema is created and changed only by Alembic migrations (``paywall/migrations``);
``tests/test_migrations.py`` checks these models and the migrations agree.
"""

from __future__ import annotations

import datetime as dt
from typing import Optional

from sqlalchemy import (
    BigInteger,
    Boolean,
    false,
    true,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from .db import Base, TZDateTime

__all__ = [
    "AuditEntry", "AudienceSample", "Base", "BroadcastRecord", "Coupon", "CouponRedemption", "CreatorProfile", "Entitlement", "Follow",
    "LedgerEntry", "LoginSession", "Notification", "NotificationOptOut", "Order", "Pass", "PassCharge", "Payout", "Plan",
    "PreviewUse", "Report", "Review", "RevokedToken", "Room", "Series", "SeriesRoom", "User", "WebhookEvent", "utcnow",
]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)




class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    display_name: Mapped[str] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="viewer")
    #: an admin verified this creator: their rooms are listed at once (else they wait in review)
    verified: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[dt.datetime] = mapped_column(TZDateTime, default=utcnow)
    __table_args__ = (CheckConstraint("role in ('viewer','creator','admin')", name="ck_users_role"),)


class LoginSession(Base):
    """A login: the cookie of a page or the bearer token of an API client (hash only)."""

    __tablename__ = "login_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(TZDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(TZDateTime)


class Room(Base):
    __tablename__ = "rooms"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    creator_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of strings
    starts_at: Mapped[Optional[dt.datetime]] = mapped_column(TZDateTime, nullable=True)
    currency: Mapped[str] = mapped_column(String(3))
    ticket_price: Mapped[int] = mapped_column(BigInteger, default=0)
    replay_price: Mapped[Optional[int]] = mapped_column(BigInteger, nullable=True)
    replay_included: Mapped[bool] = mapped_column(Boolean, default=True)
    #: buyers of the replay may download the recording (HTTP Range on one file)
    allow_downloads: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: a paid room's players overlay each viewer's masked id (``paywall.watermark``); the creator may turn it off
    watermark: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    preview_seconds: Mapped[int] = mapped_column(Integer, default=0)
    max_devices: Mapped[int] = mapped_column(Integer, default=1)
    stream_key: Mapped[str] = mapped_column(String(64))
    #: origins allowed to frame the room's embeddable player, space separated; "*": any; "": none
    embed_origins: Mapped[str] = mapped_column(Text, default="", server_default=text("''"))
    #: ``listed`` (in the catalog, for sale), ``pending`` (waits for an admin's review),
    #: ``rejected``, or ``taken_down`` (by an admin: not listed, not sold, not watched)
    listing: Mapped[str] = mapped_column(String(12), default="listed", server_default="listed")
    #: the least a paid question of this room costs (minor units; 0: any amount)
    question_min_price: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    created_at: Mapped[dt.datetime] = mapped_column(TZDateTime, default=utcnow)
    __table_args__ = (
        CheckConstraint("listing in ('listed','pending','rejected','taken_down')", name="ck_rooms_listing"),
        CheckConstraint("ticket_price >= 0", name="ck_rooms_ticket_price"),
        CheckConstraint("replay_price is null or replay_price >= 0", name="ck_rooms_replay_price"),
        CheckConstraint("max_devices >= 1", name="ck_rooms_max_devices"),
        CheckConstraint("preview_seconds >= 0", name="ck_rooms_preview"),
    )


class Coupon(Base):
    __tablename__ = "coupons"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(8))  # percent | fixed
    value: Mapped[int] = mapped_column(BigInteger)  # percent 1..100, or minor units
    expires_at: Mapped[Optional[dt.datetime]] = mapped_column(TZDateTime, nullable=True)
    max_uses: Mapped[Optional[int]] = mapped_column(Integer, nullable=True)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    #: a disabled coupon is refused to new orders (orders already placed keep their price)
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    __table_args__ = (
        UniqueConstraint("room_id", "code", name="uq_coupons_room_code"),
        CheckConstraint("kind in ('percent','fixed')", name="ck_coupons_kind"),
        CheckConstraint("max_uses is null or uses <= max_uses", name="ck_coupons_uses"),
    )


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id"), index=True)
    product: Mapped[str] = mapped_column(String(16))
    list_amount: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger)  # what the buyer pays
    currency: Mapped[str] = mapped_column(String(3))
    coupon_id: Mapped[Optional[int]] = mapped_column(ForeignKey("coupons.id"), nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="pending")
    idempotency_key: Mapped[str] = mapped_column(String(128))
    provider: Mapped[str] = mapped_column(String(16))
    provider_ref: Mapped[Optional[str]] = mapped_column(String(255), nullable=True, index=True)
    payment_ref: Mapped[Optional[str]] = mapped_column(String(255), nullable=True, index=True)
    checkout_url: Mapped[Optional[str]] = mapped_column(String(2000), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(TZDateTime, default=utcnow)
    paid_at: Mapped[Optional[dt.datetime]] = mapped_column(TZDateTime, nullable=True)
    refunded_at: Mapped[Optional[dt.datetime]] = mapped_column(TZDateTime, nullable=True)
    __table_args__ = (
        UniqueConstraint("user_id", "idempotency_key", name="uq_orders_idempotency"),
        CheckConstraint("amount >= 0 and list_amount >= 0", name="ck_orders_amount"),
        CheckConstraint(
            "status in ('pending','paid','declined','refunded')", name="ck_orders_status"
        ),
        CheckConstraint(
            "product in ('ticket','replay','bundle','tip','question')", name="ck_orders_product"
        ),
    )


class CouponRedemption(Base):
    __tablename__ = "coupon_redemptions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    coupon_id: Mapped[int] = mapped_column(ForeignKey("coupons.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"))
    __table_args__ = (UniqueConstraint("coupon_id", "user_id", name="uq_redemptions_once"),)


class Entitlement(Base):
    """What a paid order unlocks: a room's live ``ticket`` or its ``replay``."""

    __tablename__ = "entitlements"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id"))
    kind: Mapped[str] = mapped_column(String(8))
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(TZDateTime, default=utcnow)
    revoked_at: Mapped[Optional[dt.datetime]] = mapped_column(TZDateTime, nullable=True)
    __table_args__ = (
        Index("ix_entitlements_lookup", "user_id", "room_id", "kind"),
        CheckConstraint("kind in ('ticket','replay')", name="ck_entitlements_kind"),
    )


class Payout(Base):
    """Money paid out to a creator (recorded by an admin once the transfer is made)."""

    __tablename__ = "payouts"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    creator_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    provider: Mapped[str] = mapped_column(String(16))  # the cash account it leaves
    reference: Mapped[str] = mapped_column(String(200))  # the bank transfer's reference...
    recorded_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(TZDateTime, default=utcnow)
    __table_args__ = (CheckConstraint("amount > 0", name="ck_payouts_amount"),)


#: each ledger leg belongs to exactly one order, payout or pass charge
LEDGER_SOURCE = ("(case when order_id is null then 0 else 1 end) + (case when payout_id is null then 0 else 1 end)"
                 " + (case when charge_id is null then 0 else 1 end) = 1")


class LedgerEntry(Base):
    """One leg of a balanced transaction (an order's, a pass charge's, or a payout's): debits
    positive, credits negative."""

    __tablename__ = "ledger_entries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[Optional[str]] = mapped_column(ForeignKey("orders.id"), index=True, nullable=True)
    payout_id: Mapped[Optional[str]] = mapped_column(ForeignKey("payouts.id"), index=True, nullable=True)
    charge_id: Mapped[Optional[str]] = mapped_column(ForeignKey("pass_charges.id"), index=True, nullable=True)
    account: Mapped[str] = mapped_column(String(64), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    kind: Mapped[str] = mapped_column(String(8))  # payment | refund | payout
    created_at: Mapped[dt.datetime] = mapped_column(TZDateTime, default=utcnow)
    __table_args__ = (
        CheckConstraint(LEDGER_SOURCE, name="ck_ledger_entries_source"),
    )


class WebhookEvent(Base):
    """Provider events already processed: a replayed event id changes nothing."""

    __tablename__ = "webhook_events"
    id: Mapped[str] = mapped_column(String(255), primary_key=True)  # provider:event id
    received_at: Mapped[dt.datetime] = mapped_column(TZDateTime, default=utcnow)


class PreviewUse(Base):
    """A viewer used a room's free preview (once per account)."""

    __tablename__ = "preview_uses"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id"), primary_key=True)
    started_at: Mapped[dt.datetime] = mapped_column(TZDateTime, default=utcnow)


class RevokedToken(Base):
    __tablename__ = "revoked_tokens"
    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[dt.datetime] = mapped_column(TZDateTime)


class BroadcastRecord(Base):
    """One live session (broadcast) of a catalog room, for the creator's dashboard.

    ``peak_viewers``/``avg_viewers`` are computed from the samples when it ends (null
    while it is live or if the server stopped before its end; the node's next start
    ends it)."""

    __tablename__ = "broadcasts"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # mediaserver Broadcast.id
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), index=True)
    started_at: Mapped[dt.datetime] = mapped_column(TZDateTime)
    ended_at: Mapped[Optional[dt.datetime]] = mapped_column(TZDateTime, nullable=True)
    peak_viewers: Mapped[Optional[int]] = mapped_column(Integer, nullable=True)
    avg_viewers: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    #: the node that ran it (``Settings.node_id()``); null for broadcasts logged before nodes
    node: Mapped[Optional[str]] = mapped_column(String(64), nullable=True)


class AudienceSample(Base):
    """Concurrent viewers (WHEP sessions) of a broadcast at ``t_ms`` (its media clock)."""

    __tablename__ = "audience_samples"
    broadcast_id: Mapped[str] = mapped_column(ForeignKey("broadcasts.id", ondelete="CASCADE"), primary_key=True)
    t_ms: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    viewers: Mapped[int] = mapped_column(Integer)
    __table_args__ = (CheckConstraint("viewers >= 0", name="ck_audience_samples_viewers"),)


class CreatorProfile(Base):
    """What a creator's public page says about them (their rooms and followers come from the
    other tables)."""

    __tablename__ = "creator_profiles"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    bio: Mapped[str] = mapped_column(Text, default="")


class Follow(Base):
    """A user follows a creator: notified of the creator's rooms."""

    __tablename__ = "follows"
    follower_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    creator_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(TZDateTime, default=utcnow)
    __table_args__ = (CheckConstraint("follower_id <> creator_id", name="ck_follows_self"),)


NOTIFICATION_KINDS = ("scheduled", "reminder", "live", "replay")


class Notification(Base):
    """One entry of a user's in-app inbox. ``key`` names the event (``live:<room>:<broadcast>``)
    so that an event reaches each user once, whichever node or restart announces it."""

    __tablename__ = "notifications"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(160))
    room_id: Mapped[Optional[int]] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), nullable=True)
    text: Mapped[str] = mapped_column(Text)
    link: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[dt.datetime] = mapped_column(TZDateTime, default=utcnow)
    read_at: Mapped[Optional[dt.datetime]] = mapped_column(TZDateTime, nullable=True)
    __table_args__ = (
        UniqueConstraint("user_id", "key", name="uq_notifications_once"),
        Index("ix_notifications_inbox", "user_id", "id"),
        CheckConstraint("kind in ('scheduled','reminder','live','replay')", name="ck_notifications_kind"),
    )


class NotificationOptOut(Base):
    """A user turned off one kind of notification on one channel (``inbox`` or ``email``)."""

    __tablename__ = "notification_opt_outs"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    channel: Mapped[str] = mapped_column(String(8), primary_key=True)
    __table_args__ = (
        CheckConstraint("kind in ('scheduled','reminder','live','replay')", name="ck_opt_outs_kind"),
        CheckConstraint("channel in ('inbox','email')", name="ck_opt_outs_channel"),
    )


class Review(Base):
    """A buyer's rating (1-5) and text of a room; shown once an admin approved it. Editing a
    review sends it back to moderation. The creator may reply (shown with it)."""

    __tablename__ = "reviews"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    rating: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(8), default="pending")
    created_at: Mapped[dt.datetime] = mapped_column(TZDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(TZDateTime, default=utcnow)
    moderated_by: Mapped[Optional[int]] = mapped_column(ForeignKey("users.id"), nullable=True)
    moderated_at: Mapped[Optional[dt.datetime]] = mapped_column(TZDateTime, nullable=True)
    reply: Mapped[Optional[str]] = mapped_column(Text, nullable=True)
    replied_at: Mapped[Optional[dt.datetime]] = mapped_column(TZDateTime, nullable=True)
    __table_args__ = (
        UniqueConstraint("room_id", "user_id", name="uq_reviews_once"),
        CheckConstraint("rating between 1 and 5", name="ck_reviews_rating"),
        CheckConstraint("status in ('pending','approved','rejected')", name="ck_reviews_status"),
    )


class AuditEntry(Base):
    """One admin action (refund, role change, payout, takedown, verification, moderation):
    who (null: the command line), what, on what, and the details."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    actor_id: Mapped[Optional[int]] = mapped_column(ForeignKey("users.id"), nullable=True)
    action: Mapped[str] = mapped_column(String(32), index=True)
    target: Mapped[str] = mapped_column(String(100))
    detail: Mapped[str] = mapped_column(Text, default="{}")  # JSON object
    created_at: Mapped[dt.datetime] = mapped_column(TZDateTime, default=utcnow)


class Report(Base):
    """Someone reported a room, a replay, a danmaku or a user; an admin resolves it."""

    __tablename__ = "reports"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reporter_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))
    target: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(8), default="open")
    created_at: Mapped[dt.datetime] = mapped_column(TZDateTime, default=utcnow)
    resolved_by: Mapped[Optional[int]] = mapped_column(ForeignKey("users.id"), nullable=True)
    resolved_at: Mapped[Optional[dt.datetime]] = mapped_column(TZDateTime, nullable=True)
    __table_args__ = (
        UniqueConstraint("reporter_id", "kind", "target", name="uq_reports_once"),
        CheckConstraint("kind in ('room','replay','danmaku','user')", name="ck_reports_kind"),
        CheckConstraint("status in ('open','resolved')", name="ck_reports_status"),
        Index("ix_reports_status", "status", "id"),
    )


class Plan(Base):
    """A creator's subscription offer: a monthly or yearly pass to all their rooms and replays."""

    __tablename__ = "subscription_plans"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    creator_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    interval: Mapped[str] = mapped_column(String(5))
    price: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(TZDateTime, default=utcnow)
    __table_args__ = (
        UniqueConstraint("creator_id", "interval", name="uq_plans_interval"),
        CheckConstraint("interval in ('month','year')", name="ck_plans_interval"),
        CheckConstraint("price > 0", name="ck_plans_price"),
    )


class Series(Base):
    """A course: a set of a creator's rooms sold at one price. With ``include_later``, buyers
    also hold the rooms added after they bought it."""

    __tablename__ = "series"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    creator_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    price: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    include_later: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(TZDateTime, default=utcnow)
    __table_args__ = (CheckConstraint("price > 0", name="ck_series_price"),)


class SeriesRoom(Base):
    __tablename__ = "series_rooms"
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id", ondelete="CASCADE"), primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), primary_key=True, index=True)
    added_at: Mapped[dt.datetime] = mapped_column(TZDateTime, default=utcnow)


class Pass(Base):
    """What a buyer holds beyond single tickets: a ``subscription`` to a creator (renewed each
    period) or a ``series``. It grants the ticket and replay of its rooms while ``active``
    (a subscription: until ``current_period_end``)."""

    __tablename__ = "passes"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    creator_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(String(12))
    plan_id: Mapped[Optional[int]] = mapped_column(ForeignKey("subscription_plans.id"), nullable=True)
    series_id: Mapped[Optional[int]] = mapped_column(ForeignKey("series.id"), nullable=True)
    interval: Mapped[Optional[str]] = mapped_column(String(5), nullable=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(12), default="pending")
    current_period_end: Mapped[Optional[dt.datetime]] = mapped_column(TZDateTime, nullable=True)
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False)
    idempotency_key: Mapped[str] = mapped_column(String(128))
    provider: Mapped[str] = mapped_column(String(16))
    provider_ref: Mapped[Optional[str]] = mapped_column(String(255), nullable=True, index=True)
    subscription_ref: Mapped[Optional[str]] = mapped_column(String(255), nullable=True, index=True)
    checkout_url: Mapped[Optional[str]] = mapped_column(String(2000), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(TZDateTime, default=utcnow)
    started_at: Mapped[Optional[dt.datetime]] = mapped_column(TZDateTime, nullable=True)
    ended_at: Mapped[Optional[dt.datetime]] = mapped_column(TZDateTime, nullable=True)
    __table_args__ = (
        UniqueConstraint("user_id", "idempotency_key", name="uq_passes_idempotency"),
        CheckConstraint("kind in ('subscription','series')", name="ck_passes_kind"),
        CheckConstraint("status in ('pending','active','past_due','canceled','refunded','declined')",
                        name="ck_passes_status"),
        CheckConstraint("amount > 0", name="ck_passes_amount"),
        Index("ix_passes_holder", "user_id", "creator_id", "status"),
    )


class PassCharge(Base):
    """One payment of a pass: the series' price, or one period of a subscription (its first or
    a renewal); ``payment_ref`` is the provider's (a Stripe invoice or payment), once."""

    __tablename__ = "pass_charges"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    pass_id: Mapped[str] = mapped_column(ForeignKey("passes.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    provider: Mapped[str] = mapped_column(String(16))
    payment_ref: Mapped[str] = mapped_column(String(255))
    #: what the provider refunds (a Stripe payment intent), if any
    refund_ref: Mapped[Optional[str]] = mapped_column(String(255), nullable=True, index=True)
    period_end: Mapped[Optional[dt.datetime]] = mapped_column(TZDateTime, nullable=True)
    status: Mapped[str] = mapped_column(String(8), default="paid")
    created_at: Mapped[dt.datetime] = mapped_column(TZDateTime, default=utcnow)
    refunded_at: Mapped[Optional[dt.datetime]] = mapped_column(TZDateTime, nullable=True)
    __table_args__ = (
        UniqueConstraint("provider", "payment_ref", name="uq_pass_charges_payment"),
        CheckConstraint("status in ('paid','refunded')", name="ck_pass_charges_status"),
        CheckConstraint("amount >= 0", name="ck_pass_charges_amount"),
    )
