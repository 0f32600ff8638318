"""The studio's APIs: coupons (create, list, disable), the room's orders and their refund,
moderators appointed over HTTP (in effect at once on a live chat socket), and a room's minimum
paid question price. Bad input changes nothing; the ledger balances after the money steps."""

from __future__ import annotations

import secrets

import pytest

from tests.support.pass_fixtures import admin_of, ledger
from tests.support.paywall_fixtures import Api, buy, connected, paid_room

pytestmark = pytest.mark.inprocess


async def test_coupons_orders_and_question_minimum(paywall_app):
    base, app = paywall_app
    boss = await admin_of(base, app)
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator)
    other = await Api.sign_up(base, "creator")
    viewer = await Api.sign_up(base)

    status, body = await creator.post("/api/rooms/maths/coupons", {"code": "early", "kind": "percent", "value": 50})
    assert status == 201 and body["coupon"]["active"] is True
    await creator.post("/api/rooms/maths/coupons", {"code": "later", "kind": "fixed", "value": 100, "max_uses": 3})
    status, body = await creator.get("/api/rooms/maths/coupons")
    assert [(c["code"], c["uses"], c["active"]) for c in body["coupons"]] == [("LATER", 0, True), ("EARLY", 0, True)]
    for who, path, payload, expected in (
        (other, "/api/rooms/maths/coupons/EARLY", {"active": False}, (403, "not_your_room")),
        (creator, "/api/rooms/maths/coupons/NOPE", {"active": False}, (404, "coupon_not_found")),
        (creator, "/api/rooms/maths/coupons/EARLY", {"active": "no"}, (400, "invalid_active")),
        (creator, "/api/rooms/maths/coupons/EARLY", {"active": False, "value": 90}, (400, "invalid_active")),
    ):
        status, resp = await who.patch(path, payload)
        assert (status, resp["error"]["code"]) == expected, (path, payload, resp)
    assert (await other.get("/api/rooms/maths/coupons"))[0] == 403

    # a disabled coupon is refused to new orders; enabled again, it works
    status, body = await creator.patch("/api/rooms/maths/coupons/early", {"active": False})
    assert status == 200 and body["coupon"]["active"] is False
    status, body = await viewer.post("/api/orders", {"room": "maths", "product": "ticket", "coupon": "EARLY",
                                                     "idempotency_key": secrets.token_hex(8)})
    assert (status, body["error"]["code"]) == (410, "coupon_disabled")
    await creator.patch("/api/rooms/maths/coupons/EARLY", {"active": True})
    order = await buy(viewer, "maths", coupon="EARLY")
    assert order["amount"] == 495

    # the room's orders, for its creator, and the refund of one
    status, body = await creator.get("/api/rooms/maths/orders")
    assert [(o["id"], o["status"], o["buyer"], o["coupon"]) for o in body["orders"]] == [
        (order["id"], "paid", "Viewer", "EARLY")]
    assert (await other.get("/api/rooms/maths/orders"))[0] == 403
    assert (await viewer.get("/api/rooms/maths/orders"))[0] == 403
    status, body = await creator.post(f"/api/orders/{order['id']}/refund")
    assert status == 200 and body["order"]["status"] == "refunded"
    status, body = await creator.get("/api/rooms/maths/orders")
    assert [o["status"] for o in body["orders"]] == ["refunded"]
    await ledger(boss)

    # a minimum price for paid questions
    for bad in (-1, 1.5, "100", None):
        status, body = await creator.patch("/api/rooms/maths", {"question_min_price": bad})
        assert (status, body["error"]["code"]) == (400, "invalid_amount"), bad
    status, body = await creator.patch("/api/rooms/maths", {"question_min_price": 300})
    assert status == 200 and body["room"]["question_min_price"] == 300
    status, body = await viewer.post("/api/orders", {"room": "maths", "product": "question", "amount": 299,
                                                     "idempotency_key": secrets.token_hex(8)})
    assert (status, body["error"]["code"]) == (400, "below_minimum")
    question = await buy(viewer, "maths", product="question", amount=300)
    assert question["amount"] == 300
    status, body = await viewer.get("/api/catalog/maths")
    assert body["room"]["question_min_price"] == 300
    await ledger(boss)


async def test_moderators_appointed_from_the_studio(sqlite_app):
    base, app = sqlite_app
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator, ticket_price=0)
    helper = await Api.sign_up(base, email=f"helper-{secrets.token_hex(3)}@example.org")
    stranger = await Api.sign_up(base)
    chat = await connected(base, helper, "maths")
    try:
        refused = await chat.call("mod:slow_mode", {"seconds": 5})
        assert refused["error"]["code"] == "forbidden"
        for who, payload, expected in (
            (stranger, {"email": helper.user["email"]}, (403, "not_your_room")),
            (creator, {"email": "nobody@example.org"}, (404, "user_not_found")),
            (creator, {"user_id": 10**9}, (404, "user_not_found")),
            (creator, {"user_id": "1"}, (400, "invalid_payload")),
            (creator, {"email": helper.user["email"], "user_id": 1}, (400, "invalid_payload")),
            (creator, {"user_id": creator.user["id"]}, (409, "is_creator")),
        ):
            status, resp = await who.post("/api/rooms/maths/moderators", payload)
            assert (status, resp["error"]["code"]) == expected, (payload, resp)
        status, body = await creator.get("/api/rooms/maths/moderators")
        assert body["moderators"] == []

        # appointed by email: the live socket may moderate at once
        status, body = await creator.post("/api/rooms/maths/moderators", {"email": helper.user["email"].upper()})
        assert status == 200 and body["moderators"] == [{"user_id": helper.user["id"], "display_name": "Viewer"}]
        assert (await chat.call("mod:slow_mode", {"seconds": 0})) == {"ok": True}
        audit = await chat.call("mod:audit", {})
        assert ("appoint_moderator", creator.user["id"], helper.user["id"]) in [
            (a["action"], a["actor"], a["target"]) for a in audit["actions"]]
        # dismissed: no more
        status, body = await creator.call("DELETE", f"/api/rooms/maths/moderators/{stranger.user['id']}")
        assert (status, body["error"]["code"]) == (404, "not_a_moderator")
        status, body = await creator.call("DELETE", f"/api/rooms/maths/moderators/{helper.user['id']}")
        assert status == 200 and body["moderators"] == []
        assert (await chat.call("mod:slow_mode", {"seconds": 0}))["error"]["code"] == "forbidden"
    finally:
        await chat.close()
