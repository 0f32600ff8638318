"""``Webhooks``: payment provider events, each processed once per event id.

The signature is checked by the provider adapter before this runs. Each outcome is
idempotent in itself (conditional status updates), and the event id is recorded after
processing, so a replayed event, or two deliveries racing, change nothing more.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Optional

from sqlalchemy.exc import IntegrityError

from .db import Database
from core.access import Refusal
from .models import WebhookEvent
from .orders import OrderBook
from .passes import PassBook

__all__ = ["Webhooks"]

log = logging.getLogger("stagepass.webhooks")


class Webhooks:
    def __init__(self, db: Database, orders: OrderBook, passes: PassBook) -> None:
        self.db = db
        self.orders = orders
        self.passes = passes

    async def _seen(self, event_id: str) -> bool:
        async with self.db() as s:
            return await s.get(WebhookEvent, event_id) is not None

    async def _record(self, event_id: str) -> None:
        async with self.db() as s:
            s.add(WebhookEvent(id=event_id))
            try:
                await s.commit()
            except IntegrityError:
                await s.rollback()

    async def handle_stripe(self, event: Any) -> str:
        event_id = f"stripe:{event['id']}"
        if await self._seen(event_id):
            return "duplicate"
        outcome = await self._stripe_outcome(event["type"], event["data"]["object"])
        await self._record(event_id)
        log.info("stripe event %s (%s): %s", event["id"], event["type"], outcome)
        return outcome

    async def _stripe_outcome(self, kind: str, obj: Any) -> str:
        if kind.startswith(("checkout.session.", "invoice.", "customer.subscription.")):
            outcome = await self._pass_outcome(kind, obj)
            if outcome is not None:
                return outcome
        if kind in ("checkout.session.completed", "checkout.session.async_payment_succeeded"):
            order_id = obj.get("client_reference_id") or (obj.get("metadata") or {}).get("order_id")
            if not order_id:
                raise Refusal(400, "unknown_order", "the checkout session names no order")
            if obj.get("payment_status") != "paid":
                return "awaiting_payment"
            if obj.get("amount_total") is None or not obj.get("currency"):
                raise Refusal(400, "bad_payload", "the checkout session has no amount")
            if not await self.orders.exists(order_id):
                return "ignored_unknown_order"  # another integration on the same Stripe account
            return await self.orders.complete(
                order_id, payment_ref=obj.get("payment_intent"),
                amount=obj.get("amount_total"), currency=obj.get("currency"),
            )
        if kind in ("checkout.session.expired", "checkout.session.async_payment_failed"):
            order_id = obj.get("client_reference_id") or (obj.get("metadata") or {}).get("order_id")
            return "declined" if order_id and await self.orders.decline(order_id) else "ignored"
        if kind == "charge.refunded":
            if obj.get("amount_refunded") != obj.get("amount"):
                return "partial_refund_ignored"
            order_id = await self.orders.find_by_ref(payment_ref=obj.get("payment_intent"))
            if order_id is not None:
                return "refunded" if await self.orders.mark_refunded(order_id) else "already_processed"
            charge_id = (await self.passes.charge_by_refund_ref(obj.get("payment_intent"))
                         or await self.passes.charge_by_refund_ref(obj.get("id")))
            if charge_id is None:
                raise Refusal(400, "unknown_order", "no order for this payment")
            return "refunded" if await self.passes.mark_refunded(charge_id) else "already_processed"
        return "ignored"

    async def _pass_outcome(self, kind: str, obj: Any) -> Optional[str]:
        """Events of passes (series checkouts, Stripe Billing subscriptions); None: not a pass's.

        * ``checkout.session.completed``: a series is paid (``mode=payment``); a subscription's
          checkout links its Stripe subscription (its money comes with ``invoice.paid``);
        * ``invoice.paid``: one subscription period paid (the first or a renewal), booked once per invoice;
        * ``invoice.payment_failed``, ``customer.subscription.updated`` to ``past_due``/``unpaid``: lapsed;
        * ``customer.subscription.updated`` (``cancel_at_period_end``), ``customer.subscription.deleted``: ended.
        """
        if kind.startswith("checkout.session."):
            pass_id = await self.passes.find(pass_id=(obj.get("metadata") or {}).get("pass_id"))
            if pass_id is None:
                return None
            if kind in ("checkout.session.expired", "checkout.session.async_payment_failed"):
                return "declined" if await self.passes.decline(pass_id) else "ignored"
            if kind not in ("checkout.session.completed", "checkout.session.async_payment_succeeded"):
                return "ignored"
            if obj.get("mode") == "subscription":
                if not isinstance(obj.get("subscription"), str):
                    raise Refusal(400, "bad_payload", "the subscription checkout names no subscription")
                await self.passes.link_subscription(pass_id, obj["subscription"])
                return "subscription_linked"
            if obj.get("payment_status") != "paid":
                return "awaiting_payment"
            if not isinstance(obj.get("amount_total"), int) or not isinstance(obj.get("currency"), str):
                raise Refusal(400, "bad_payload", "the checkout session has no amount")
            return await self.passes.charge(pass_id, f"cs:{obj.get('id')}", obj["amount_total"], obj["currency"],
                                            refund_ref=obj.get("payment_intent"))
        if kind.startswith("invoice."):
            subscription, metadata = _invoice_subscription(obj)
            pass_id = await self.passes.find(pass_id=metadata.get("pass_id"), subscription_ref=subscription)
            if pass_id is None:
                return "ignored_unknown_subscription" if subscription else None
            if kind == "invoice.payment_failed":
                return "past_due" if await self.passes.past_due(pass_id) else "already_processed"
            if kind != "invoice.paid":
                return "ignored"
            period_end = _invoice_period_end(obj)
            if (not isinstance(obj.get("id"), str) or not isinstance(obj.get("amount_paid"), int)
                    or not isinstance(obj.get("currency"), str) or period_end is None):
                raise Refusal(400, "bad_payload", "the invoice has no id, amount or period")
            return await self.passes.charge(pass_id, obj["id"], obj["amount_paid"], obj["currency"], period_end,
                                            refund_ref=_invoice_payment(obj), subscription_ref=subscription)
        # customer.subscription.*
        pass_id = await self.passes.find(pass_id=(obj.get("metadata") or {}).get("pass_id"),
                                         subscription_ref=obj.get("id"))
        if pass_id is None:
            return "ignored_unknown_subscription"
        status = obj.get("status")
        if kind == "customer.subscription.deleted" or status in ("canceled", "incomplete_expired"):
            return "ended" if await self.passes.ended(pass_id) else "already_processed"
        if status in ("past_due", "unpaid"):
            return "past_due" if await self.passes.past_due(pass_id) else "already_processed"
        if kind == "customer.subscription.updated":
            await self.passes.set_cancel_at_period_end(pass_id, bool(obj.get("cancel_at_period_end")))
            return "updated"
        return "ignored"


def _invoice_subscription(invoice: Any) -> tuple[Optional[str], dict]:
    """(subscription id, its metadata) of an invoice, in the API versions before and after
    2025-03 (``invoice.subscription`` / ``invoice.parent.subscription_details``)."""
    details = ((invoice.get("parent") or {}).get("subscription_details") or invoice.get("subscription_details") or {})
    subscription = invoice.get("subscription") or details.get("subscription")
    if isinstance(subscription, dict):
        subscription = subscription.get("id")
    return (subscription if isinstance(subscription, str) else None), (details.get("metadata") or {})


def _invoice_period_end(invoice: Any) -> Optional[dt.datetime]:
    """The end of the period an invoice pays: its subscription line's, else the invoice's."""
    lines = ((invoice.get("lines") or {}).get("data") or [])
    ends = [(line.get("period") or {}).get("end") for line in lines if isinstance(line, dict)]
    ends = [e for e in ends if isinstance(e, int) and not isinstance(e, bool)]
    end = max(ends) if ends else invoice.get("period_end")
    if not isinstance(end, int) or isinstance(end, bool):
        return None
    return dt.datetime.fromtimestamp(end, dt.timezone.utc)


def _invoice_payment(invoice: Any) -> Optional[str]:
    """What refunds the invoice: its payment intent (or charge) when the event carries one."""
    for key in ("payment_intent", "charge"):
        value = invoice.get(key)
        if isinstance(value, str):
            return value
    return None
