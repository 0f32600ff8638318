"""Creator subscriptions with the dev provider, through the real app: a subscriber watches
every room of the creator (WHEP, chat, replay files) like a ticket holder; a failed
renewal ends the live session and the chat at once, and WHEP and the replay door refuse; a renewal brings access
back; a refund reverses the ledger. The ledger balances after every step."""

from __future__ import annotations

import secrets

import pytest

from core.access import Refusal, Target
from paywall.http import PAYWALL
from signalling.whip import ROOMS
from tests.support.waiting import wait_for
from tests.support.chat import Chat
from tests.support.pass_fixtures import admin_of, dev_pass, ledger, monthly_plan, start_pass
from tests.support.paywall_fixtures import Api, paid_room, view_token
from tests.support.peers import Publisher, Viewer

pytestmark = pytest.mark.inprocess

PRICE = 1500
FEE = PRICE * 1000 // 10_000


async def _whep(base: str, token: str) -> Viewer:
    viewer = Viewer(base)
    await viewer.post("/whep/maths", token=token)
    return viewer


@pytest.mark.slow
async def test_a_lapsed_subscription_ends_the_live_session_chat_and_access(sqlite_app):
    base, app = sqlite_app
    boss = await admin_of(base, app)
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator)
    await paid_room(creator, "physics")
    other = await Api.sign_up(base, "creator")
    await paid_room(other, "poetry")
    await monthly_plan(creator, PRICE)
    viewer = await Api.sign_up(base)

    # the offer is public; buying it starts a pending pass with the dev checkout
    status, body = await viewer.get(f"/api/creators/{creator.user['id']}/plans")
    assert body["plans"] == [{"creator_id": creator.user["id"], "interval": "month", "price": PRICE,
                              "currency": "USD", "active": True}]
    sub = await start_pass(viewer, kind="subscription", creator=creator.user["id"], interval="month")
    assert (sub["status"], sub["amount"], sub["checkout_url"]) == ("pending", PRICE, f"{base}/pay/dev/passes/{sub['id']}")
    status, body = await viewer.post("/api/rooms/maths/tokens", {"scope": "view"})
    assert (status, body["error"]["code"]) == (402, "ticket_required")  # not paid yet

    sub = await dev_pass(viewer, sub["id"])
    assert sub["status"] == "active" and sub["current_period_end"]
    money = await ledger(boss)
    assert money[("cash:dev", "USD")] == PRICE and money[(f"creator:{creator.user['id']}", "USD")] == -(PRICE - FEE)
    # every room of the creator, with its replay, and only theirs; no ticket to buy on top
    for slug in ("maths", "physics"):
        status, body = await viewer.get(f"/api/catalog/{slug}")
        assert body["owned"] == ["replay", "ticket"], slug
    status, body = await viewer.post("/api/rooms/poetry/tokens", {"scope": "view"})
    assert status == 402
    status, body = await viewer.get("/api/me/entitlements")
    assert body["entitlements"] == {"maths": ["replay", "ticket"], "physics": ["replay", "ticket"]}
    status, body = await viewer.post("/api/orders", {"room": "maths", "product": "ticket",
                                                     "idempotency_key": secrets.token_hex(8)})
    assert (status, body["error"]["code"]) == (409, "already_owned")

    # the replay door (every segment asks it) lets the subscriber in
    paywall = app[PAYWALL]
    replay = await paywall.replays.mint(await paywall.accounts.get(viewer.user["id"]), "rec-1",
                                        await paywall.catalog.get("maths"))
    assert replay["preview_ms"] is None
    assert (await paywall.access.authorize(replay["token"], "replay", Target("maths", "rec-1"))).user_id

    # live: the subscriber plays the room and chats
    status, minted = await creator.post("/api/rooms/maths/tokens", {"scope": "publish"})
    publisher = Publisher(base)
    assert await publisher.publish("maths", minted["token"]) == 201
    token = await view_token(viewer, "maths")
    watcher = await _whep(base, token)
    chat = Chat()
    try:
        assert watcher.status == 201, watcher.error
        await wait_for(lambda: len(watcher.numbers) > 5, timeout=10)
        assert await chat.connect(base, "maths", token), chat.refused
        rooms = app[ROOMS]
        assert len(rooms.get("maths").subscribers) == 1

        # the renewal fails (past due): the session and the chat end within seconds, WHEP refuses
        sub = await dev_pass(viewer, sub["id"], "fail")
        assert sub["status"] == "past_due"
        await wait_for(lambda: not rooms.get("maths").subscribers, timeout=5)
        await wait_for(lambda: not chat.sio.connected, timeout=5)
        with pytest.raises(Refusal) as refused:
            await paywall.access.authorize(replay["token"], "replay", Target("maths", "rec-1"))
        assert (refused.value.status, refused.value.code) == (403, "replay_required")
        again = await _whep(base, token)
        assert again.status == 403 and "ticket_required" in again.error
        await again.close()
        status, body = await viewer.post("/api/rooms/maths/tokens", {"scope": "view"})
        assert status == 402
        status, body = await viewer.get("/api/catalog/physics")
        assert body["owned"] == []
        assert (await viewer.get("/api/me/entitlements"))[1]["entitlements"] == {}

        # the card works again: the next period is paid, access comes back
        sub = await dev_pass(viewer, sub["id"], "renew")
        assert sub["status"] == "active"
        back = await _whep(base, await view_token(viewer, "maths"))
        assert back.status == 201, back.error
        await back.close()
        money = await ledger(boss)
        assert money[("cash:dev", "USD")] == 2 * PRICE and money[("platform:fees", "USD")] == -2 * FEE
        status, body = await creator.get("/api/creator/earnings")
        assert body["passes"] == [{"pass": "subscription", "currency": "USD", "earned": 2 * (PRICE - FEE), "charges": 2}]
        status, body = await viewer.get(f"/api/passes/{sub['id']}")
        assert [c["status"] for c in body["charges"]] == ["paid", "paid"]
    finally:
        await chat.close()
        await watcher.close()
        await publisher.close()

    # the creator refunds the latest period: the pass ends, its legs are reversed
    status, body = await viewer.post(f"/api/passes/{sub['id']}/refund")
    assert (status, body["error"]["code"]) == (403, "not_allowed")
    status, body = await creator.post(f"/api/passes/{sub['id']}/refund")
    assert status == 200 and body["pass"]["status"] == "refunded"
    status, body = await creator.post(f"/api/passes/{sub['id']}/refund")
    assert (status, body["error"]["code"]) == (409, "not_refundable")  # the earlier period stays paid
    money = await ledger(boss)
    assert money[("cash:dev", "USD")] == PRICE
    status, body = await viewer.post("/api/rooms/maths/tokens", {"scope": "view"})
    assert status == 402
    status, body = await viewer.get("/api/me/passes")
    assert [p["status"] for p in body["passes"]] == ["refunded"]


