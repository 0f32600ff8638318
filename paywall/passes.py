"""``PassBook``: passes from purchase to renewal, lapse, cancellation and refund.

A pass is a ``subscription`` to a creator (a monthly or yearly plan: every room and replay of
theirs while it runs) or a ``series`` (a course: its rooms, paid once). What a pass grants is
answered by ``paywall.pass_holdings`` inside ``OrderBook.entitlements``, so the access door,
the replay files and the chat treat it exactly like a ticket.

* Buying is idempotent per ``(buyer, idempotency_key)``, like orders.
* Each payment is a ``PassCharge`` (the series' price, one subscription period) booked in the
  ledger once per provider reference (a Stripe invoice), so a replayed renewal books nothing.
* A lapse (a failed renewal: ``past_due``; the subscription ended; a refund) ends the holder's
  live sessions and chat in every room they no longer hold, through the same ``on_revoked``
  as a refunded ticket; replay files are refused at the next segment.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from typing import Any, Awaitable, Callable, Optional

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.access import Refusal
from core.timeutil import as_utc, utcnow

from .accounts import UserView
from .catalog import Catalog
from .db import Database
from .follows import Follows
from .ledger import Ledger
from .models import Pass, PassCharge, User
from .orders import OrderBook
from .plans import Plans
from .providers import PaymentProvider
from .series import SeriesCatalog

__all__ = ["PassBook", "pass_dict"]

log = logging.getLogger("stagepass.passes")

#: the dev provider's periods (Stripe tells the real period end of each invoice)
DEV_PERIODS = {"month": dt.timedelta(days=30), "year": dt.timedelta(days=365)}
#: statuses in which money may still arrive for a pass (a renewal, a late first payment)
_CHARGEABLE = ("pending", "active", "past_due", "declined")


def _iso(t: Optional[dt.datetime]) -> Optional[str]:
    return as_utc(t).isoformat(timespec="seconds").replace("+00:00", "Z") if t else None


def pass_dict(p: Pass, series: Optional[str] = None) -> dict:
    return {"id": p.id, "kind": p.kind, "creator_id": p.creator_id, "series": series, "interval": p.interval,
            "amount": p.amount, "currency": p.currency, "status": p.status,
            "current_period_end": _iso(p.current_period_end), "cancel_at_period_end": p.cancel_at_period_end,
            "provider": p.provider, "checkout_url": p.checkout_url if p.status == "pending" else None}


def _target(p: Pass) -> dict:
    """What makes two passes the same: the series, or the creator subscribed to."""
    return {"series_id": p.series_id} if p.kind == "series" else {"creator_id": p.creator_id}


class PassBook:
    def __init__(self, db: Database, catalog: Catalog, orders: OrderBook, ledger: Ledger, provider: PaymentProvider,
                 plans: Plans, series: SeriesCatalog, follows: Follows,
                 on_revoked: Optional[Callable[[int, str], Awaitable[None]]] = None) -> None:
        self.db = db
        self.catalog = catalog
        self.orders = orders
        self.ledger = ledger
        self.provider = provider
        self.plans = plans
        self.series = series
        self.follows = follows
        self.on_revoked = on_revoked

    # ------------------------------------------------------------------ buy
    async def buy(self, buyer: UserView, data: dict[str, Any], base_url: str = "") -> tuple[dict, bool]:
        """``{kind: "subscription", creator, interval, idempotency_key}`` or ``{kind: "series",
        series, idempotency_key}``: a pending pass and its checkout. Returns (pass, created)."""
        key = data.get("idempotency_key")
        if not isinstance(key, str) or not 8 <= len(key) <= 128:
            raise Refusal(400, "invalid_idempotency_key", "idempotency_key: 8 to 128 characters")
        kind = data.get("kind")
        if kind == "subscription":
            creator = data.get("creator")
            if not isinstance(creator, int) or isinstance(creator, bool) or creator < 1:
                raise Refusal(400, "invalid_creator", "creator: the creator's user id")
            name = (await self.follows.require_creator(creator)).display_name
            plan = await self.plans.offered(creator, data.get("interval"))
            fields = dict(creator_id=creator, plan_id=plan.id, interval=plan.interval, amount=plan.price,
                          currency=plan.currency)
            title = f"{name}: every class ({plan.interval}ly subscription)"
        elif kind == "series":
            series = await self.series.require(data.get("series"))
            fields = dict(creator_id=series.creator_id, series_id=series.id, amount=series.price,
                          currency=series.currency)
            title = f"{series.title} (series)"
        else:
            raise Refusal(400, "invalid_kind", "kind: 'subscription' or 'series'")
        if buyer.id == fields["creator_id"]:
            raise Refusal(409, "own_pass", "creators do not buy their own passes")
        existing = await self._by_key(buyer.id, key)
        if existing is not None:
            if existing.kind != kind or any(getattr(existing, k) != v for k, v in fields.items() if k != "amount"):
                raise Refusal(409, "idempotency_key_reused", "this idempotency key was used for a different purchase")
            if existing.status == "pending" and not existing.checkout_url:  # the provider failed the first time
                await self._start_checkout(existing, title, base_url)
            return await self.view_of(existing), False
        if await self._holds_same(buyer.id, kind, fields):
            raise Refusal(409, "already_owned", f"you already hold this {kind}")
        async with self.db() as s:
            p = Pass(id=secrets.token_hex(12), user_id=buyer.id, kind=kind, status="pending", idempotency_key=key,
                     provider=self.provider.name, **fields)
            s.add(p)
            try:
                await s.commit()
            except IntegrityError:
                await s.rollback()
                again = await self._by_key(buyer.id, key)
                if again is None:
                    raise
                return await self.view_of(again), False
        log.info("pass %s started: user %d, %s of creator %d", p.id, buyer.id, kind, p.creator_id)
        await self._start_checkout(p, title, base_url)
        return await self.view_of(p), True

    async def _start_checkout(self, p: Pass, title: str, base_url: str) -> None:
        checkout = await self.provider.start_pass_checkout(p, title, base_url)
        async with self.db() as s:
            await s.execute(update(Pass).execution_options(synchronize_session=False).where(Pass.id == p.id)
                            .values(provider_ref=checkout.provider_ref, checkout_url=checkout.url))
            await s.commit()
        p.provider_ref, p.checkout_url = checkout.provider_ref, checkout.url

    async def _by_key(self, user_id: int, key: str) -> Optional[Pass]:
        async with self.db() as s:
            return (await s.execute(select(Pass).where(Pass.user_id == user_id, Pass.idempotency_key == key))
                    ).scalar_one_or_none()

    async def _holds_same(self, user_id: int, kind: str, fields: dict, session: Optional[AsyncSession] = None) -> bool:
        """Does the user hold (active or past due) a pass of ``kind`` for the same creator or series?"""
        if session is None:
            async with self.db() as s:
                return await self._holds_same(user_id, kind, fields, s)
        cond = (Pass.series_id == fields["series_id"]) if kind == "series" else (Pass.creator_id == fields["creator_id"])
        held = await session.execute(select(Pass.id).where(Pass.user_id == user_id, Pass.kind == kind, cond,
                                                           Pass.status.in_(("active", "past_due"))).limit(1))
        return held.first() is not None

    # ------------------------------------------------------------------ read
    async def view_of(self, p: Pass) -> dict:
        return pass_dict(p, await self.series.slug_of(p.series_id) if p.series_id else None)

    async def get(self, user: UserView, pass_id: str) -> Pass:
        """A pass, to its holder, its creator or an admin; 404 for anyone else."""
        async with self.db() as s:
            p = await s.get(Pass, pass_id)
        if p is None or user.id not in (p.user_id, p.creator_id) and user.role != "admin":
            raise Refusal(404, "pass_not_found", "no such pass")
        return p

    async def of_user(self, user_id: int) -> list[dict]:
        async with self.db() as s:
            rows = (await s.execute(select(Pass).where(Pass.user_id == user_id, Pass.status != "declined")
                                    .order_by(Pass.created_at.desc()))).scalars().all()
        return [await self.view_of(p) for p in rows]

    async def charges(self, pass_id: str) -> list[dict]:
        async with self.db() as s:
            rows = (await s.execute(select(PassCharge).where(PassCharge.pass_id == pass_id)
                                    .order_by(PassCharge.created_at, PassCharge.id))).scalars().all()
        return [{"id": c.id, "amount": c.amount, "currency": c.currency, "status": c.status,
                 "period_end": _iso(c.period_end)} for c in rows]

    async def find(self, pass_id: Optional[str] = None, subscription_ref: Optional[str] = None) -> Optional[str]:
        """A pass id from the provider's references (``pass_id`` metadata, a Stripe subscription)."""
        async with self.db() as s:
            if pass_id and await s.get(Pass, pass_id) is not None:
                return pass_id
            if subscription_ref:
                return (await s.execute(select(Pass.id).where(Pass.subscription_ref == subscription_ref))
                        ).scalar_one_or_none()
        return None

    # ------------------------------------------------------------------ money in
    async def charge(self, pass_id: str, payment_ref: str, amount: int, currency: str,
                     period_end: Optional[dt.datetime] = None, refund_ref: Optional[str] = None,
                     subscription_ref: Optional[str] = None) -> str:
        """A payment of the pass (once per ``payment_ref``): booked in the ledger, the pass
        active until ``period_end`` (a subscription). Returns ``paid``, ``already_processed``,
        ``paid_inactive`` (money for a pass that ended: booked, for an admin's refund), or for
        the first payment of a pass the buyer already holds (two tabs, two checkouts)
        ``refunded_duplicate`` (booked, cancelled and refunded at once) or
        ``duplicate_refund_failed`` (left for an admin's refund).

        First payments of one buyer are serialized (the buyer's row is locked on PostgreSQL;
        SQLite serializes writers), so two checkouts paid at once cannot both hold."""
        async with self.db() as s:
            p = (await s.execute(select(Pass).where(Pass.id == pass_id).with_for_update())).scalar_one_or_none()
            if p is None:
                raise Refusal(404, "pass_not_found", "no such pass")
            duplicate = False
            if p.status in ("pending", "declined"):
                await s.execute(select(User.id).where(User.id == p.user_id).with_for_update())
                duplicate = await self._holds_same(p.user_id, p.kind, _target(p), session=s)
            if currency.upper() != p.currency or (p.kind == "series" and amount != p.amount):
                raise Refusal(409, "amount_mismatch", "the payment does not match the pass")
            charge = PassCharge(id=secrets.token_hex(12), pass_id=p.id, amount=amount, currency=p.currency,
                                provider=p.provider, payment_ref=payment_ref, refund_ref=refund_ref,
                                period_end=period_end)
            s.add(charge)
            try:
                await s.flush()
            except IntegrityError:
                await s.rollback()
                return "already_processed"
            self.ledger.post_charge(s, charge, p.creator_id)
            outcome = "paid"
            if p.status in _CHARGEABLE:
                p.status = "active"
                p.started_at = p.started_at or utcnow()
                if period_end is not None and (p.current_period_end is None or as_utc(p.current_period_end) < period_end):
                    p.current_period_end = period_end
            else:
                outcome = "paid_inactive"
            if subscription_ref and not p.subscription_ref:
                p.subscription_ref = subscription_ref
            await s.commit()
        if duplicate:
            log.warning("pass %s paid by user %d, who already holds this %s: refunding it", pass_id, p.user_id, p.kind)
            return await self._refund_duplicate(p, charge)
        if outcome == "paid_inactive":
            log.error("pass %s is %s but a payment arrived (%s): booked; refund it with POST /api/passes/%s/refund",
                      pass_id, p.status, payment_ref, pass_id)
        else:
            log.info("pass %s paid: user %d, %d %s, until %s", pass_id, p.user_id, amount, p.currency,
                     _iso(p.current_period_end) or "forever")
        return outcome

    async def _refund_duplicate(self, p: Pass, charge: PassCharge) -> str:
        try:
            if p.kind == "subscription":
                await self.provider.cancel_subscription(p, at_period_end=False)
            if charge.amount:
                await self.provider.refund_charge(charge)
        except Refusal as exc:
            log.error("pass %s: refunding the duplicate payment failed (%s): refund it with POST /api/passes/%s/refund",
                      p.id, exc.message, p.id)
            return "duplicate_refund_failed"
        await self.mark_refunded(charge.id)
        return "refunded_duplicate"

    async def link_subscription(self, pass_id: str, subscription_ref: str) -> None:
        """The provider's subscription id of a pass (Stripe's checkout completed)."""
        async with self.db() as s:
            await s.execute(update(Pass).execution_options(synchronize_session=False)
                            .where(Pass.id == pass_id, Pass.subscription_ref.is_(None))
                            .values(subscription_ref=subscription_ref))
            await s.commit()

    async def decline(self, pass_id: str) -> bool:
        """A pending pass whose checkout was abandoned."""
        async with self.db() as s:
            done = await s.execute(update(Pass).execution_options(synchronize_session=False)
                                   .where(Pass.id == pass_id, Pass.status == "pending").values(status="declined"))
            await s.commit()
        return done.rowcount == 1

    # ------------------------------------------------------------------ lapse
    async def past_due(self, pass_id: str) -> bool:
        """A renewal failed: the subscription holds nothing until a payment succeeds."""
        return await self._lapse(pass_id, "past_due", ("active",))

    async def ended(self, pass_id: str) -> bool:
        """The subscription ended (cancelled at its period's end, or unpaid for good)."""
        return await self._lapse(pass_id, "canceled", ("active", "past_due", "pending"))

    async def end_all(self, user_id: int) -> int:
        """End every running pass of ``user_id`` (their account is deleted): a subscription is
        cancelled at once at the provider (no more renewals; a provider error is logged for an
        admin), then the passes hold nothing. Payments stay booked. Returns how many ended."""
        async with self.db() as s:
            running = (await s.execute(select(Pass).where(Pass.user_id == user_id,
                                                          Pass.status.in_(("pending", "active", "past_due"))))).scalars().all()
        for p in running:
            if p.kind == "subscription":
                try:
                    await self.provider.cancel_subscription(p, at_period_end=False)
                except Refusal as exc:
                    log.error("pass %s of deleted user %d: cancelling at the provider failed (%s); cancel it there",
                              p.id, user_id, exc.message)
            await self._lapse(p.id, "canceled", ("pending", "active", "past_due"))
        return len(running)

    async def set_cancel_at_period_end(self, pass_id: str, on: bool) -> None:
        async with self.db() as s:
            await s.execute(update(Pass).execution_options(synchronize_session=False)
                            .where(Pass.id == pass_id).values(cancel_at_period_end=on))
            await s.commit()

    async def _lapse(self, pass_id: str, status: str, from_: tuple[str, ...]) -> bool:
        async with self.db() as s:
            done = await s.execute(update(Pass).execution_options(synchronize_session=False)
                                   .where(Pass.id == pass_id, Pass.status.in_(from_))
                                   .values(status=status, ended_at=utcnow() if status != "past_due" else None))
            await s.commit()
            p = await s.get(Pass, pass_id)
        if done.rowcount != 1:
            return False
        log.info("pass %s is %s: user %d", pass_id, status, p.user_id)
        await self._end_sessions(p)
        return True

    async def _end_sessions(self, p: Pass) -> None:
        """End the holder's live sessions and chat in every room of the pass they no longer hold."""
        if self.on_revoked is None:
            return
        if p.kind == "series":
            slugs = await self.series.rooms(p.series_id)
        else:
            slugs = [r.slug for r in await self.catalog.list(creator_id=p.creator_id, listed_only=False)]
        for slug in slugs:
            room = await self.catalog.get(slug)
            if room is not None and "ticket" not in await self.orders.entitlements(p.user_id, room):
                await self.on_revoked(p.user_id, slug)

    # ------------------------------------------------------------------ holder and creator actions
    async def cancel(self, user: UserView, pass_id: str) -> dict:
        """The holder stops renewing: the subscription runs to the end of the paid period."""
        p = await self.get(user, pass_id)
        if p.user_id != user.id:
            raise Refusal(403, "not_your_pass", "only the holder cancels a subscription")
        if p.kind != "subscription":
            raise Refusal(409, "not_a_subscription", "a series is paid once: nothing to cancel")
        if p.status not in ("active", "past_due"):
            raise Refusal(409, "not_active", f"the subscription is {p.status}")
        if not p.cancel_at_period_end:
            await self.provider.cancel_subscription(p, at_period_end=True)
            await self.set_cancel_at_period_end(p.id, True)
        log.info("pass %s: user %d cancels at the period's end", p.id, user.id)
        return await self.view_of(await self.get(user, pass_id))

    async def refund(self, actor: UserView, pass_id: str) -> dict:
        """Refund the pass's latest payment (its creator or an admin): a subscription is
        cancelled at once at the provider, the ledger reversed, the holder's sessions ended."""
        p = await self.get(actor, pass_id)
        if actor.role != "admin" and actor.id != p.creator_id:
            raise Refusal(403, "not_allowed", "ask the creator for a refund")
        if p.status == "refunded":
            raise Refusal(409, "not_refundable", "the pass was refunded already")
        async with self.db() as s:
            charge = (await s.execute(select(PassCharge).where(PassCharge.pass_id == p.id, PassCharge.status == "paid")
                                      .order_by(PassCharge.created_at.desc(), PassCharge.id.desc()).limit(1))
                      ).scalar_one_or_none()
        if charge is None:
            raise Refusal(409, "not_refundable", f"the pass is {p.status} and has no payment to refund")
        if p.kind == "subscription" and p.status in ("active", "past_due", "pending"):
            await self.provider.cancel_subscription(p, at_period_end=False)
        if charge.amount:
            await self.provider.refund_charge(charge)
        await self.mark_refunded(charge.id)
        return await self.view_of(await self.get(actor, pass_id))

    async def charge_by_refund_ref(self, refund_ref: Optional[str]) -> Optional[str]:
        if not refund_ref:
            return None
        async with self.db() as s:
            return (await s.execute(select(PassCharge.id).where(PassCharge.refund_ref == refund_ref))).scalar_one_or_none()

    async def mark_refunded(self, charge_id: str) -> bool:
        """Paid -> refunded (once): the charge's legs reversed; the pass ends if it was its
        latest payment (an old renewal refunded later leaves a running subscription alone)."""
        async with self.db() as s:
            done = await s.execute(update(PassCharge).execution_options(synchronize_session=False)
                                   .where(PassCharge.id == charge_id, PassCharge.status == "paid")
                                   .values(status="refunded", refunded_at=utcnow()))
            if done.rowcount != 1:
                await s.rollback()
                return False
            charge = await s.get(PassCharge, charge_id)
            await self.ledger.post_charge_refund(s, charge)
            latest = (await s.execute(select(PassCharge.id).where(PassCharge.pass_id == charge.pass_id)
                                      .order_by(PassCharge.created_at.desc(), PassCharge.id.desc()).limit(1))).scalar_one()
            p = await s.get(Pass, charge.pass_id)
            ends = latest == charge_id and p.status != "refunded"
            if ends:
                p.status, p.ended_at = "refunded", utcnow()
            await s.commit()
        log.info("pass %s: charge %s refunded (%d %s)", p.id, charge_id, charge.amount, charge.currency)
        if ends:
            await self._end_sessions(p)
        return True

    # ------------------------------------------------------------------ dev provider
    async def dev_confirm(self, p: Pass, action: str) -> None:
        """The dev checkout: ``confirm`` (first payment), ``decline``, and for subscriptions
        ``renew`` (the next period paid) and ``fail`` (a renewal failed: past due)."""
        if action == "decline":
            if not await self.decline(p.id):
                raise Refusal(409, "not_pending", f"the pass is {p.status}")
            return
        if action == "fail":
            if p.kind != "subscription" or not await self.past_due(p.id):
                raise Refusal(409, "not_active", f"the pass is {p.status}")
            return
        if action == "confirm" and p.status != "pending":
            raise Refusal(409, "not_pending", f"the pass is already {p.status}")
        if action == "confirm" and await self._holds_same(p.user_id, p.kind, _target(p)):
            await self.decline(p.id)  # nothing has moved yet: refuse before paying twice
            raise Refusal(409, "already_owned", f"you already hold this {p.kind} (another checkout paid for it); "
                                                "this one is cancelled")
        if action == "renew" and (p.kind != "subscription" or p.status not in ("active", "past_due")):
            raise Refusal(409, "not_active", f"the pass is {p.status}")
        period_end = None
        if p.kind == "subscription":
            start = max(as_utc(p.current_period_end), utcnow()) if p.current_period_end else utcnow()
            period_end = start + DEV_PERIODS[p.interval]
        async with self.db() as s:
            n = len((await s.execute(select(PassCharge.id).where(PassCharge.pass_id == p.id))).all())
        await self.charge(p.id, f"dev-{p.id}-{n + 1}", p.amount, p.currency, period_end, refund_ref=f"dev-{p.id}-{n + 1}")
