"""``Webhooks``: payment provider events, each processed once per event id.

The signature is checked by the provider adapter before this runs. Each outcome is
idempotent in itself (conditional status updates), and the event id is recorded after
processing, so a replayed event, or two deliveries racing, change nothing more.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.exc import IntegrityError

from .db import Database
from core.access import Refusal
from .models import WebhookEvent
from .orders import OrderBook

__all__ = ["Webhooks"]

log = logging.getLogger("stagepass.webhooks")


class Webhooks:
    def __init__(self, db: Database, orders: OrderBook) -> None:
        self.db = db
        self.orders = orders

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
            if order_id is None:
                raise Refusal(400, "unknown_order", "no order for this payment")
            return "refunded" if await self.orders.mark_refunded(order_id) else "already_processed"
        return "ignored"
