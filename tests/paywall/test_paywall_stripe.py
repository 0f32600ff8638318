"""Stripe, with no network: Checkout Sessions and refunds go to local fakes, webhooks are
signed here with Stripe's scheme (``t=<unix>,v1=<HMAC-SHA256(secret, "t.payload")>``).

Runs on SQLite and PostgreSQL (the ``database_url`` fixture).

The main webhook tests run twice (the ``events`` fixture):

* ``sdk``: the server exactly as it is;
* ``dicts``: the verified event (real signature check) rebuilt from the Stripe SDK's
  ``construct_event(...).to_dict()`` before the webhook logic sees it (a regression
  guard: stripe>=15 objects are not dicts, which once made every webhook answer 500).

The other webhook tests use ``dicts`` only.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
import stripe

from stagepass.app import create_app
from paywall.http import PAYWALL
from core.access import Refusal, Target
from tests.support.paywall_fixtures import Api, admin_of, paid_room, paywall_settings
from tests.support.stripe_fake import (  # noqa: F401  (stripe_app: fixture)
    FEE, PRICE, FakeStripe, balances, charge_refunded, deliver, event, ledger_rows, order_row,
    session_completed, sign, stripe_app, webhook_count,
)

pytestmark = pytest.mark.inprocess

EVENTS = ["dicts", "sdk"]


@pytest.fixture(params=EVENTS)
def events(request) -> str:
    return request.param


# ---------------------------------------------------------------------- helpers
async def setup(base: str, app, fake: FakeStripe) -> SimpleNamespace:
    """A creator's paid room and a viewer with a pending Stripe order for its ticket."""
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator)
    viewer = await Api.sign_up(base, "viewer")
    key = secrets.token_hex(8)
    status, resp = await viewer.post("/api/orders", {"room": "maths", "product": "ticket", "idempotency_key": key})
    assert status == 201, resp
    order = resp["order"]
    order["_session_id"] = (await order_row(app, order["id"])).provider_ref
    return SimpleNamespace(creator=creator, viewer=viewer, order=order, key=key)


async def mint(viewer: Api) -> tuple[int, Any]:
    return await viewer.post("/api/rooms/maths/tokens", {"scope": "view"})


# ---------------------------------------------------------------------- checkout
async def test_checkout_session_carries_the_order(stripe_app):
    base, app, fake = stripe_app
    t = await setup(base, app, fake)
    order = t.order
    assert order["status"] == "pending" and order["provider"] == "stripe"
    assert (order["amount"], order["currency"]) == (PRICE, "USD")

    assert len(fake.sessions) == 1
    call = fake.sessions[0]
    params, options = call["params"], call["options"]
    assert params["mode"] == "payment"
    assert params["client_reference_id"] == order["id"]
    assert params["metadata"] == {"order_id": order["id"]}
    [item] = params["line_items"]
    assert item["quantity"] == 1
    assert item["price_data"]["unit_amount"] == PRICE  # minor units
    assert item["price_data"]["currency"] == "usd"  # Stripe wants lowercase
    assert "Live maths" in item["price_data"]["product_data"]["name"]
    assert params["success_url"].startswith(base) and order["id"] in params["success_url"]
    assert params["cancel_url"].startswith(base)
    assert order["id"] in options["idempotency_key"]

    # the buyer is sent to the session's URL; the session id is kept to match webhooks
    assert order["checkout_url"] == f"https://checkout.stripe.com/c/pay/{order['_session_id']}"
    assert order["_session_id"].startswith("cs_test_")
    assert await app[PAYWALL].orders.find_by_ref(provider_ref=order["_session_id"]) == order["id"]

    # a double click (same idempotency key) starts no second session
    status, again = await t.viewer.post("/api/orders", {"room": "maths", "product": "ticket", "idempotency_key": t.key})
    assert status == 200 and again["order"]["id"] == order["id"]
    assert again["order"]["checkout_url"] == order["checkout_url"]
    assert len(fake.sessions) == 1

    # no ticket until Stripe says it is paid; the dev checkout does not exist
    status, body = await mint(t.viewer)
    assert (status, body["error"]["code"]) == (402, "ticket_required")
    status, _ = await t.viewer.post(f"/pay/dev/{order['id']}", {"action": "confirm"})
    assert status == 404
    assert (await order_row(app, order["id"])).status == "pending"


async def test_stripe_sends_the_buyer_back_to_a_page_that_exists(stripe_app):
    base, app, fake = stripe_app
    await setup(base, app, fake)
    params = fake.sessions[0]["params"]
    async with aiohttp.ClientSession() as http:
        for url in (params["success_url"], params["cancel_url"]):
            async with http.get(url) as r:  # redirects followed
                assert r.status == 200, f"{url} -> {r.status}"
                assert r.content_type == "text/html"


