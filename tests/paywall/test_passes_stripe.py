"""Creator subscriptions on Stripe Billing, with no network: the Checkout Session in
subscription mode, then the webhooks Stripe sends over a subscription's life, signed with
Stripe's scheme (``invoice.paid`` for the first period and each renewal, in either order with
``checkout.session.completed``; ``invoice.payment_failed``; ``customer.subscription.updated``
and ``.deleted``; ``charge.refunded``). Each renewal is booked once; the ledger balances
after every step. On SQLite and PostgreSQL."""

from __future__ import annotations

import secrets
import time
from typing import Optional

import pytest
import stripe

from core.access import Refusal, Target
from paywall.http import PAYWALL
from tests.support.stripe_fake import stripe_app  # noqa: F401  (a fixture)
from tests.support.pass_fixtures import admin_of, ledger, monthly_plan, start_pass
from tests.support.paywall_fixtures import Api, paid_room, view_token
from tests.support.stripe_fake import deliver, event

pytestmark = pytest.mark.inprocess

PRICE = 1500
DAY = 86400


def invoice(sub: str, period_end: int, pass_id: Optional[str] = None, amount: int = PRICE, currency: str = "usd",
            invoice_id: Optional[str] = None, payment_intent: Optional[str] = None) -> dict:
    """A subscription invoice; with ``pass_id``, in the 2025 shape (``parent.subscription_details``
    with the subscription's metadata), else the older one (``invoice.subscription``)."""
    obj = {"id": invoice_id or f"in_{secrets.token_hex(6)}", "object": "invoice", "status": "paid",
           "amount_paid": amount, "amount_due": amount, "currency": currency,
           "payment_intent": payment_intent or f"pi_{secrets.token_hex(6)}",
           "lines": {"object": "list", "data": [{"object": "line_item", "amount": amount,
                                                "period": {"start": period_end - 30 * DAY, "end": period_end}}]}}
    if pass_id:
        obj["parent"] = {"type": "subscription_details",
                         "subscription_details": {"subscription": sub, "metadata": {"pass_id": pass_id}}}
    else:
        obj["subscription"] = sub
    return obj


async def send(base: str, kind: str, obj: dict, event_id: Optional[str] = None) -> str:
    status, body = await deliver(base, event(kind, obj, event_id))
    assert status == 200, body
    return body["outcome"]


async def test_a_subscription_life_on_stripe(stripe_app):  # noqa: F811
    base, app, fake = stripe_app
    boss = await admin_of(base, app)
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator)
    await monthly_plan(creator, PRICE)
    viewer = await Api.sign_up(base)
    sub = await start_pass(viewer, kind="subscription", creator=creator.user["id"], interval="month")

    [call] = fake.sessions
    params = call["params"]
    assert params["mode"] == "subscription" and params["client_reference_id"] == sub["id"]
    assert params["metadata"] == {"pass_id": sub["id"]}
    assert params["subscription_data"] == {"metadata": {"pass_id": sub["id"]}}
    [item] = params["line_items"]
    assert item["price_data"]["recurring"] == {"interval": "month"}
    assert item["price_data"]["product_data"]["name"] == "Creator: every class (monthly subscription)"
    assert (item["price_data"]["unit_amount"], item["price_data"]["currency"]) == (PRICE, "usd")
    assert sub["checkout_url"].startswith("https://checkout.stripe.com/")

    # the first invoice may arrive before the checkout's completion: the pass is found by its metadata
    now = int(time.time())
    first = invoice("sub_1", now + 30 * DAY, pass_id=sub["id"])
    first_event = event("invoice.paid", first)
    assert (await deliver(base, first_event))[1]["outcome"] == "paid"
    assert (await deliver(base, first_event))[1]["outcome"] == "duplicate"  # the same event again
    assert await send(base, "invoice.paid", first) == "already_processed"  # another event, same invoice
    assert await send(base, "checkout.session.completed", {
        "id": "cs_x", "object": "checkout.session", "mode": "subscription", "client_reference_id": sub["id"],
        "metadata": {"pass_id": sub["id"]}, "subscription": "sub_1", "payment_status": "paid",
        "amount_total": PRICE, "currency": "usd"}) == "subscription_linked"
    token = await view_token(viewer, "maths")
    door = app[PAYWALL].access
    assert (await door.authorize(token, "view", Target("maths"))).seat_key
    money = await ledger(boss)
    assert money[("cash:stripe", "USD")] == PRICE

    # a renewal (the older invoice shape: found by the subscription's id) extends the period
    assert await send(base, "invoice.paid", invoice("sub_1", now + 60 * DAY)) == "paid"
    status, body = await viewer.get(f"/api/passes/{sub['id']}")
    assert body["pass"]["current_period_end"].startswith(time.strftime("%Y-%m-%d", time.gmtime(now + 60 * DAY)))
    assert len(body["charges"]) == 2
    assert (await ledger(boss))[("cash:stripe", "USD")] == 2 * PRICE
    # a payment in another currency is refused and books nothing
    status, body = await deliver(base, event("invoice.paid", invoice("sub_1", now + 90 * DAY, currency="eur")))
    assert (status, body["error"]["code"]) == (409, "amount_mismatch")

    # the next renewal fails: past due, the door refuses the token it granted before
    assert await send(base, "invoice.payment_failed", invoice("sub_1", now + 90 * DAY)) == "past_due"
    with pytest.raises(Refusal) as refused:
        await door.authorize(token, "view", Target("maths"))
    assert (refused.value.status, refused.value.code) == (403, "ticket_required")
    assert await send(base, "customer.subscription.updated",
                      {"id": "sub_1", "object": "subscription", "status": "past_due"}) == "already_processed"
    # Stripe's retry succeeds: active again
    last_pi = "pi_last"
    assert await send(base, "invoice.paid", invoice("sub_1", now + 90 * DAY, payment_intent=last_pi)) == "paid"
    assert (await door.authorize(token, "view", Target("maths"))).seat_key

    # the holder cancels: Stripe is told to stop at the period's end; access goes on
    status, body = await viewer.post(f"/api/passes/{sub['id']}/cancel")
    assert status == 200 and body["pass"]["cancel_at_period_end"]
    assert fake.subscription_calls == [("update", "sub_1", {"cancel_at_period_end": True})]
    assert await send(base, "customer.subscription.updated", {"id": "sub_1", "object": "subscription",
                                                              "status": "active", "cancel_at_period_end": True}) == "updated"
    assert (await door.authorize(token, "view", Target("maths"))).seat_key

    # the creator refunds: Stripe cancels at once and refunds the latest period's payment
    status, body = await creator.post(f"/api/passes/{sub['id']}/refund")
    assert status == 200 and body["pass"]["status"] == "refunded"
    assert fake.subscription_calls[-1] == ("cancel", "sub_1", None)
    assert fake.refunds[-1]["params"] == {"payment_intent": last_pi}
    with pytest.raises(Refusal):
        await door.authorize(token, "view", Target("maths"))
    # Stripe's own events about it change nothing more
    assert await send(base, "charge.refunded", {"id": "ch_1", "object": "charge", "amount": PRICE,
                                                "amount_refunded": PRICE, "payment_intent": last_pi}) == "already_processed"
    assert await send(base, "customer.subscription.deleted",
                      {"id": "sub_1", "object": "subscription", "status": "canceled"}) == "already_processed"
    money = await ledger(boss)
    assert money[("cash:stripe", "USD")] == 3 * PRICE - PRICE


