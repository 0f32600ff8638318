"""A local stand-in for Stripe: the SDK's calls we make go to ``FakeStripe`` (never the
network), and webhooks are built and signed the way Stripe builds and signs them
(``t=<unix>,v1=<HMAC-SHA256(secret, "t.payload")>``, events ``{id, object: "event", type,
data: {object}}``), and the rows they leave are read back.

``stripe_app`` is a fixture: import it into the test module that uses it. When that module
also has an ``events`` fixture whose value is ``"dicts"``, the verified event is rebuilt
with ``to_dict()`` before the webhook logic sees it (tests/paywall/test_paywall_stripe.py)."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import secrets
import time
from types import SimpleNamespace
from typing import Any, Optional

import pytest
import stripe
from sqlalchemy import func, select

from paywall.http import PAYWALL
from paywall.models import LedgerEntry, Order, WebhookEvent
from paywall.providers import StripeProvider
from stagepass.app import create_app
from tests.support.paywall_fixtures import Api, paywall_settings

SECRET = "whsec_test_secret"
PRICE = 990  # paid_room's ticket price (USD cents)
FEE = PRICE * 1000 // 10_000  # default platform fee: 10 %


class FakeStripe:
    """Stands in for ``client.v1.checkout.sessions.create_async``, ``client.v1.refunds.create_async``
    and ``client.v1.subscriptions.update_async``/``cancel_async``."""

    def __init__(self) -> None:
        self.sessions: list[dict] = []
        self.refunds: list[dict] = []
        self.subscription_calls: list[tuple[str, str, Any]] = []
        self.fail_checkout: Optional[Exception] = None
        self.fail_refund: Optional[Exception] = None
        self._n = itertools.count(1)

    def install(self, client: stripe.StripeClient, monkeypatch) -> "FakeStripe":
        """Route ``client``'s calls here; any other request of the SDK fails the test."""
        monkeypatch.setattr(client.v1.checkout.sessions, "create_async", self.create_session)
        monkeypatch.setattr(client.v1.refunds, "create_async", self.create_refund)
        monkeypatch.setattr(client.v1.subscriptions, "update_async", self.update_subscription)
        monkeypatch.setattr(client.v1.subscriptions, "cancel_async", self.cancel_subscription)
        from stripe._api_requestor import _APIRequestor

        monkeypatch.setattr(_APIRequestor, "request_raw_async", _no_network)
        monkeypatch.setattr(_APIRequestor, "request_raw", _no_network)
        return self

    async def create_session(self, params: Any = None, options: Any = None) -> Any:
        self.sessions.append({"params": params, "options": options})
        if self.fail_checkout is not None:
            raise self.fail_checkout
        sid = f"cs_test_{next(self._n):04d}{secrets.token_hex(4)}"
        return SimpleNamespace(id=sid, url=f"https://checkout.stripe.com/c/pay/{sid}", object="checkout.session")

    async def create_refund(self, params: Any = None, options: Any = None) -> Any:
        self.refunds.append({"params": params, "options": options})
        if self.fail_refund is not None:
            raise self.fail_refund
        return SimpleNamespace(id=f"re_test_{next(self._n):04d}", status="succeeded", object="refund")

    async def update_subscription(self, sid: str, params: Any = None, options: Any = None) -> Any:
        self.subscription_calls.append(("update", sid, params))
        return SimpleNamespace(id=sid, object="subscription", status="active", **(params or {}))

    async def cancel_subscription(self, sid: str, params: Any = None, options: Any = None) -> Any:
        self.subscription_calls.append(("cancel", sid, params))
        return SimpleNamespace(id=sid, object="subscription", status="canceled")


def _no_network(*args, **kwargs):
    raise AssertionError("the Stripe SDK tried to reach the network")


def sign(payload: bytes, secret: str = SECRET, t: Optional[int] = None) -> str:
    t = int(time.time()) if t is None else t
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def event(kind: str, obj: dict, event_id: Optional[str] = None) -> bytes:
    body = {
        "id": event_id or f"evt_test_{secrets.token_hex(8)}", "object": "event", "api_version": "2024-06-20",
        "created": int(time.time()), "livemode": False, "type": kind, "data": {"object": obj},
    }
    return json.dumps(body).encode()


async def deliver(base: str, payload: bytes, signature: Optional[str] = "sign") -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if signature == "sign":
        signature = sign(payload)
    if signature is not None:
        headers["Stripe-Signature"] = signature
    return await Api(base).post("/webhooks/stripe", raw=payload, headers=headers, token=None)


@pytest.fixture
async def stripe_app(aiohttp_server, tmp_path, database_url, monkeypatch, request):
    """(base_url, app, fake) of a server whose payment provider is Stripe, faked locally."""
    settings = paywall_settings(tmp_path, database_url, payment_provider="stripe",
                                stripe_api_key="sk_test_x", stripe_webhook_secret=SECRET)
    app = create_app(settings)
    server = await aiohttp_server(app)
    provider = app[PAYWALL].provider
    assert isinstance(provider, StripeProvider) and provider.name == "stripe"
    assert isinstance(provider.client, stripe.StripeClient)
    assert app[PAYWALL].orders.provider is provider
    fake = FakeStripe().install(provider.client, monkeypatch)
    if "events" in request.fixturenames and request.getfixturevalue("events") == "dicts":
        verify = provider.verify_event

        def verify_as_dicts(payload: bytes, signature: Optional[str]) -> Any:
            event = verify(payload, signature)  # the real signature check
            return event if isinstance(event, dict) else event.to_dict()

        monkeypatch.setattr(provider, "verify_event", verify_as_dicts)
    yield str(server.make_url("")).rstrip("/"), app, fake


def session_completed(order: dict, amount: Optional[int] = None, currency: Optional[str] = None,
                      payment_intent: str = "pi_test_1", payment_status: str = "paid", **extra) -> dict:
    return {
        "id": order["_session_id"], "object": "checkout.session", "mode": "payment",
        "client_reference_id": order["id"], "metadata": {"order_id": order["id"]},
        "payment_status": payment_status, "status": "complete",
        "amount_total": order["amount"] if amount is None else amount,
        "currency": (currency or order["currency"]).lower(), "payment_intent": payment_intent, **extra,
    }


def charge_refunded(payment_intent: str, amount: int = PRICE, refunded: Optional[int] = None) -> dict:
    return {
        "id": f"ch_test_{secrets.token_hex(6)}", "object": "charge", "amount": amount,
        "amount_refunded": amount if refunded is None else refunded, "refunded": refunded in (None, amount),
        "currency": "usd", "payment_intent": payment_intent,
    }


async def order_row(app, order_id: str) -> Order:
    async with app[PAYWALL].db() as s:
        return await s.get(Order, order_id)


async def ledger_rows(app, order_id: str) -> list[tuple[str, int, str]]:
    async with app[PAYWALL].db() as s:
        rows = (await s.execute(select(LedgerEntry).where(LedgerEntry.order_id == order_id)
                                .order_by(LedgerEntry.id))).scalars().all()
    return [(r.account, r.amount, r.kind) for r in rows]


async def webhook_count(app) -> int:
    async with app[PAYWALL].db() as s:
        return (await s.execute(select(func.count()).select_from(WebhookEvent))).scalar_one()


def balances(ledger: dict) -> dict:
    return {(a["account"], a["currency"]): a["balance"] for a in ledger["accounts"]}
