"""Course series through the real app with the dev provider: buyers hold every room of the
series, and the rooms added later only when the series says so (``include_later``); a refund
takes the rooms back; bad input changes nothing. The ledger balances after every step."""

from __future__ import annotations

import pytest

from tests.support.pass_fixtures import admin_of, dev_pass, ledger, start_pass
from tests.support.paywall_fixtures import Api, paid_room

pytestmark = pytest.mark.inprocess

PRICE = 4000
FEE = PRICE * 1000 // 10_000


async def owned(viewer: Api, slug: str) -> list[str]:
    status, body = await viewer.get(f"/api/catalog/{slug}")
    assert status == 200, body
    return body["owned"]


async def test_series_holds_its_rooms_and_later_ones_when_it_says_so(paywall_app):
    base, app = paywall_app
    boss = await admin_of(base, app)
    creator = await Api.sign_up(base, "creator")
    for slug in ("algebra-1", "algebra-2", "geometry-1", "geometry-2"):
        await paid_room(creator, slug)
    status, body = await creator.post("/api/series", {"slug": "algebra", "title": "Algebra course", "price": PRICE,
                                                      "currency": "USD", "include_later": True, "rooms": ["algebra-1"]})
    assert status == 201 and body["series"]["rooms"] == ["algebra-1"], body
    status, body = await creator.post("/api/series", {"slug": "geometry", "title": "Geometry course", "price": PRICE,
                                                      "currency": "USD", "rooms": ["geometry-1"]})
    assert status == 201 and body["series"]["include_later"] is False

    viewer = await Api.sign_up(base)
    algebra = await dev_pass(viewer, (await start_pass(viewer, kind="series", series="algebra"))["id"])
    geometry = await dev_pass(viewer, (await start_pass(viewer, kind="series", series="geometry"))["id"])
    assert (algebra["status"], algebra["series"], algebra["current_period_end"]) == ("active", "algebra", None)
    assert await owned(viewer, "algebra-1") == ["replay", "ticket"]
    assert await owned(viewer, "geometry-1") == ["replay", "ticket"]
    assert await owned(viewer, "algebra-2") == []
    assert (await viewer.post("/api/rooms/algebra-1/tokens", {"scope": "view"}))[0] == 201

    # rooms added after the purchase: held through the series that includes later rooms only
    for series, room in (("algebra", "algebra-2"), ("geometry", "geometry-2")):
        status, body = await creator.post(f"/api/series/{series}/rooms", {"room": room})
        assert status == 200 and body["series"]["rooms"][-1] == room
    assert await owned(viewer, "algebra-2") == ["replay", "ticket"]
    assert await owned(viewer, "geometry-2") == []
    status, body = await viewer.get("/api/me/entitlements")
    assert body["entitlements"] == {slug: ["replay", "ticket"] for slug in ("algebra-1", "algebra-2", "geometry-1")}
    status, body = await viewer.post("/api/rooms/geometry-2/tokens", {"scope": "view"})
    assert (status, body["error"]["code"]) == (402, "ticket_required")
    # a buyer after the room was added holds it
    late = await Api.sign_up(base)
    await dev_pass(late, (await start_pass(late, kind="series", series="geometry"))["id"])
    assert await owned(late, "geometry-2") == ["replay", "ticket"]
    status, body = await viewer.post("/api/passes", {"kind": "series", "series": "geometry", "idempotency_key": "x" * 10})
    assert (status, body["error"]["code"]) == (409, "already_owned")

    money = await ledger(boss)
    assert money[("cash:dev", "USD")] == 3 * PRICE
    status, body = await creator.get("/api/creator/earnings")
    assert body["passes"] == [{"pass": "series", "currency": "USD", "earned": 3 * (PRICE - FEE), "charges": 3}]

    # the creator refunds one series: its rooms go, the other series' stay
    status, body = await creator.post(f"/api/passes/{geometry['id']}/refund")
    assert status == 200 and body["pass"]["status"] == "refunded"
    assert await owned(viewer, "geometry-1") == []
    assert await owned(viewer, "algebra-1") == ["replay", "ticket"]
    status, body = await viewer.post(f"/api/passes/{algebra['id']}/cancel")
    assert (status, body["error"]["code"]) == (409, "not_a_subscription")
    money = await ledger(boss)
    assert money[("cash:dev", "USD")] == 2 * PRICE
    assert money[("platform:fees", "USD")] == -2 * FEE


async def test_series_bad_input_changes_nothing(sqlite_app):
    base, app = sqlite_app
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator, "mine")
    other = await Api.sign_up(base, "creator")
    await paid_room(other, "theirs")
    viewer = await Api.sign_up(base)
    good = {"slug": "course", "title": "Course", "price": 1000, "currency": "USD"}
    for who, body, expected in (
        (viewer, good, (403, "not_a_creator")),
        (creator, {**good, "slug": "Bad Slug"}, (400, "invalid_slug")),
        (creator, {**good, "title": ""}, (400, "invalid_title")),
        (creator, {**good, "price": 0}, (400, "invalid_amount")),
        (creator, {**good, "currency": "usd!"}, (400, "unknown_currency")),
        (creator, {**good, "include_later": "yes"}, (400, "invalid_include_later")),
        (creator, {**good, "rooms": "mine"}, (400, "invalid_rooms")),
        (creator, {**good, "rooms": ["mine", "mine"]}, (400, "invalid_rooms")),
        (creator, {**good, "rooms": ["theirs"]}, (403, "not_your_room")),
        (creator, {**good, "rooms": ["nowhere"]}, (404, "room_not_found")),
        (creator, {**good, "discount": 5}, (400, "unknown_field")),
    ):
        status, resp = await who.post("/api/series", body)
        assert (status, resp["error"]["code"]) == expected, (body, resp)
    status, body = await viewer.get("/api/series/course")
    assert (status, body["error"]["code"]) == (404, "series_not_found")

    status, body = await creator.post("/api/series", {**good, "rooms": ["mine"]})
    assert status == 201
    status, body = await creator.post("/api/series", good)
    assert (status, body["error"]["code"]) == (409, "slug_taken")
    for who, body, expected in (
        (other, {"room": "theirs"}, (403, "not_your_series")),
        (creator, {"room": "theirs"}, (403, "not_your_room")),
        (creator, {"room": 5}, (400, "invalid_room")),
    ):
        status, resp = await who.post("/api/series/course/rooms", body)
        assert (status, resp["error"]["code"]) == expected, (body, resp)
    status, body = await viewer.get("/api/series/course")
    assert body["series"]["rooms"] == ["mine"]
    status, body = await creator.post("/api/passes", {"kind": "series", "series": "course", "idempotency_key": "k" * 10})
    assert (status, body["error"]["code"]) == (409, "own_pass")