async def test_subscription_bad_input_changes_nothing(sqlite_app):
    base, app = sqlite_app
    boss = await admin_of(base, app)
    creator = await Api.sign_up(base, "creator")
    viewer = await Api.sign_up(base)
    cid = creator.user["id"]

    # plans: creators only, a known interval, a price and a currency
    for who, path, body, expected in (
        (viewer, "/api/creator/plans/month", {"price": 100, "currency": "USD"}, (403, "not_a_creator")),
        (creator, "/api/creator/plans/week", {"price": 100, "currency": "USD"}, (404, "interval_not_found")),
        (creator, "/api/creator/plans/month", {"price": 0, "currency": "USD"}, (400, "invalid_amount")),
        (creator, "/api/creator/plans/month", {"price": 9.5, "currency": "USD"}, (400, "invalid_amount")),
        (creator, "/api/creator/plans/month", {"price": 100, "currency": "XXX"}, (400, "unknown_currency")),
        (creator, "/api/creator/plans/month", {"price": 100, "currency": "USD", "trial": 7}, (400, "unknown_field")),
        (creator, "/api/creator/plans/month", {"price": 100, "currency": "USD", "active": "yes"}, (400, "invalid_active")),
    ):
        status, resp = await who.call("PUT", path, body)
        assert (status, resp["error"]["code"]) == expected, (body, resp)
    status, body = await viewer.get(f"/api/creators/{cid}/plans")
    assert body["plans"] == []
    status, body = await viewer.get(f"/api/creators/{viewer.user['id']}/plans")
    assert (status, body["error"]["code"]) == (404, "creator_not_found")

    await monthly_plan(creator, PRICE)
    await monthly_plan(creator, 15000, interval="year")
    key = secrets.token_hex(8)
    for who, body, expected in (
        (viewer, {"kind": "subscription", "creator": cid, "interval": "month"}, (400, "invalid_idempotency_key")),
        (viewer, {"kind": "gift", "creator": cid, "idempotency_key": key}, (400, "invalid_kind")),
        (viewer, {"kind": "subscription", "creator": "1", "interval": "month", "idempotency_key": key}, (400, "invalid_creator")),
        (viewer, {"kind": "subscription", "creator": 99999, "interval": "month", "idempotency_key": key}, (404, "creator_not_found")),
        (viewer, {"kind": "subscription", "creator": cid, "interval": "week", "idempotency_key": key}, (400, "invalid_interval")),
        (creator, {"kind": "subscription", "creator": cid, "interval": "month", "idempotency_key": key}, (409, "own_pass")),
        (viewer, {"kind": "series", "series": "nope", "idempotency_key": key}, (404, "series_not_found")),
    ):
        status, resp = await who.post("/api/passes", body)
        assert (status, resp["error"]["code"]) == expected, (body, resp)
    status, body = await viewer.get("/api/me/passes")
    assert body["passes"] == []

    # a double click gets the same pass; the same key for another purchase is refused
    first = await start_pass(viewer, kind="subscription", creator=cid, interval="month", idempotency_key=key)
    status, body = await viewer.post("/api/passes", {"kind": "subscription", "creator": cid, "interval": "month",
                                                     "idempotency_key": key})
    assert status == 200 and body["pass"]["id"] == first["id"]
    status, body = await viewer.post("/api/passes", {"kind": "subscription", "creator": cid, "interval": "year",
                                                     "idempotency_key": key})
    assert (status, body["error"]["code"]) == (409, "idempotency_key_reused")

    # the dev checkout: the buyer's only; renew and fail need an active subscription
    stranger = await Api.sign_up(base)
    status, body = await stranger.post(f"/pay/dev/passes/{first['id']}", {"action": "confirm"})
    assert (status, body["error"]["code"]) == (404, "pass_not_found")
    for action, expected in (("renew", (409, "not_active")), ("fail", (409, "not_active")),
                             ("steal", (400, "invalid_action"))):
        status, body = await viewer.post(f"/pay/dev/passes/{first['id']}", {"action": action})
        assert (status, body["error"]["code"]) == expected
    status, body = await creator.post(f"/api/passes/{first['id']}/refund")
    assert (status, body["error"]["code"]) == (409, "not_refundable")
    second_tab = await start_pass(viewer, kind="subscription", creator=cid, interval="year")  # another tab
    await dev_pass(viewer, first["id"])
    # the second checkout is refused before anything is paid, and cancelled
    status, body = await viewer.post(f"/pay/dev/passes/{second_tab['id']}", {"action": "confirm"})
    assert (status, body["error"]["code"]) == (409, "already_owned")
    assert (await viewer.get(f"/api/passes/{second_tab['id']}"))[1]["pass"]["status"] == "declined"
    status, body = await viewer.post(f"/pay/dev/passes/{first['id']}", {"action": "confirm"})
    assert (status, body["error"]["code"]) == (409, "not_pending")
    status, body = await viewer.post("/api/passes", {"kind": "subscription", "creator": cid, "interval": "year",
                                                     "idempotency_key": secrets.token_hex(8)})
    assert (status, body["error"]["code"]) == (409, "already_owned")

    # cancel: the holder's, at the period's end (access goes on until then)
    status, body = await creator.post(f"/api/passes/{first['id']}/cancel")
    assert (status, body["error"]["code"]) == (403, "not_your_pass")
    status, body = await stranger.post(f"/api/passes/{first['id']}/cancel")
    assert (status, body["error"]["code"]) == (404, "pass_not_found")
    status, body = await viewer.post(f"/api/passes/{first['id']}/cancel")
    assert status == 200 and body["pass"]["cancel_at_period_end"] and body["pass"]["status"] == "active"
    await paid_room(creator)
    assert (await viewer.post("/api/rooms/maths/tokens", {"scope": "view"}))[0] == 201
    money = await ledger(boss)
    assert money[("cash:dev", "USD")] == PRICE
