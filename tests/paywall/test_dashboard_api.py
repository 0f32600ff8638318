"""The creator dashboard API on SQLite and PostgreSQL: sales, refunds, currencies, ledger
earnings and balance, sessions; who may read what (401, 403, 404 for others' broadcasts)."""

from __future__ import annotations

import time

import pytest

from mediaserver.live.room import Broadcast
from paywall.audience import Sample
from paywall.http import PAYWALL
from tests.support.paywall_fixtures import Api, buy, paid_room

pytestmark = pytest.mark.inprocess


def sample(room: str, broadcast: Broadcast, seconds: float, viewers: int) -> Sample:
    return Sample(room, broadcast.id, broadcast.started_at, int(seconds * 1000), viewers)


async def log_session(app, room: str, started_ago: float, points: list[tuple[float, int]], end: float | None):
    """A broadcast of ``room`` with samples at (seconds, viewers), ended at ``end`` seconds."""
    audience = app[PAYWALL].audience
    broadcast = Broadcast(started_at=time.time() - started_ago)
    await audience.record([sample(room, broadcast, t, v) for t, v in points])
    if end is not None:
        await audience.end(sample(room, broadcast, end, points[-1][1] if points else 0))
    return broadcast.id


async def test_numbers_per_room_with_refunds_currencies_and_the_ledger(paywall_app):
    base, app = paywall_app
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator, slug="maths")  # USD 9.90, replay 5.00 sold apart
    await paid_room(creator, slug="art", title="Drawing <b>hands</b>", currency="EUR", ticket_price=1000,
                    replay_price=None)
    await paid_room(creator, slug="free-talk", ticket_price=0)
    rival = await Api.sign_up(base, "creator")
    await paid_room(rival, slug="chem", ticket_price=700)
    v = [await Api.sign_up(base) for _ in range(5)]

    await buy(v[0], "maths")                              # 990
    await buy(v[1], "maths", "bundle")                    # 1490
    refunded = await buy(v[2], "maths")                   # 990, refunded below
    await buy(v[0], "maths", "tip", amount=300)           # a tip is revenue, not a ticket
    await buy(v[3], "maths", "replay")                    # 500
    status, body = await creator.post(f"/api/orders/{refunded['id']}/refund")
    assert status == 200 and body["order"]["status"] == "refunded"
    status, _ = await creator.patch("/api/rooms/maths", {"currency": "EUR"})
    assert status == 200
    await buy(v[4], "maths")                              # 990 EUR
    await buy(v[0], "art")                                # 1000 EUR
    await buy(v[0], "chem")                               # the rival's: not ours
    status, pending = await v[1].post("/api/orders", {"room": "art", "product": "ticket",
                                                      "idempotency_key": "pending-order-1"})
    assert status == 201 and pending["order"]["status"] == "pending"  # unpaid: counts nowhere

    status, body = await creator.get("/api/creator/dashboard")
    assert status == 200, body
    rooms = {r["slug"]: r for r in body["rooms"]}
    assert [r["slug"] for r in body["rooms"]] == ["maths", "art", "free-talk"]
    maths, art, free = rooms["maths"], rooms["art"], rooms["free-talk"]
    assert maths["tickets_sold"] == 3  # ticket + bundle + the EUR ticket; the refunded one no longer counts
    assert maths["revenue"] == [
        {"currency": "EUR", "gross": 990, "refunded": 0, "net": 990},
        {"currency": "USD", "gross": 990 + 1490 + 990 + 300 + 500, "refunded": 990, "net": 3280},
    ]
    # the creator's share (10% platform fee, rounded in the creator's favour), net of the refund
    assert maths["earnings"] == [{"currency": "EUR", "amount": 891},
                                 {"currency": "USD", "amount": 891 + 1341 + 270 + 450}]
    assert (art["title"], art["tickets_sold"]) == ("Drawing <b>hands</b>", 1)
    assert art["revenue"] == [{"currency": "EUR", "gross": 1000, "refunded": 0, "net": 1000}]
    assert art["earnings"] == [{"currency": "EUR", "amount": 900}]
    assert (free["tickets_sold"], free["revenue"], free["earnings"], free["sessions"]) == (0, [], [], [])
    assert body["balance"] == [{"currency": "EUR", "amount": 891 + 900}, {"currency": "USD", "amount": 2952}]
    assert body["payouts"] == []

    # the balance agrees with the ledger's creator account as the admin sees it
    admin = await Api.sign_up(base, "viewer")
    await app[PAYWALL].accounts.set_role(admin.user["email"], "admin")
    status, ledger = await admin.get("/api/admin/ledger")
    assert status == 200 and ledger["balanced"]
    account = f"creator:{creator.user['id']}"
    assert sorted((a["currency"], -a["balance"]) for a in ledger["accounts"] if a["account"] == account) == [
        (b["currency"], b["amount"]) for b in body["balance"]]

    # the rival sees only chem
    status, other = await rival.get("/api/creator/dashboard")
    assert [r["slug"] for r in other["rooms"]] == ["chem"]
    assert other["balance"] == [{"currency": "USD", "amount": 630}]