async def test_stripe_refusing_the_checkout_is_502(stripe_app):
    base, app, fake = stripe_app
    fake.fail_checkout = stripe.APIConnectionError("connection refused")
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator)
    viewer = await Api.sign_up(base, "viewer")
    status, body = await viewer.post("/api/orders", {"room": "maths", "product": "ticket",
                                                     "idempotency_key": secrets.token_hex(8)})
    assert (status, body["error"]["code"]) == (502, "provider_error")
    status, body = await mint(viewer)
    assert status == 402


async def test_retrying_after_a_failed_checkout_gets_a_checkout(stripe_app):
    base, app, fake = stripe_app
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator)
    viewer = await Api.sign_up(base, "viewer")
    request = {"room": "maths", "product": "ticket", "idempotency_key": secrets.token_hex(8)}
    fake.fail_checkout = stripe.APIConnectionError("connection refused")
    status, _ = await viewer.post("/api/orders", request)
    assert status == 502
    fake.fail_checkout = None  # Stripe is back; the client retries the same request
    status, body = await viewer.post("/api/orders", request)
    assert status in (200, 201), body
    assert body["order"]["status"] == "pending"
    assert body["order"]["checkout_url"], "a pending order with no way to pay it"


# ---------------------------------------------------------------------- webhooks
async def test_completed_checkout_pays_once(stripe_app, events):
    base, app, fake = stripe_app
    t = await setup(base, app, fake)
    boss = await admin_of(base, app)
    payload = event("checkout.session.completed", session_completed(t.order, payment_intent="pi_test_paid"))

    status, body = await deliver(base, payload)
    assert status == 200, body
    assert body == {"received": True, "outcome": "paid"}
    row = await order_row(app, t.order["id"])
    assert (row.status, row.payment_ref) == ("paid", "pi_test_paid")
    status, minted = await mint(t.viewer)
    assert status == 201 and minted["token"] and minted["preview_until"] is None
    status, got = await t.viewer.get(f"/api/orders/{t.order['id']}")
    assert got["order"]["status"] == "paid" and got["order"]["checkout_url"] is None

    creator_acct = f"creator:{t.creator.user['id']}"
    one_payment = [("cash:stripe", PRICE, "payment"), ("platform:fees", -FEE, "payment"),
                   (creator_acct, -(PRICE - FEE), "payment")]
    assert sorted(await ledger_rows(app, t.order["id"])) == sorted(one_payment)

    # Stripe delivers at least once: the same event again changes nothing
    for _ in range(2):
        status, body = await deliver(base, payload)
        assert status == 200 and body["outcome"] == "duplicate"
    # a different event for the same session (e.g. async_payment_succeeded) neither
    completed_again = event("checkout.session.async_payment_succeeded",
                            session_completed(t.order, payment_intent="pi_test_paid"))
    status, body = await deliver(base, completed_again)
    assert status == 200 and body["outcome"] == "already_processed"

    assert sorted(await ledger_rows(app, t.order["id"])) == sorted(one_payment)
    row = await order_row(app, t.order["id"])
    assert (row.status, row.payment_ref) == ("paid", "pi_test_paid")
    status, ledger = await boss.get("/api/admin/ledger")
    assert status == 200 and ledger["balanced"] is True and ledger["unbalanced_orders"] == []
    assert balances(ledger) == {("cash:stripe", "USD"): PRICE, ("platform:fees", "USD"): -FEE,
                                (creator_acct, "USD"): -(PRICE - FEE)}
    status, earnings = await t.creator.get("/api/creator/earnings")
    assert earnings["earnings"] == [{"room": "maths", "currency": "USD", "earned": PRICE - FEE, "orders": 1}]


@pytest.mark.parametrize("events", ["dicts"])
async def test_concurrent_deliveries_of_one_event_pay_once(stripe_app, events):
    base, app, fake = stripe_app
    t = await setup(base, app, fake)
    payload = event("checkout.session.completed", session_completed(t.order))
    results = await asyncio.gather(*(deliver(base, payload) for _ in range(4)))
    assert [s for s, _ in results] == [200] * 4, results
    outcomes = sorted(b["outcome"] for _, b in results)
    assert outcomes.count("paid") == 1, outcomes
    assert set(outcomes) <= {"paid", "duplicate", "already_processed"}
    assert len(await ledger_rows(app, t.order["id"])) == 3
    assert (await order_row(app, t.order["id"])).status == "paid"


