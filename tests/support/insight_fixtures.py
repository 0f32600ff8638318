"""Helpers for insight tests: the behaviour events a server has written."""

from __future__ import annotations

import datetime as dt
from typing import Any

import aiohttp
from sqlalchemy import select

from insight.assembly import INSIGHT
from insight.models import BehaviourEvent
from interaction.models import Danmaku
from paywall.http import PAYWALL
from paywall.models import BroadcastRecord
from tests.support.paywall_fixtures import Api, buy, paid_room

BROADCAST = "b0b0b0b0b0b0b0b0"
MIN = 60_000


async def events_of(app, **where: Any) -> list[BehaviourEvent]:
    """Every event written so far (pending ones are flushed first), oldest first."""
    insight = app[INSIGHT]
    await insight.events.flush()
    query = select(BehaviourEvent).order_by(BehaviourEvent.id)
    for column, value in where.items():
        query = query.where(getattr(BehaviourEvent, column) == value)
    async with insight.db() as s:
        return list((await s.execute(query)).scalars())


async def script_a_room(app, base: str):
    """A room with five people and one ten-minute session, driven through the API where a
    user would (pages, orders, refunds, costs) and the event store where the media paths would."""
    creator = await Api.sign_up(base, "creator")
    room = (await paid_room(creator, slug="maths", preview_seconds=60))["room"]
    a, b, c, d = [await Api.sign_up(base) for _ in range(4)]
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:  # an anonymous visitor
        async with http.post(base + "/api/events", json={"kind": "page_visit", "page": "room", "room": "maths"}) as r:
            assert r.status == 204
    for who in (a, b, c, d):
        assert (await who.post("/api/events", {"kind": "page_visit", "page": "room", "room": "maths"}))[0] == 204
    await buy(a, "maths")
    order_b = await buy(b, "maths")
    status, resp = await c.post("/api/orders", {"room": "maths", "product": "ticket", "idempotency_key": "c-abandons"})
    assert (await c.post(f"/pay/dev/{resp['order']['id']}", {"action": "decline"}))[0] == 200
    assert (await creator.post(f"/api/orders/{order_b['id']}/refund"))[0] == 200
    for cost in ({"category": "production", "amount": 1000, "note": "camera"}, {"category": "promotion", "amount": 500}):
        assert (await creator.post("/api/creator/insight/rooms/maths/costs", cost))[0] == 201

    events = app[INSIGHT].events
    ida, idb, idd = a.user["id"], b.user["id"], d.user["id"]
    for who in (ida, idd):
        events.record("preview_start", user_id=who, room_id=room["id"], broadcast=BROADCAST, t_ms=0)
    events.record("live_join", user_id=ida, room_id=room["id"], broadcast=BROADCAST, t_ms=0)
    events.record("live_join", user_id=idb, room_id=room["id"], broadcast=BROADCAST, t_ms=0)
    events.record("live_leave", user_id=idb, room_id=room["id"], broadcast=BROADCAST, t_ms=2 * MIN)
    events.record("live_leave", user_id=ida, room_id=room["id"], broadcast=BROADCAST, t_ms=10 * MIN)
    for t in range(2 * MIN, 4 * MIN + 1, 10_000):  # B catches up on the replay: minutes 2 to 4
        events.record("replay_progress", user_id=idb, room_id=room["id"], broadcast=BROADCAST, t_ms=t)
    texts = ["太棒了 线性回归"] * 12 + ["hello", "bye"]
    times = [5 * MIN + 400 * i for i in range(12)] + [30_000, 9 * MIN]
    for t in times:
        events.record("danmaku", user_id=ida, room_id=room["id"], broadcast=BROADCAST, t_ms=t)
    for t in (MIN, 6 * MIN):
        events.record("question", user_id=ida, room_id=room["id"], broadcast=BROADCAST, t_ms=t)
    await events.flush()
    started = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=30)
    async with app[PAYWALL].db() as s:
        s.add(BroadcastRecord(id=BROADCAST, room_id=room["id"], started_at=started,
                              ended_at=started + dt.timedelta(minutes=10), peak_viewers=2, avg_viewers=1.5))
        await s.flush()
        s.add_all(Danmaku(room_id=room["id"], broadcast=BROADCAST, user_id=ida, text=text, color="#ffffff",
                          mode="scroll", t_ms=t) for text, t in zip(texts, times))
        await s.commit()
    return creator, (a, b, c, d)
