"""One ticket, paid twice (two tabs, two pending orders): the second payment is refused
(dev checkout) or refunded at once (Stripe); one ticket, the ledger balanced, and the
buyer's first ticket keeps working. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from paywall.http import PAYWALL
from paywall.models import Entitlement
from tests.support.paywall_fixtures import Api, admin_of, paid_room, pending_order
from tests.support.stripe_fake import (  # noqa: F401  (stripe_app is a fixture)
    FEE, PRICE, balances, deliver, event, ledger_rows, order_row, session_completed, stripe_app,
)

pytestmark = pytest.mark.inprocess


async def active_entitlements(app, user_id: int) -> list[tuple[str, str]]:
    async with app[PAYWALL].db() as s:
        rows = (await s.execute(select(Entitlement.kind, Entitlement.order_id)
                                .where(Entitlement.user_id == user_id, Entitlement.active))).all()
    return sorted((kind, order) for kind, order in rows)


async def test_dev_checkout_refuses_the_second_payment(paywall_app):
    base, app = paywall_app
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator)
    viewer = await Api.sign_up(base)
    first, second, bundle = await pending_order(viewer), await pending_order(viewer), await pending_order(viewer, product="bundle")
    assert (await viewer.post(f"/pay/dev/{first['id']}", {"action": "confirm"}))[0] == 200
    for order in (second, bundle):  # a bundle would also grant the ticket held already
        status, body = await viewer.post(f"/pay/dev/{order['id']}", {"action": "confirm"})
        assert (status, body["error"]["code"]) == (409, "already_owned"), body
        assert (await viewer.get(f"/api/orders/{order['id']}"))[1]["order"]["status"] == "declined"
    assert await active_entitlements(app, viewer.user["id"]) == [("ticket", first["id"])]
    status, ledger = await (await admin_of(base, app)).get("/api/admin/ledger")
    assert ledger["balanced"] and balances(ledger)[("cash:dev", "USD")] == PRICE
    # the buyer still watches on the first ticket
    assert (await viewer.post("/api/rooms/maths/tokens", {"scope": "view"}))[0] == 201


async def test_two_tabs_confirming_at_once_pay_once(paywall_app):
    base, app = paywall_app
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator)
    viewer = await Api.sign_up(base)
    orders = [await pending_order(viewer) for _ in range(4)]
    results = await asyncio.gather(*(viewer.post(f"/pay/dev/{o['id']}", {"action": "confirm"}) for o in orders))
    statuses = sorted(status for status, _ in results)
    assert statuses == [200, 409, 409, 409], results
    assert {body["error"]["code"] for status, body in results if status == 409} == {"already_owned"}
    paid = [body["order"]["id"] for status, body in results if status == 200]
    assert await active_entitlements(app, viewer.user["id"]) == [("ticket", paid[0])]
    status, ledger = await (await admin_of(base, app)).get("/api/admin/ledger")
    assert ledger["balanced"] and balances(ledger)[("cash:dev", "USD")] == PRICE


async def _stripe_orders(base: str, app, n: int) -> tuple[Api, Api, list[dict]]:
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator)
    viewer = await Api.sign_up(base)
    orders = []
    for _ in range(n):
        order = await pending_order(viewer)
        order["_session_id"] = (await order_row(app, order["id"])).provider_ref
        orders.append(order)
    return creator, viewer, orders


async def test_stripe_refunds_the_second_payment(stripe_app):
    base, app, fake = stripe_app
    creator, viewer, (first, second) = await _stripe_orders(base, app, 2)
    status, body = await deliver(base, event("checkout.session.completed", session_completed(first, payment_intent="pi_1")))
    assert (status, body["outcome"]) == (200, "paid")
    status, body = await deliver(base, event("checkout.session.completed", session_completed(second, payment_intent="pi_2")))
    assert (status, body["outcome"]) == (200, "refunded_duplicate"), body
    assert [r["params"] for r in fake.refunds] == [{"payment_intent": "pi_2"}]
    assert (await order_row(app, second["id"])).status == "refunded"
    assert (await order_row(app, first["id"])).status == "paid"
    assert await active_entitlements(app, viewer.user["id"]) == [("ticket", first["id"])]
    creator_acct = f"creator:{creator.user['id']}"
    legs = await ledger_rows(app, second["id"])
    assert sorted(legs) == sorted([("cash:stripe", PRICE, "payment"), ("platform:fees", -FEE, "payment"),
                                   (creator_acct, -(PRICE - FEE), "payment"), ("cash:stripe", -PRICE, "refund"),
                                   ("platform:fees", FEE, "refund"), (creator_acct, PRICE - FEE, "refund")])
    status, ledger = await (await admin_of(base, app)).get("/api/admin/ledger")
    assert ledger["balanced"] and balances(ledger)[("cash:stripe", "USD")] == PRICE
    # the ticket bought first still plays (the refund of the duplicate revoked nothing)
    assert (await viewer.post("/api/rooms/maths/tokens", {"scope": "view"}))[0] == 201
    # Stripe's charge.refunded for our own refund changes nothing more
    refunded = {"id": "ch_2", "object": "charge", "amount": PRICE, "amount_refunded": PRICE, "refunded": True,
                "currency": "usd", "payment_intent": "pi_2"}
    status, body = await deliver(base, event("charge.refunded", refunded))
    assert (status, body["outcome"]) == (200, "already_processed")
    assert await active_entitlements(app, viewer.user["id"]) == [("ticket", first["id"])]


async def test_stripe_concurrent_webhooks_of_two_orders_keep_one_ticket(stripe_app):
    base, app, fake = stripe_app
    creator, viewer, orders = await _stripe_orders(base, app, 3)
    payloads = [event("checkout.session.completed", session_completed(o, payment_intent=f"pi_{i}"))
                for i, o in enumerate(orders)]
    results = await asyncio.gather(*(deliver(base, p) for p in payloads))
    outcomes = sorted(body["outcome"] for _, body in results)
    assert outcomes == ["paid", "refunded_duplicate", "refunded_duplicate"], results
    assert len(fake.refunds) == 2
    held = await active_entitlements(app, viewer.user["id"])
    assert len(held) == 1 and held[0][0] == "ticket"
    status, ledger = await (await admin_of(base, app)).get("/api/admin/ledger")
    assert ledger["balanced"] and balances(ledger)[("cash:stripe", "USD")] == PRICE


async def test_a_failed_refund_of_the_duplicate_is_left_paid_for_an_admin(stripe_app):
    """Stripe is unreachable: the duplicate stays paid, without a second ticket, so an
    admin's ordinary refund finishes the job; the ledger stays balanced meanwhile."""
    import stripe

    base, app, fake = stripe_app
    creator, viewer, (first, second) = await _stripe_orders(base, app, 2)
    await deliver(base, event("checkout.session.completed", session_completed(first, payment_intent="pi_1")))
    fake.fail_refund = stripe.APIConnectionError("connection reset")
    status, body = await deliver(base, event("checkout.session.completed", session_completed(second, payment_intent="pi_2")))
    assert (status, body["outcome"]) == (200, "duplicate_refund_failed")
    assert (await order_row(app, second["id"])).status == "paid"
    assert await active_entitlements(app, viewer.user["id"]) == [("ticket", first["id"])]
    fake.fail_refund = None
    boss = await admin_of(base, app)
    status, body = await boss.post(f"/api/orders/{second['id']}/refund")
    assert status == 200 and body["order"]["status"] == "refunded"
    assert await active_entitlements(app, viewer.user["id"]) == [("ticket", first["id"])]
    status, ledger = await boss.get("/api/admin/ledger")
    assert ledger["balanced"] and balances(ledger)[("cash:stripe", "USD")] == PRICE
