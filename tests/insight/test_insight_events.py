"""Behaviour events: recorded off the request path from the pages' beacon, the orders, the
WHEP viewers and the chat; the visitor cookie joined to the account at sign-up and log-in;
bad input refused with nothing recorded; the last replay position for resuming."""

from __future__ import annotations

import asyncio
import json
import secrets

import aiohttp
import pytest
from sqlalchemy import func, select

from core.settings import ConfigError, Settings
from insight.assembly import INSIGHT
from insight.models import BehaviourEvent
from insight.store import EventStore
from paywall.db import Database
from insight.visitors import VISITOR_COOKIE
from signalling.whip import ROOMS
from stagepass.app import create_app
from tests.support.waiting import wait_for
from tests.support.insight_fixtures import events_of
from tests.support.paywall_fixtures import Api, buy, connected, paid_room, paywall_settings, view_token
from tests.support.peers import Publisher, Viewer

pytestmark = pytest.mark.inprocess


def insight_app(tmp_path, database_url: str, **overrides):
    return create_app(paywall_settings(tmp_path, database_url, event_flush_ms=50, **overrides))


def browser_session() -> aiohttp.ClientSession:
    """A client that keeps cookies for 127.0.0.1 and says it is a same-origin page."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),
                                 headers={"Sec-Fetch-Site": "same-origin"})


def test_the_event_settings_are_validated():
    assert Settings().insight.event_flush_ms == 1000 and Settings().insight.event_retention_days == 400
    assert Settings.load(["--event-retention-days", "30"], {}).insight.event_retention_days == 30
    for name, bad in (("EVENT_FLUSH_MS", "10"), ("EVENT_RETENTION_DAYS", "0"), ("EVENT_RETENTION_DAYS", "x")):
        with pytest.raises(ConfigError, match=name.lower()):
            Settings.load([], {f"STAGEPASS_{name}": bad})


async def test_visitor_events_are_joined_to_the_account_at_sign_up_and_log_in(aiohttp_server, tmp_path, database_url):
    app = insight_app(tmp_path, database_url)
    base = str((await aiohttp_server(app)).make_url("")).rstrip("/")
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator, slug="maths")
    async with browser_session() as http:
        async with http.get(base + "/") as r:
            assert r.status == 200
        visitor = http.cookie_jar.filter_cookies(base)[VISITOR_COOKIE].value
        assert len(visitor) == 32
        for body in ({"kind": "page_visit", "page": "catalog"}, {"kind": "page_visit", "page": "room", "room": "maths"}):
            async with http.post(base + "/api/events", json=body) as r:
                assert r.status == 204, await r.text()
        anonymous = await events_of(app, visitor=visitor)
        assert [(e.kind, json.loads(e.data)["page"], e.user_id) for e in anonymous] == [
            ("page_visit", "catalog", None), ("page_visit", "room", None)]
        assert anonymous[1].room_id is not None and anonymous[0].room_id is None

        email = f"v-{secrets.token_hex(3)}@example.org"
        async with http.post(base + "/api/auth/signup", json={"email": email, "password": "correct horse battery"}) as r:
            assert r.status == 201
            user_id = (await r.json())["user"]["id"]
        # events written before the sign-up now belong to the account; the next ones too
        async with http.post(base + "/api/events", json={"kind": "page_visit", "page": "room", "room": "maths"}) as r:
            assert r.status == 204
        mine = await events_of(app, visitor=visitor)
        assert [e.user_id for e in mine] == [user_id] * 3

    # the same person on another browser: anonymous first, joined at log-in
    async with browser_session() as http:
        async with http.post(base + "/api/events", json={"kind": "page_visit", "page": "catalog"}) as r:
            assert r.status == 204  # the beacon itself hands out the cookie
        second = http.cookie_jar.filter_cookies(base)[VISITOR_COOKIE].value
        assert second != visitor
        async with http.post(base + "/api/auth/login", json={"email": email, "password": "correct horse battery"}) as r:
            assert r.status == 200
        assert [e.user_id for e in await events_of(app, visitor=second)] == [user_id]


async def test_bad_events_are_refused_precisely_and_record_nothing(paywall_app):
    base, app = paywall_app
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator, slug="maths")
    before = len(await events_of(app))
    cases = [
        ({"kind": "purchase"}, 400, "invalid_kind"),
        ({"kind": "page_visit", "page": "admin"}, 400, "invalid_page"),
        ({"kind": "page_visit", "page": "room"}, 400, "invalid_room"),
        ({"kind": "page_visit", "page": "room", "room": "nowhere"}, 404, "room_not_found"),
        ({"kind": "page_visit", "page": "catalog", "user_id": 1}, 400, "unexpected_field"),
        ({"kind": "replay_progress", "room": "maths", "recording": "XYZ", "t_ms": 5}, 400, "invalid_recording"),
        ({"kind": "replay_progress", "room": "maths", "recording": "ab12", "t_ms": -1}, 400, "invalid_position"),
        ({"kind": "replay_progress", "room": "maths", "recording": "ab12", "t_ms": True}, 400, "invalid_position"),
    ]
    async with browser_session() as http:
        for body, status, code in cases:
            async with http.post(base + "/api/events", json=body) as r:
                assert (r.status, (await r.json())["error"]["code"]) == (status, code), body
        async with http.post(base + "/api/events", data="page_visit") as r:
            assert r.status == 415
        async with http.post(base + "/api/events", json={"kind": "page_visit", "page": "catalog"},
                             headers={"Sec-Fetch-Site": "cross-site"}) as r:
            assert (r.status, (await r.json())["error"]["code"]) == (403, "cross_site_request")
    assert len(await events_of(app)) == before


async def test_replay_position_resumes_where_the_viewer_left(paywall_app):
    base, app = paywall_app
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator, slug="maths")
    viewer = await Api.sign_up(base)
    recording = secrets.token_hex(8)
    assert await viewer.get(f"/api/me/replay-position/{recording}") == (200, {"recording": recording, "t_ms": None})
    for t_ms in (10_000, 20_000, 30_500):
        assert (await viewer.post("/api/events", {"kind": "replay_progress", "room": "maths",
                                                 "recording": recording, "t_ms": t_ms}))[0] == 204
    # answered before the batch is written, and after
    assert (await viewer.get(f"/api/me/replay-position/{recording}"))[1]["t_ms"] == 30_500
    await app[INSIGHT].events.flush()
    assert (await viewer.get(f"/api/me/replay-position/{recording}"))[1]["t_ms"] == 30_500
    other = await Api.sign_up(base)
    assert (await other.get(f"/api/me/replay-position/{recording}"))[1]["t_ms"] is None
    assert (await viewer.get("/api/me/replay-position/NOT-HEX"))[0] == 400


async def test_checkouts_live_sessions_and_chat_are_recorded(aiohttp_server, tmp_path):
    app = insight_app(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}")
    base = str((await aiohttp_server(app)).make_url("")).rstrip("/")
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator, slug="maths", preview_seconds=30)
    buyer, browser = await Api.sign_up(base), await Api.sign_up(base)
    order = await buy(buyer, "maths")
    status, resp = await browser.post("/api/orders", {"room": "maths", "product": "ticket",
                                                      "idempotency_key": secrets.token_hex(8)})
    assert status == 201
    assert (await browser.post(f"/pay/dev/{resp['order']['id']}", {"action": "decline"}))[0] == 200

    peers: list = []
    chat = None
    try:
        status, minted = await creator.post("/api/rooms/maths/tokens", {"scope": "publish"})
        publisher = Publisher(base)
        peers.append(publisher)
        assert await publisher.publish("maths", minted["token"]) == 201
        room = app[ROOMS].get("maths")
        broadcast = room.broadcast.id
        viewer = Viewer(base)
        peers.append(viewer)
        assert await viewer.post("/whep/maths", token=await view_token(buyer, "maths")) == 201, viewer.error
        previewer = Viewer(base)  # no ticket: the free preview
        peers.append(previewer)
        assert await previewer.post("/whep/maths", token=await view_token(browser, "maths")) == 201
        await wait_for(lambda: len(viewer.numbers) > 3, timeout=20)
        chat = await connected(base, buyer)
        assert (await chat.call("danmaku:send", {"text": "hello"}))["ok"]
        assert (await chat.call("like", {"count": 3}))["ok"]
        await asyncio.sleep(0.3)
        assert await viewer.delete() == 200
        assert await previewer.delete() == 200
        await wait_for(lambda: not room.subscribers, timeout=10)
    finally:
        if chat is not None:
            await chat.close()
        for peer in peers:
            await peer.close()

    kinds = [(e.kind, e.user_id) for e in await events_of(app)]
    assert ("checkout_started", buyer.user["id"]) in kinds and ("checkout_completed", buyer.user["id"]) in kinds
    assert ("checkout_abandoned", browser.user["id"]) in kinds
    completed = (await events_of(app, kind="checkout_completed"))[0]
    assert completed.value == 990 and json.loads(completed.data)["order"] == order["id"]
    joins = {e.user_id: e for e in await events_of(app, kind="live_join")}
    leaves = {e.user_id: e for e in await events_of(app, kind="live_leave")}
    assert set(joins) == set(leaves) == {buyer.user["id"], browser.user["id"]}
    for user_id in joins:
        assert joins[user_id].broadcast == leaves[user_id].broadcast == broadcast
        assert 0 <= joins[user_id].t_ms < leaves[user_id].t_ms
    assert [e.user_id for e in await events_of(app, kind="preview_start")] == [browser.user["id"]]
    assert [e.user_id for e in await events_of(app, kind="preview_end")] == [browser.user["id"]]
    (danmaku,) = await events_of(app, kind="danmaku")
    (like,) = await events_of(app, kind="like")
    assert danmaku.user_id == like.user_id == buyer.user["id"] and like.value == 3
    assert danmaku.broadcast == broadcast and danmaku.t_ms > 0


async def test_a_failing_database_keeps_the_batch_and_memory_stays_bounded(tmp_path, caplog):
    db = Database(f"sqlite:///{tmp_path / 'events.db'}")
    await db.migrate()
    store = EventStore(db, max_pending=5)
    real = store.writer.write
    try:
        async def broken(rows):
            raise OSError("database down")

        store.writer.write = broken
        for i in range(7):
            store.record("page_visit", visitor="f" * 32, data={"page": "catalog", "i": i})
        store.record("no_such_kind")
        assert store.dropped == 2 and len(store._pending) == 5
        with pytest.raises(OSError):
            await store.flush()
        assert len(store._pending) == 5  # kept for the next round
        store.writer.write = real
        assert await store.flush() == 5 and store.written == 5
        async with db() as s:
            assert await s.scalar(select(func.count()).select_from(BehaviourEvent)) == 5
        assert "unknown kind 'no_such_kind'" in caplog.text
    finally:
        store.writer.write = real
        await store.close()
        await db.close()