async def test_sessions_and_the_audience_of_one(paywall_app):
    base, app = paywall_app
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator, slug="maths")
    rival = await Api.sign_up(base, "creator")
    await paid_room(rival, slug="chem")

    first = await log_session(app, "maths", 7200, [(0, 0), (60, 4), (120, 2)], end=180)
    second = await log_session(app, "maths", 600, [(0, 1), (10, 3)], end=None)  # live now
    theirs = await log_session(app, "chem", 300, [(0, 9)], end=30)
    await log_session(app, "open", 300, [(0, 5)], end=30)  # a STAGEPASS_ROOMS room: not logged

    status, body = await creator.get("/api/creator/dashboard")
    assert status == 200
    (maths,) = body["rooms"]
    assert maths["sessions_total"] == 2
    newest, oldest = maths["sessions"]
    assert (newest["id"], newest["live"], newest["ended_at"]) == (second, True, None)
    assert (newest["peak_viewers"], newest["avg_viewers"], newest["duration_ms"]) == (3, 1.0, 10_000)
    assert (oldest["id"], oldest["live"]) == (first, False)
    assert oldest["peak_viewers"] == 4
    assert oldest["avg_viewers"] == pytest.approx((0 * 60 + 4 * 60 + 2 * 60) / 180, abs=0.01)
    assert oldest["duration_ms"] == 180_000 and oldest["samples"] == 4
    assert oldest["started_at"].endswith("Z") and oldest["ended_at"].endswith("Z")

    status, body = await creator.get(f"/api/creator/broadcasts/{first}/audience")
    assert status == 200, body
    assert body["room"] == {"slug": "maths", "title": "Live maths"}
    assert body["session"]["id"] == first
    assert body["samples"] == [[0, 0], [60_000, 4], [120_000, 2], [180_000, 2]]

    # another creator's broadcast is not found, exactly like one that does not exist
    status, body = await creator.get(f"/api/creator/broadcasts/{theirs}/audience")
    assert (status, body["error"]["code"]) == (404, "broadcast_not_found")
    status, missing = await creator.get("/api/creator/broadcasts/0123456789abcdef/audience")
    assert (status, missing) == (404, body)
    status, body = await rival.get(f"/api/creator/broadcasts/{theirs}/audience")
    assert status == 200 and body["samples"] == [[0, 9], [30_000, 9]]

    # an admin may read any session
    admin = await Api.sign_up(base)
    await app[PAYWALL].accounts.set_role(admin.user["email"], "admin")
    status, body = await admin.get(f"/api/creator/broadcasts/{first}/audience")
    assert status == 200 and body["room"]["slug"] == "maths"


async def test_who_may_read_the_dashboard(paywall_app):
    base, app = paywall_app
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator, slug="maths")
    session = await log_session(app, "maths", 100, [(0, 1)], end=10)
    viewer = await Api.sign_up(base)
    anonymous = Api(base)

    for path in ("/api/creator/dashboard", f"/api/creator/broadcasts/{session}/audience"):
        status, body = await anonymous.get(path)
        assert (status, body["error"]["code"]) == (401, "login_required"), path
        status, body = await anonymous.get(path, token="not-a-login-token")
        assert status == 401, path
        status, body = await viewer.get(path)
        assert (status, body["error"]["code"]) == (403, "not_a_creator"), path

    for bad in ("NOT-HEX", "ABCDEF0123456789", "0123456789abcdef0123456789abcdef0", "abc%00", "%20"):
        status, body = await creator.get(f"/api/creator/broadcasts/{bad}/audience")
        assert (status, body["error"]["code"]) == (400, "invalid_broadcast"), bad

    status, body = await creator.call("POST", "/api/creator/dashboard")
    assert status == 405

    newcomer = await Api.sign_up(base, "creator")
    status, body = await newcomer.get("/api/creator/dashboard")
    assert status == 200
    assert (body["rooms"], body["balance"], body["payouts"]) == ([], [], [])