@pytest.mark.parametrize("events", ["dicts"])
async def test_unpaid_and_expired_sessions(stripe_app, events):
    base, app, fake = stripe_app
    t = await setup(base, app, fake)
    status, body = await deliver(base, event("checkout.session.completed",
                                             session_completed(t.order, payment_status="unpaid")))
    assert (status, body["outcome"]) == (200, "awaiting_payment")
    assert (await order_row(app, t.order["id"])).status == "pending"
    status, body = await deliver(base, event("checkout.session.expired",
                                             session_completed(t.order, payment_status="unpaid", status="expired")))
    assert (status, body["outcome"]) == (200, "declined")
    assert (await order_row(app, t.order["id"])).status == "declined"
    # paid after it was declined: not applied
    status, body = await deliver(base, event("checkout.session.completed", session_completed(t.order)))
    assert (status, body["outcome"]) == (200, "already_processed")
    assert (await order_row(app, t.order["id"])).status == "declined"
    assert await ledger_rows(app, t.order["id"]) == []


MISMATCHES = [{"amount": 1}, {"amount": PRICE + 1}, {"currency": "eur"}]


async def test_payment_not_matching_the_order_is_409(stripe_app, events):
    base, app, fake = stripe_app
    t = await setup(base, app, fake)
    for change in MISMATCHES:
        payload = event("checkout.session.completed", session_completed(t.order, **change))
        status, body = await deliver(base, payload)
        assert status == 409 and body["error"]["code"] == "amount_mismatch", (change, body)
        row = await order_row(app, t.order["id"])
        assert (row.status, row.payment_ref) == ("pending", None), change
    assert await ledger_rows(app, t.order["id"]) == []
    assert await webhook_count(app) == 0  # not recorded: a corrected delivery may still apply
    status, _ = await mint(t.viewer)
    assert status == 402
    # the right amount still pays
    status, body = await deliver(base, event("checkout.session.completed", session_completed(t.order)))
    assert (status, body["outcome"]) == (200, "paid")


def _tampered(payload: bytes) -> tuple[bytes, str]:
    signature = sign(payload)
    return payload.replace(b'"payment_status": "paid"', b'"payment_status": "paid" '), signature


UNVERIFIED = {  # case: expected error code
    "wrong_secret": "bad_signature", "tampered_body": "bad_signature", "stale": "bad_signature",
    "missing": "missing_signature", "empty": "missing_signature", "garbage": "bad_signature",
    "no_v1": "bad_signature", "not_json": "bad_payload",
}


async def test_unverified_webhooks_are_400_and_change_nothing(stripe_app):
    base, app, fake = stripe_app
    t = await setup(base, app, fake)
    for case, code in UNVERIFIED.items():
        payload = event("checkout.session.completed", session_completed(t.order))
        now = int(time.time())
        if case == "wrong_secret":
            signature = sign(payload, secret="whsec_someone_else")
        elif case == "tampered_body":
            payload, signature = _tampered(payload)
        elif case == "stale":
            signature = sign(payload, t=now - 600)  # 10 minutes old; the tolerance is 5
        elif case == "missing":
            signature = None
        elif case == "empty":
            signature = ""
        elif case == "garbage":
            signature = "this is not a signature"
        elif case == "no_v1":
            signature = sign(payload).replace("v1=", "v0=")
        else:  # correctly signed, but not an event
            payload = b"{not json"
            signature = sign(payload)
        status, body = await deliver(base, payload, signature)
        assert (status, body["error"]["code"]) == (400, code), (case, body)
        row = await order_row(app, t.order["id"])
        assert (row.status, row.payment_ref) == ("pending", None), case
    assert await webhook_count(app) == 0
    status, _ = await mint(t.viewer)
    assert status == 402


async def test_webhook_404_without_stripe(aiohttp_server, tmp_path, database_url):
    app = create_app(paywall_settings(tmp_path, database_url))  # the dev provider
    server = await aiohttp_server(app)
    base = str(server.make_url("")).rstrip("/")
    payload = event("checkout.session.completed", {"client_reference_id": "x"})
    status, body = await deliver(base, payload)
    assert status == 404


async def _pay(base: str, app, t, payment_intent: str) -> None:
    status, body = await deliver(base, event("checkout.session.completed",
                                             session_completed(t.order, payment_intent=payment_intent)))
    assert (status, body.get("outcome")) == (200, "paid"), body


