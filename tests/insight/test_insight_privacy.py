"""Privacy: a person downloads everything held about them; deleting the account leaves no
personal data anywhere (every table searched) and a balanced ledger with the creator's
earnings unchanged; raw events older than the retention period are deleted."""

from __future__ import annotations

import datetime as dt

import aiohttp
from sqlalchemy import select, text

from insight.assembly import INSIGHT
from insight.models import BehaviourEvent
from paywall.http import PAYWALL
from paywall.models import Base
from tests.support.insight_fixtures import events_of
from tests.support.paywall_fixtures import Api, buy, connected, paid_room
import pytest

pytestmark = pytest.mark.inprocess


async def everything(app) -> str:
    """Every row of every table of the schema, as text."""
    out = []
    async with app[PAYWALL].db() as s:
        for table in Base.metadata.sorted_tables:
            out.extend(repr(tuple(row)) for row in (await s.execute(select(table))).all())
    return "\n".join(out)


async def test_download_then_delete_leaves_no_personal_data_and_a_balanced_ledger(paywall_app):
    base, app = paywall_app
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator, slug="maths")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),
                                     headers={"Sec-Fetch-Site": "same-origin"}) as http:
        async with http.post(base + "/api/events", json={"kind": "page_visit", "page": "room", "room": "maths"}) as r:
            assert r.status == 204
        visitor = http.cookie_jar.filter_cookies(base)["stagepass_visitor"].value
        async with http.post(base + "/api/auth/signup", json={"email": "Private.Person@example.org",
                                                              "password": "correct horse battery",
                                                              "display_name": "Zyxwv Private"}) as r:
            assert r.status == 201
            body = await r.json()
    person = Api(base, body["token"])
    person.user = body["user"]
    await buy(person, "maths")
    await buy(person, "maths", product="tip", amount=300, message="thanks Zyxwv")
    chat = await connected(base, person)
    try:
        assert (await chat.call("danmaku:send", {"text": "secret-danmaku-qwerty"}))["ok"]
        assert (await chat.call("question:ask", {"text": "secret question asdfgh?"}))["ok"]
    finally:
        await chat.close()
    await app[INSIGHT].events.flush()
    status, earnings_before = await creator.get("/api/creator/earnings")

    status, mine = await person.get("/api/me/data")
    assert status == 200
    assert mine["account"]["email"] == "private.person@example.org"
    assert [o["product"] for o in mine["orders"]] == ["ticket", "tip"]
    assert [d["text"] for d in mine["danmaku"]] == ["secret-danmaku-qwerty"]
    assert [q["text"] for q in mine["questions"]] == ["secret question asdfgh?"]
    assert mine["visitor_ids"] == [visitor]
    assert {"page_visit", "checkout_started", "checkout_completed", "danmaku", "question"} <= {e["kind"] for e in mine["events"]}

    assert (await person.call("DELETE", "/api/me", {"password": "wrong password"}))[1]["error"]["code"] == "bad_credentials"
    assert (await person.call("DELETE", "/api/me", {}))[1]["error"]["code"] == "missing_field"
    assert (await creator.call("DELETE", "/api/me", {"password": "correct horse battery"}))[1]["error"]["code"] == \
        "creator_has_rooms"
    assert "private.person@example.org" in await everything(app)  # nothing changed so far
    status, _ = await person.call("DELETE", "/api/me", {"password": "correct horse battery"})
    assert status == 204

    dump = await everything(app)
    for secret in ("private.person", "Zyxwv", "secret-danmaku-qwerty", "asdfgh", visitor):
        assert secret.lower() not in dump.lower(), secret
    assert (await person.get("/api/me"))[0] == 401  # logged out everywhere
    assert (await Api(base).post("/api/auth/login", {"email": "private.person@example.org",
                                                     "password": "correct horse battery"}))[0] == 401
    assert await events_of(app, user_id=person.user["id"]) == []
    async with app[PAYWALL].db() as s:
        orders = (await s.execute(text("SELECT product, status FROM orders WHERE user_id = :u ORDER BY product"),
                                  {"u": person.user["id"]})).all()
        assert [tuple(o) for o in orders] == [("ticket", "paid"), ("tip", "paid")]  # kept for accounting
    await app[PAYWALL].accounts.set_role(creator.user["email"], "admin")
    status, ledger = await creator.get("/api/admin/ledger")
    assert status == 200 and ledger["balanced"] and ledger["unbalanced_orders"] == []
    await app[PAYWALL].accounts.set_role(creator.user["email"], "creator")
    assert (await creator.get("/api/creator/earnings"))[1] == earnings_before


async def test_raw_events_older_than_the_retention_period_are_deleted(paywall_app):
    base, app = paywall_app
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator, slug="maths")
    for _ in range(3):
        assert (await creator.post("/api/events", {"kind": "page_visit", "page": "room", "room": "maths"}))[0] == 204
    insight = app[INSIGHT]
    await insight.events.flush()
    old = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=insight.settings.insight.event_retention_days + 1)
    async with insight.db() as s:
        first = (await s.execute(select(BehaviourEvent.id).order_by(BehaviourEvent.id).limit(2))).scalars().all()
        await s.execute(BehaviourEvent.__table__.update().where(BehaviourEvent.id.in_(first)).values(at=old))
        await s.commit()
    assert await insight.purge_expired() == 2
    assert len(await events_of(app)) == 1
    assert await insight.purge_expired() == 0