async def test_stripe_ends_a_subscription_and_refunds_from_its_dashboard(stripe_app):  # noqa: F811
    base, app, fake = stripe_app
    boss = await admin_of(base, app)
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator)
    await monthly_plan(creator, PRICE)
    viewer = await Api.sign_up(base)
    sub = await start_pass(viewer, kind="subscription", creator=creator.user["id"], interval="month")
    twin = await start_pass(viewer, kind="subscription", creator=creator.user["id"], interval="month")
    now = int(time.time())
    assert await send(base, "invoice.paid", invoice("sub_9", now + 30 * DAY, pass_id=sub["id"],
                                                    payment_intent="pi_first")) == "paid"
    assert await send(base, "invoice.paid", invoice("sub_9", now + 60 * DAY, payment_intent="pi_second")) == "paid"
    # a second checkout of the same subscription (another tab, started earlier), paid too: cancelled and refunded at once
    assert await send(base, "invoice.paid", invoice("sub_twin", now + 30 * DAY, pass_id=twin["id"],
                                                    payment_intent="pi_twin")) == "refunded_duplicate"
    assert fake.subscription_calls == [("cancel", "sub_twin", None)]
    assert fake.refunds[-1]["params"] == {"payment_intent": "pi_twin"}
    assert (await viewer.get(f"/api/passes/{twin['id']}"))[1]["pass"]["status"] == "refunded"
    assert (await ledger(boss))[("cash:stripe", "USD")] == 2 * PRICE
    # a refund of an older period, made in Stripe's dashboard: booked, the subscription runs on
    assert await send(base, "charge.refunded", {"id": "ch_a", "object": "charge", "amount": PRICE,
                                                "amount_refunded": PRICE, "payment_intent": "pi_first"}) == "refunded"
    token = await view_token(viewer, "maths")
    assert (await ledger(boss))[("cash:stripe", "USD")] == PRICE
    # the subscription ends (cancelled in the dashboard): no access
    assert await send(base, "customer.subscription.deleted",
                      {"id": "sub_9", "object": "subscription", "status": "canceled"}) == "ended"
    with pytest.raises(Refusal) as refused:
        await app[PAYWALL].access.authorize(token, "view", Target("maths"))
    assert refused.value.code == "ticket_required"
    status, body = await viewer.get(f"/api/passes/{sub['id']}")
    assert body["pass"]["status"] == "canceled"
    # a period that ended longer ago than the grace (STAGEPASS_SUBSCRIPTION_GRACE) holds nothing
    late = await Api.sign_up(base)
    stale = await start_pass(late, kind="subscription", creator=creator.user["id"], interval="month")
    grace = app[PAYWALL].settings.paywall.subscription_grace
    assert await send(base, "invoice.paid", invoice("sub_old", now - int(grace) - 60, pass_id=stale["id"])) == "paid"
    status, body = await late.post("/api/rooms/maths/tokens", {"scope": "view"})
    assert (status, body["error"]["code"]) == (402, "ticket_required")
    assert await send(base, "invoice.paid", invoice("sub_old", now + 30 * DAY)) == "paid"  # renewed
    assert (await late.post("/api/rooms/maths/tokens", {"scope": "view"}))[0] == 201

    # events of subscriptions that are not ours are acknowledged and ignored
    assert await send(base, "invoice.paid", invoice("sub_elsewhere", now + DAY)) == "ignored_unknown_subscription"
    assert await send(base, "customer.subscription.deleted", {"id": "sub_elsewhere", "object": "subscription"}) \
        == "ignored_unknown_subscription"
    # a paid invoice of ours without its period is refused and books nothing
    bad = invoice("sub_9", now + 90 * DAY)
    bad["lines"]["data"][0].pop("period")
    status, body = await deliver(base, event("invoice.paid", bad))
    assert (status, body["error"]["code"]) == (400, "bad_payload")
    await ledger(boss)