async def _assert_refunded(base: str, app, t, boss: Api) -> None:
    row = await order_row(app, t.order["id"])
    assert row.status == "refunded" and row.refunded_at is not None
    status, body = await mint(t.viewer)
    assert (status, body["error"]["code"]) == (402, "ticket_required")
    status, ledger = await boss.get("/api/admin/ledger")
    assert ledger["balanced"] is True and ledger["unbalanced_orders"] == []
    assert set(balances(ledger).values()) == {0}
    rows = await ledger_rows(app, t.order["id"])
    assert len(rows) == 6 and sum(amount for _, amount, _ in rows) == 0
    assert sorted(kind for *_, kind in rows) == ["payment"] * 3 + ["refund"] * 3
    status, earnings = await t.creator.get("/api/creator/earnings")
    assert earnings["earnings"] == [{"room": "maths", "currency": "USD", "earned": 0, "orders": 1}]


async def test_charge_refunded_webhook_revokes_the_ticket(stripe_app, events):
    base, app, fake = stripe_app
    t = await setup(base, app, fake)
    boss = await admin_of(base, app)
    await _pay(base, app, t, "pi_test_refund_me")
    status, minted = await mint(t.viewer)
    assert status == 201
    old_token = minted["token"]

    # a partial refund leaves the ticket alone
    status, body = await deliver(base, event("charge.refunded", charge_refunded("pi_test_refund_me", refunded=100)))
    assert (status, body["outcome"]) == (200, "partial_refund_ignored")
    assert (await order_row(app, t.order["id"])).status == "paid"

    refund = event("charge.refunded", charge_refunded("pi_test_refund_me"))
    status, body = await deliver(base, refund)
    assert (status, body["outcome"]) == (200, "refunded")
    await _assert_refunded(base, app, t, boss)
    # a token minted before the refund no longer opens the room
    with pytest.raises(Refusal) as denied:
        await app[PAYWALL].access.authorize(old_token, "view", Target("maths"))
    assert (denied.value.status, denied.value.code) == (403, "ticket_required")

    status, body = await deliver(base, refund)
    assert (status, body["outcome"]) == (200, "duplicate")
    await _assert_refunded(base, app, t, boss)
    assert fake.refunds == []  # Stripe told us; we did not call it

    # a refund of a payment nobody knows is refused (Stripe will retry; visible in its dashboard)
    status, body = await deliver(base, event("charge.refunded", charge_refunded("pi_test_unknown")))
    assert status == 400 and body["error"]["code"] == "unknown_order"


@pytest.mark.parametrize("events", ["dicts"])
async def test_creator_refund_calls_stripe(stripe_app, events):
    base, app, fake = stripe_app
    t = await setup(base, app, fake)
    boss = await admin_of(base, app)
    await _pay(base, app, t, "pi_test_creator_refund")

    # the buyer cannot refund themselves; a stranger does not even see the order
    status, body = await t.viewer.post(f"/api/orders/{t.order['id']}/refund")
    assert (status, body["error"]["code"]) == (403, "not_allowed")
    stranger = await Api.sign_up(base, "creator")
    status, body = await stranger.post(f"/api/orders/{t.order['id']}/refund")
    assert status == 404
    assert fake.refunds == []

    # Stripe refuses: 502, and nothing changes here
    fake.fail_refund = stripe.APIConnectionError("connection reset")
    status, body = await t.creator.post(f"/api/orders/{t.order['id']}/refund")
    assert (status, body["error"]["code"]) == (502, "provider_error")
    assert (await order_row(app, t.order["id"])).status == "paid"
    assert len(await ledger_rows(app, t.order["id"])) == 3
    status, _ = await mint(t.viewer)
    assert status == 201
    fake.fail_refund = None
    fake.refunds.clear()

    status, body = await t.creator.post(f"/api/orders/{t.order['id']}/refund")
    assert status == 200, body
    assert body["order"]["status"] == "refunded"
    assert len(fake.refunds) == 1
    call = fake.refunds[0]
    assert call["params"] == {"payment_intent": "pi_test_creator_refund"}
    assert t.order["id"] in call["options"]["idempotency_key"]
    await _assert_refunded(base, app, t, boss)

    # refunding again is refused without calling Stripe
    status, body = await t.creator.post(f"/api/orders/{t.order['id']}/refund")
    assert (status, body["error"]["code"]) == (409, "not_refundable")
    assert len(fake.refunds) == 1

    # Stripe then confirms with charge.refunded: already done, nothing more
    status, body = await deliver(base, event("charge.refunded", charge_refunded("pi_test_creator_refund")))
    assert (status, body["outcome"]) == (200, "already_processed")
    await _assert_refunded(base, app, t, boss)
