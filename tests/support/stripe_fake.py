"""A local stand-in for Stripe: the SDK's calls we make go to ``FakeStripe`` (never the
network), and webhooks are built and signed the way Stripe builds and signs them
(``t=<unix>,v1=<HMAC-SHA256(secret, "t.payload")>``, events ``{id, object: "event", type,
data: {object}}``)."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import secrets
import time
from types import SimpleNamespace
from typing import Any, Optional

import stripe

from tests.support.paywall_fixtures import Api

SECRET = "whsec_test_secret"


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