async def test_a_series_on_stripe(stripe_app):  # noqa: F811
    base, app, fake = stripe_app
    boss = await admin_of(base, app)
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator)
    status, body = await creator.post("/api/series", {"slug": "course", "title": "Course", "price": 4000,
                                                      "currency": "USD", "rooms": ["maths"]})
    assert status == 201
    viewer = await Api.sign_up(base)
    # Stripe unreachable: 502, and the same idempotency key later gets its checkout
    fake.fail_checkout = stripe.APIConnectionError("connection refused")
    buying = {"kind": "series", "series": "course", "idempotency_key": secrets.token_hex(8)}
    status, body = await viewer.post("/api/passes", buying)
    assert (status, body["error"]["code"]) == (502, "provider_error")
    fake.fail_checkout = None
    status, body = await viewer.post("/api/passes", buying)
    assert status == 200 and body["pass"]["checkout_url"].startswith("https://checkout.stripe.com/"), body
    p = body["pass"]
    params = fake.sessions[-1]["params"]
    assert params["line_items"][0]["price_data"]["product_data"]["name"] == "Course (series)"
    assert params["mode"] == "payment" and "subscription_data" not in params
    assert "recurring" not in params["line_items"][0]["price_data"]
    completed = {"id": "cs_series", "object": "checkout.session", "mode": "payment", "client_reference_id": p["id"],
                 "metadata": {"pass_id": p["id"]}, "payment_status": "paid", "amount_total": 4000, "currency": "usd",
                 "payment_intent": "pi_series"}
    status, body = await deliver(base, event("checkout.session.completed", {**completed, "amount_total": 3999}))
    assert (status, body["error"]["code"]) == (409, "amount_mismatch")
    assert await send(base, "checkout.session.completed", completed) == "paid"
    assert await send(base, "checkout.session.completed", completed) == "already_processed"
    token = await view_token(viewer, "maths")
    assert (await ledger(boss))[("cash:stripe", "USD")] == 4000
    # refunded in Stripe's dashboard: the series' rooms go
    assert await send(base, "charge.refunded", {"id": "ch_s", "object": "charge", "amount": 4000,
                                                "amount_refunded": 4000, "payment_intent": "pi_series"}) == "refunded"
    with pytest.raises(Refusal):
        await app[PAYWALL].access.authorize(token, "view", Target("maths"))
    assert (await ledger(boss))[("cash:stripe", "USD")] == 0


async def test_deleting_the_account_cancels_the_subscription_at_stripe(stripe_app):  # noqa: F811
    base, app, fake = stripe_app
    boss = await admin_of(base, app)
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator)
    await monthly_plan(creator, PRICE)
    viewer = await Api.sign_up(base)
    sub = await start_pass(viewer, kind="subscription", creator=creator.user["id"], interval="month")
    assert await send(base, "invoice.paid", invoice("sub_gone", int(time.time()) + 30 * DAY, pass_id=sub["id"])) == "paid"
    status, data = await viewer.get("/api/me/data")
    assert [(p["id"], p["status"]) for p in data["passes"]] == [(sub["id"], "active")]
    token = await view_token(viewer, "maths")

    status, _ = await viewer.call("DELETE", "/api/me", {"password": "correct horse battery"})
    assert status == 204
    assert fake.subscription_calls == [("cancel", "sub_gone", None)]  # no renewal will charge a deleted person
    with pytest.raises(Refusal):
        await app[PAYWALL].access.authorize(token, "view", Target("maths"))
    assert await send(base, "customer.subscription.deleted",
                      {"id": "sub_gone", "object": "subscription", "status": "canceled"}) == "already_processed"
    assert (await ledger(boss))[("cash:stripe", "USD")] == PRICE  # the paid period stays booked
