"""Payment providers behind one interface: ``dev`` (embedded default) and ``stripe``.

A provider starts a checkout for a pending order and refunds a paid one; the same for
passes (``paywall.passes``): a series is paid once, a subscription renews each period
until it is cancelled. Completion and renewals arrive separately: the dev checkout page's
buttons, or Stripe's signed webhooks.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Protocol

import stripe

from core.access import Refusal
from .request_body import parse_json

__all__ = ["Checkout", "DevProvider", "PaymentProvider", "StripeProvider"]


@contextlib.contextmanager
def refused_by_stripe(what: str) -> Iterator[None]:
    """A Stripe error in the block reaches the buyer as ``502 provider_error``, "Stripe
    refused ``what``" and Stripe's message for users (never the SDK's traceback)."""
    try:
        yield
    except stripe.StripeError as exc:
        raise Refusal(502, "provider_error", f"Stripe refused {what}: {exc.user_message or exc}") from None


@dataclass
class Checkout:
    url: str
    provider_ref: Optional[str] = None


class PaymentProvider(Protocol):
    name: str

    async def start_checkout(self, order: Any, title: str, base_url: str) -> Checkout: ...

    async def refund(self, order: Any) -> None: ...

    async def start_pass_checkout(self, pass_: Any, title: str, base_url: str) -> Checkout: ...

    async def refund_charge(self, charge: Any) -> None: ...

    async def cancel_subscription(self, pass_: Any, at_period_end: bool) -> None: ...


class DevProvider:
    """Test mode: a local page where the buyer confirms or declines; no money moves."""

    name = "dev"

    async def start_checkout(self, order: Any, title: str, base_url: str) -> Checkout:
        return Checkout(url=f"{base_url}/pay/dev/{order.id}")

    async def refund(self, order: Any) -> None:
        return None

    async def start_pass_checkout(self, pass_: Any, title: str, base_url: str) -> Checkout:
        return Checkout(url=f"{base_url}/pay/dev/passes/{pass_.id}")

    async def refund_charge(self, charge: Any) -> None:
        return None

    async def cancel_subscription(self, pass_: Any, at_period_end: bool) -> None:
        return None


class StripeProvider:
    """Stripe Checkout Sessions; completion and refunds confirmed by verified webhooks."""

    name = "stripe"

    def __init__(self, api_key: str, webhook_secret: str, tolerance: int = 300,
                 client: Optional[stripe.StripeClient] = None) -> None:
        self.webhook_secret = webhook_secret
        self.tolerance = tolerance
        self.client = client or stripe.StripeClient(api_key)

    async def start_checkout(self, order: Any, title: str, base_url: str) -> Checkout:
        with refused_by_stripe("the checkout"):
            session = await self.client.v1.checkout.sessions.create_async(
                params={
                    "mode": "payment",
                    "client_reference_id": order.id,
                    "metadata": {"order_id": order.id},
                    "line_items": [{
                        "quantity": 1,
                        "price_data": {
                            "currency": order.currency.lower(),
                            "unit_amount": order.amount,
                            "product_data": {"name": f"{title} ({order.product})"},
                        },
                    }],
                    "success_url": f"{base_url}/static/room.html?room={order.room}&order={order.id}&paid=1",
                    "cancel_url": f"{base_url}/static/room.html?room={order.room}&order={order.id}&cancelled=1",
                },
                options={"idempotency_key": f"stagepass-order-{order.id}"},
            )
        return Checkout(url=session.url, provider_ref=session.id)

    async def refund(self, order: Any) -> None:
        if not order.payment_ref:
            raise Refusal(409, "not_refundable", "no Stripe payment is known for this order")
        with refused_by_stripe("the refund"):
            await self.client.v1.refunds.create_async(
                params={"payment_intent": order.payment_ref},
                options={"idempotency_key": f"stagepass-refund-{order.id}"},
            )

    async def start_pass_checkout(self, pass_: Any, title: str, base_url: str) -> Checkout:
        """A Checkout Session for a pass: ``mode=subscription`` with a recurring price for a
        subscription (Stripe Billing renews it and sends ``invoice.paid`` each period), else
        ``mode=payment``. The pass id rides in the session's and the subscription's metadata."""
        price: dict = {"currency": pass_.currency.lower(), "unit_amount": pass_.amount, "product_data": {"name": title}}
        params: dict = {
            "client_reference_id": pass_.id,
            "metadata": {"pass_id": pass_.id},
            "line_items": [{"quantity": 1, "price_data": price}],
            "success_url": f"{base_url}/static/creator.html?id={pass_.creator_id}&pass={pass_.id}&paid=1",
            "cancel_url": f"{base_url}/static/creator.html?id={pass_.creator_id}&pass={pass_.id}&cancelled=1",
        }
        if pass_.interval:
            price["recurring"] = {"interval": pass_.interval}
            params["mode"] = "subscription"
            params["subscription_data"] = {"metadata": {"pass_id": pass_.id}}
        else:
            params["mode"] = "payment"
        with refused_by_stripe("the checkout"):
            session = await self.client.v1.checkout.sessions.create_async(
                params=params, options={"idempotency_key": f"stagepass-pass-{pass_.id}"})
        return Checkout(url=session.url, provider_ref=session.id)

    async def refund_charge(self, charge: Any) -> None:
        if not charge.refund_ref:
            raise Refusal(409, "not_refundable", "no Stripe payment is known for this charge")
        target = {"charge": charge.refund_ref} if charge.refund_ref.startswith(("ch_", "py_")) else {
            "payment_intent": charge.refund_ref}
        with refused_by_stripe("the refund"):
            await self.client.v1.refunds.create_async(
                params=target, options={"idempotency_key": f"stagepass-refund-{charge.id}"})

    async def cancel_subscription(self, pass_: Any, at_period_end: bool) -> None:
        """At the period's end (the holder keeps what they paid for), or at once (a refund)."""
        if not pass_.subscription_ref:
            return  # the checkout never completed: there is nothing to cancel at Stripe
        with refused_by_stripe("to cancel"):
            if at_period_end:
                await self.client.v1.subscriptions.update_async(
                    pass_.subscription_ref, params={"cancel_at_period_end": True})
            else:
                await self.client.v1.subscriptions.cancel_async(pass_.subscription_ref)

    def verify_event(self, payload: bytes, signature: Optional[str]) -> dict:
        """Stripe's signature scheme (HMAC-SHA256 over ``t.payload``, tolerance window).

        Returns the event as plain JSON (dicts), whatever the SDK's object model is."""
        if not signature:
            raise Refusal(400, "missing_signature", "no Stripe-Signature header")
        try:
            stripe.WebhookSignature.verify_header(payload, signature, self.webhook_secret, self.tolerance)
        except stripe.SignatureVerificationError as exc:
            raise Refusal(400, "bad_signature", f"webhook signature rejected: {exc.user_message or exc}") from None
        try:
            event = parse_json(payload)
        except Refusal:
            raise Refusal(400, "bad_payload", "webhook body is not a Stripe event") from None
        if not isinstance(event, dict) or not isinstance(event.get("data"), dict) or "id" not in event:
            raise Refusal(400, "bad_payload", "webhook body is not a Stripe event")
        return event
