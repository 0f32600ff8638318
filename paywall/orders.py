"""``OrderBook``: orders from creation to payment, decline and refund.

* Idempotent: ``(buyer, idempotency_key)`` is unique; the same key returns the same order
  (a double click never charges twice); the same key with different contents is refused.
* Coupons are redeemed in the order's own transaction with a conditional update, so a
  capped coupon cannot be over-used by concurrent buyers, and once per user
  (``coupon_redemption``).
* Payment completion is idempotent and writes entitlements and ledger legs atomically;
  a refund reverses both and tells ``on_revoked`` so live sessions end.
* A buyer never pays twice for what they hold: a second payment for it (two tabs) is
  refused before money moves (dev) or refunded at once (Stripe), with the ledger balanced.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Optional

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from .accounts import UserView
from .catalog import Catalog, RoomView
from .db import Database
from core.access import Refusal
from .ledger import Ledger
from .coupon_redemption import give_back_coupon, redeem_coupon
from .models import Coupon, Entitlement, Order, Room, User
from .money import check_amount
from .pass_holdings import PASS_GRANTS, held_through_passes, rooms_held_through_passes
from .providers import PaymentProvider
from core.behaviour import NO_EVENTS, BehaviourSink
from core.timeutil import as_utc, utcnow

__all__ = ["OrderBook", "OrderView", "PRODUCTS"]

PRODUCTS = ("ticket", "replay", "bundle", "tip", "question")
_GRANTS = {"ticket": ("ticket",), "replay": ("replay",), "bundle": ("ticket", "replay")}
log = logging.getLogger("stagepass.orders")


@dataclass(frozen=True)
class OrderView:
    id: str
    user_id: int
    room: str
    product: str
    list_amount: int
    amount: int
    currency: str
    status: str
    message: str
    provider: str
    provider_ref: Optional[str]
    payment_ref: Optional[str]
    checkout_url: Optional[str]
    coupon: Optional[str] = None

    def as_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k not in ("provider_ref", "payment_ref", "user_id")}
        if self.status != "pending":
            d["checkout_url"] = None
        return d


def _view(order: Order, slug: str, coupon: Optional[str] = None) -> OrderView:
    return OrderView(order.id, order.user_id, slug, order.product, order.list_amount, order.amount,
                     order.currency, order.status, order.message, order.provider, order.provider_ref,
                     order.payment_ref, order.checkout_url, coupon)


class OrderBook:
    def __init__(
        self,
        db: Database,
        catalog: Catalog,
        ledger: Ledger,
        provider: PaymentProvider,
        on_revoked: Optional[Callable[[int, str], Awaitable[None]]] = None,
    ) -> None:
        self.db = db
        self.catalog = catalog
        self.ledger = ledger
        self.provider = provider
        self.on_revoked = on_revoked
        #: checkout started / completed / abandoned go to the behaviour events (``Paywall.use_events``)
        self.events: BehaviourSink = NO_EVENTS
        #: seconds a subscription still holds after its paid period (``PaywallSettings.subscription_grace``)
        self.pass_grace: float = 0.0

    # ------------------------------------------------------------------ create
    async def create(self, buyer: UserView, data: dict[str, Any], base_url: str = "") -> tuple[OrderView, bool]:
        """Returns (order, created). ``created`` is False for a repeated idempotency key."""
        key = data.get("idempotency_key")
        if not isinstance(key, str) or not 8 <= len(key) <= 128:
            raise Refusal(400, "invalid_idempotency_key", "idempotency_key: 8 to 128 characters")
        product = data.get("product")
        if product not in PRODUCTS:
            raise Refusal(400, "invalid_product", f"product: one of {', '.join(PRODUCTS)}")
        slug = data.get("room")
        if not isinstance(slug, str):
            raise Refusal(400, "invalid_room", "room: the room's slug")
        coupon_code = data.get("coupon") or None
        if coupon_code is not None and (not isinstance(coupon_code, str) or len(coupon_code) > 32):
            raise Refusal(400, "invalid_coupon", "coupon: a code of up to 32 characters")
        message = data.get("message", "")
        if not isinstance(message, str) or len(message) > 500:
            raise Refusal(400, "invalid_message", "message: text up to 500 characters")
        room = await self.catalog.require(slug)
        if room.listing != "listed":
            raise Refusal(409, "room_not_listed", "this room is not for sale: it waits for the platform's "
                                                       "review or was taken down")

        existing = await self._by_key(buyer.id, key)
        if existing is not None:
            existing = self._same_request(existing, room, product, data, coupon_code)
            if existing.status == "pending" and existing.amount and not existing.checkout_url:
                # the provider failed last time: try again (its idempotency key makes it safe)
                await self._start_checkout(existing, room, base_url)
                existing = await self.get(buyer, existing.id)
            return existing, False

        list_amount = await self._price(buyer, room, product, data)
        order = Order(
            id=secrets.token_hex(12), user_id=buyer.id, room_id=room.id, product=product,
            list_amount=list_amount, amount=list_amount, currency=room.currency, message=message,
            idempotency_key=key, provider=self.provider.name,
        )
        async with self.db() as s:
            try:
                s.add(order)
                await s.flush()
                if coupon_code:
                    if product not in _GRANTS:
                        raise Refusal(400, "coupon_not_applicable", "coupons apply to tickets and replays")
                    order.coupon_id, order.amount = await redeem_coupon(s, buyer.id, room.id, order, coupon_code.upper())
                    await s.flush()
                await s.commit()
            except IntegrityError:
                await s.rollback()
                existing = await self._by_key(buyer.id, key)
                if existing is not None:  # a concurrent request with the same key won
                    return self._same_request(existing, room, product, data, coupon_code), False
                raise Refusal(409, "coupon_used", "you have already used this coupon") from None
            except Refusal:
                await s.rollback()
                raise
        log.info("order %s created: user %d, room %s, %s, %d %s", order.id, buyer.id, room.slug,
                 product, order.amount, order.currency)
        self._checkout_event("checkout_started", order)
        if order.amount == 0:  # fully discounted: nothing to pay
            await self.complete(order.id, payment_ref=None, refuse_duplicate=True)
        else:
            await self._start_checkout(_view(order, room.slug, coupon_code.upper() if coupon_code else None),
                                       room, base_url)
        return await self.get(buyer, order.id), True

    async def _start_checkout(self, order: OrderView, room: RoomView, base_url: str) -> None:
        checkout = await self.provider.start_checkout(order, room.title, base_url)
        async with self.db() as s:
            await s.execute(update(Order).execution_options(synchronize_session=False).where(Order.id == order.id)
                            .values(provider_ref=checkout.provider_ref, checkout_url=checkout.url))
            await s.commit()

    async def _by_key(self, user_id: int, key: str) -> Optional[OrderView]:
        async with self.db() as s:
            row = (await s.execute(
                select(Order, Room.slug, Coupon.code)
                .join(Room, Room.id == Order.room_id)
                .outerjoin(Coupon, Coupon.id == Order.coupon_id)
                .where(Order.user_id == user_id, Order.idempotency_key == key)
            )).first()
        return _view(row[0], row[1], row[2]) if row else None

    @staticmethod
    def _same_request(existing: OrderView, room: RoomView, product: str, data: dict, coupon: Optional[str]) -> OrderView:
        same = (existing.room == room.slug and existing.product == product
                and (existing.coupon or None) == (coupon.upper() if coupon else None)
                and (product not in ("tip", "question") or data.get("amount") == existing.list_amount))
        if not same:
            raise Refusal(409, "idempotency_key_reused", "this idempotency key was used for a different order")
        return existing

    async def _price(self, buyer: UserView, room: RoomView, product: str, data: dict) -> int:
        if product in ("tip", "question"):
            amount = check_amount(data.get("amount"))
            if product == "question" and amount < room.question_min_price:
                raise Refusal(400, "below_minimum", f"a paid question in this room costs at least "
                                                    f"{room.question_min_price} (minor units of {room.currency})")
            return amount
        if "amount" in data:
            raise Refusal(400, "unexpected_amount", "the price of a ticket or replay is set by the room")
        if buyer.id == room.creator_id:
            raise Refusal(409, "own_room", "creators do not buy their own rooms")
        held = await self.entitlements(buyer.id, room)
        if product == "ticket":
            if room.free:
                raise Refusal(409, "free_room", "this room is free: no ticket needed")
            if "ticket" in held:
                raise Refusal(409, "already_owned", "you already have a ticket")
            return room.ticket_price
        if room.replay_price is None:
            raise Refusal(409, "not_for_sale", "the replay of this room is not sold separately")
        if product == "replay":
            if "replay" in held:
                raise Refusal(409, "already_owned", "you already have the replay")
            return room.replay_price
        if held:
            raise Refusal(409, "already_owned", "you already have part of this bundle; buy the rest alone")
        return room.ticket_price + room.replay_price

    # ------------------------------------------------------------------ read
    async def get(self, user: UserView, order_id: str) -> OrderView:
        """An order, to its buyer, the room's creator or an admin; 404 for anyone else."""
        async with self.db() as s:
            row = (await s.execute(
                select(Order, Room.slug, Room.creator_id, Coupon.code)
                .join(Room, Room.id == Order.room_id)
                .outerjoin(Coupon, Coupon.id == Order.coupon_id)
                .where(Order.id == order_id)
            )).first()
        if row is None or user.id not in (row[0].user_id, row[2]) and user.role != "admin":
            raise Refusal(404, "order_not_found", "no such order")
        return _view(row[0], row[1], row[3])

    async def of_room(self, user: UserView, room: RoomView) -> list[dict]:
        """The room's paid and refunded orders, newest first, with the buyer's name (for the
        room's creator or an admin: the studio's refunds)."""
        if user.id != room.creator_id and user.role != "admin":
            raise Refusal(403, "not_your_room", "only the room's creator sees its orders")
        async with self.db() as s:
            rows = (await s.execute(
                select(Order, User.display_name, Coupon.code).join(User, User.id == Order.user_id)
                .outerjoin(Coupon, Coupon.id == Order.coupon_id)
                .where(Order.room_id == room.id, Order.status.in_(("paid", "refunded")))
                .order_by(Order.paid_at.desc(), Order.id).limit(500)
            )).all()
        return [{**_view(order, room.slug, code).as_dict(), "buyer": name,
                 "paid_at": as_utc(order.paid_at).isoformat().replace("+00:00", "Z") if order.paid_at else None}
                for order, name, code in rows]

    async def entitlements(self, user_id: int, room: RoomView, session: Optional[AsyncSession] = None) -> set[str]:
        """Active entitlement kinds (``ticket``, ``replay``) of a user for a room, from orders and
        passes (a subscription to the creator, a series: ``paywall.pass_holdings``); in
        ``session`` if given (one session per request is much cheaper than several)."""
        if session is None:
            async with self.db() as s:
                return await self.entitlements(user_id, room, s)
        query = select(Entitlement.kind).where(Entitlement.user_id == user_id,
                                               Entitlement.room_id == room.id, Entitlement.active)
        held = set((await session.execute(query)).scalars().all())
        if held != {"ticket", "replay"}:
            held |= await held_through_passes(session, user_id, room.id, room.creator_id, self.pass_grace)
        return held

    async def owned(self, user_id: int) -> dict[str, list[str]]:
        """Every room the user holds an active entitlement for (an order, or a pass: a
        subscription, a series): slug -> sorted kinds (``ticket``, ``replay``); refunded ones
        are left out."""
        async with self.db() as s:
            rows = (await s.execute(
                select(Room.slug, Entitlement.kind).join(Room, Room.id == Entitlement.room_id)
                .where(Entitlement.user_id == user_id, Entitlement.active)
            )).all()
            through_passes = await rooms_held_through_passes(s, user_id, self.pass_grace)
            if through_passes:
                slugs = (await s.execute(select(Room.slug).where(Room.id.in_(through_passes)))).scalars().all()
                rows += [(slug, kind) for slug in slugs for kind in PASS_GRANTS]
        owned: dict[str, set[str]] = {}
        for slug, kind in rows:
            owned.setdefault(slug, set()).add(kind)
        return {slug: sorted(kinds) for slug, kinds in sorted(owned.items())}

    # ------------------------------------------------------------------ outcome
    async def complete(self, order_id: str, payment_ref: Optional[str],
                       amount: Optional[int] = None, currency: Optional[str] = None,
                       refuse_duplicate: bool = False) -> str:
        """Mark paid (once): entitlements and ledger legs in one transaction.

        ``amount``/``currency`` are what the provider says was paid; a mismatch refuses.
        A buyer who already holds what the order grants (two tabs, two pending orders)
        is not given it twice: with ``refuse_duplicate`` (the dev checkout, where nothing
        has moved yet) the order is declined and ``409 already_owned`` raised; otherwise
        (the provider has taken the money) the payment is booked and refunded at once.
        Completions of one buyer are serialized (the buyer's row is locked on PostgreSQL;
        SQLite serializes writers), so concurrent payments cannot both grant.

        Returns ``paid``, ``already_processed`` (not pending), ``refunded_duplicate`` or
        ``duplicate_refund_failed`` (left paid, without entitlements, for an admin's refund).
        """
        async with self.db() as s:
            order = await s.get(Order, order_id)
            if order is None:
                raise Refusal(404, "order_not_found", "no such order")
            if amount is not None and (amount != order.amount or (currency or "").upper() != order.currency):
                raise Refusal(409, "amount_mismatch", "the payment does not match the order")
            done = await s.execute(
                update(Order).execution_options(synchronize_session=False).where(Order.id == order_id, Order.status == "pending")
                .values(status="paid", paid_at=utcnow(), payment_ref=payment_ref)
            )
            if done.rowcount != 1:
                await s.rollback()
                return "already_processed"
            await s.refresh(order)
            room = await s.get(Room, order.room_id)
            grants = _GRANTS.get(order.product, ())
            duplicate = bool(grants) and await self._holds_any(s, order.user_id, order.room_id, grants)
            if duplicate and refuse_duplicate:
                await s.rollback()
                await self.decline(order_id)
                raise Refusal(409, "already_owned",
                                   "you already have this (another order paid for it); this order is cancelled")
            if not duplicate:
                for kind in grants:
                    s.add(Entitlement(user_id=order.user_id, room_id=order.room_id, kind=kind, order_id=order.id))
            self.ledger.post_payment(s, order, room.creator_id)
            await s.commit()
        if duplicate:
            log.warning("order %s paid by user %d for room %s, who already holds it: refunding it", order_id,
                        order.user_id, room.slug)
            return await self._refund_duplicate(order_id)
        log.info("order %s paid: user %d, room %s, %d %s", order_id, order.user_id, room.slug,
                 order.amount, order.currency)
        self._checkout_event("checkout_completed", order)
        return "paid"

    @staticmethod
    async def _holds_any(s: AsyncSession, user_id: int, room_id: int, kinds: tuple[str, ...]) -> bool:
        """Whether the buyer holds any of ``kinds`` in the room, after locking the buyer's
        row (PostgreSQL: one completion per buyer at a time; a no-op on SQLite)."""
        await s.execute(select(User.id).where(User.id == user_id).with_for_update())
        held = await s.execute(select(Entitlement.id).where(
            Entitlement.user_id == user_id, Entitlement.room_id == room_id, Entitlement.active,
            Entitlement.kind.in_(kinds)).limit(1))
        return held.first() is not None

    async def _refund_duplicate(self, order_id: str) -> str:
        async with self.db() as s:
            order = await s.get(Order, order_id)
        try:
            if order.amount:
                await self.provider.refund(order)
        except Refusal as exc:
            log.error("order %s: refunding the duplicate payment failed (%s); it stays paid without a ticket: "
                      "refund it with POST /api/orders/%s/refund", order_id, exc.message, order_id)
            return "duplicate_refund_failed"
        await self.mark_refunded(order_id)
        return "refunded_duplicate"

    async def decline(self, order_id: str) -> bool:
        """Pending -> declined; a redeemed coupon is given back."""
        async with self.db() as s:
            done = await s.execute(
                update(Order).execution_options(synchronize_session=False).where(Order.id == order_id, Order.status == "pending").values(status="declined")
            )
            if done.rowcount != 1:
                await s.rollback()
                return False
            order = await s.get(Order, order_id)
            await give_back_coupon(s, order)
            await s.commit()
        log.info("order %s declined", order_id)
        self._checkout_event("checkout_abandoned", order)
        return True

    def _checkout_event(self, kind: str, order: Order) -> None:
        self.events.record(kind, user_id=order.user_id, room_id=order.room_id, value=order.amount,
                           data={"order": order.id, "product": order.product, "currency": order.currency})

    async def refund(self, actor: UserView, order_id: str) -> OrderView:
        """Full refund by the room's creator or an admin: provider refund, then bookkeeping."""
        order = await self.get(actor, order_id)
        if actor.role != "admin" and actor.id == order.user_id:
            raise Refusal(403, "not_allowed", "ask the creator for a refund")
        if order.status != "paid":
            raise Refusal(409, "not_refundable", f"the order is {order.status}")
        await self.refund_paid(order_id)
        return await self.get(actor, order_id)

    async def refund_paid(self, order_id: str) -> bool:
        """The system's refund (no actor: unanswered paid questions...): the provider's
        refund, then ``mark_refunded``. False if the order is not paid."""
        async with self.db() as s:
            order = await s.get(Order, order_id)
        if order is None or order.status != "paid":
            return False
        if order.amount:
            await self.provider.refund(order)
        return await self.mark_refunded(order_id)

    async def mark_refunded(self, order_id: str) -> bool:
        """Paid -> refunded (once): entitlements revoked, ledger reversed, sessions ended."""
        async with self.db() as s:
            done = await s.execute(
                update(Order).execution_options(synchronize_session=False).where(Order.id == order_id, Order.status == "paid")
                .values(status="refunded", refunded_at=utcnow())
            )
            if done.rowcount != 1:
                await s.rollback()
                return False
            order = await s.get(Order, order_id)
            revoked = await s.execute(
                update(Entitlement).execution_options(synchronize_session=False).where(Entitlement.order_id == order_id, Entitlement.active)
                .values(active=False, revoked_at=utcnow())
            )
            await self.ledger.post_refund(s, order)
            room = await s.get(Room, order.room_id)
            await s.commit()
        log.info("order %s refunded: user %d, room %s", order_id, order.user_id, room.slug)
        # a refunded duplicate payment granted nothing: the buyer's sessions go on
        if self.on_revoked is not None and order.product in _GRANTS and revoked.rowcount:
            await self.on_revoked(order.user_id, room.slug)
        return True

    async def exists(self, order_id: str) -> bool:
        async with self.db() as s:
            return await s.get(Order, order_id) is not None

    async def find_by_ref(self, provider_ref: Optional[str] = None, payment_ref: Optional[str] = None) -> Optional[str]:
        conds = []
        if provider_ref:
            conds.append(Order.provider_ref == provider_ref)
        if payment_ref:
            conds.append(Order.payment_ref == payment_ref)
        if not conds:
            return None
        async with self.db() as s:
            return (await s.execute(select(Order.id).where(or_(*conds)))).scalar_one_or_none()
