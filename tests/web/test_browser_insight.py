"""Insight in real pages in Chromium: an anonymous visitor's catalog and room visits carry
the visitor cookie and signing up joins them to the account; the replay page's heartbeat
and resuming there; the creator's insight page (charts, costs); "for you" and "viewers also
bought"; downloading one's data and deleting the account."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from insight.assembly import INSIGHT
from insight.visitors import VISITOR_COOKIE
from stagepass.app import create_app
from tests.support.browser import SCREENSHOTS, open_page
from tests.support.insight_fixtures import events_of, script_a_room
from tests.support.paywall_fixtures import Api, buy, paid_room, paywall_settings
from tests.support.replays import install

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


async def wait_for_cookie(page, name: str) -> dict:
    for _ in range(100):
        cookies = {c["name"]: c for c in await page.context.cookies()}
        if name in cookies:
            return cookies[name]
        await page.wait_for_timeout(100)
    raise AssertionError(f"no {name} cookie")


async def test_page_visits_in_chromium_are_joined_to_the_account_at_sign_up(aiohttp_server, tmp_path, browser):
    app = create_app(paywall_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", event_flush_ms=50))
    base = str((await aiohttp_server(app)).make_url("")).rstrip("/")
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator, slug="maths")
    log: list[str] = []
    page = await open_page(browser, base, "visitor", log)

    async def pages() -> list:
        return [(json.loads(e.data)["page"], e.user_id) for e in await events_of(app, visitor=visitor)]

    await page.goto(f"{base}/")
    # the pages' scripts run once the language catalogue is in (after the load event): the visit
    # is reported then, so the visitor stays on the catalog until it is
    visitor = (await wait_for_cookie(page, VISITOR_COOKIE))["value"]
    for _ in range(100):
        if len(await pages()) == 1:
            break
        await page.wait_for_timeout(100)
    await page.goto(f"{base}/static/room.html?room=maths")
    await page.wait_for_function("document.getElementById('status').dataset.state === 'needs-login'")
    cookies = {c["name"]: c for c in await page.context.cookies()}
    assert cookies[VISITOR_COOKIE]["value"] == visitor and cookies[VISITOR_COOKIE]["httpOnly"]

    for _ in range(100):
        if len(await pages()) == 2:
            break
        await page.wait_for_timeout(100)
    assert await pages() == [("catalog", None), ("room", None)]

    await page.goto(f"{base}/static/login.html?next=/static/room.html%3Froom%3Dmaths")
    await page.fill("#signup-email", "newcomer@example.org")
    await page.fill("#signup-password", "correct horse battery")
    await page.click("#signup-submit")
    await page.wait_for_url("**/static/room.html?room=maths")
    await page.wait_for_function("document.getElementById('status').dataset.state === 'needs-ticket'")
    status, me = await Api(base).post("/api/auth/login", {"email": "newcomer@example.org",
                                                          "password": "correct horse battery"})
    user_id = me["user"]["id"]
    for _ in range(100):
        if len(await pages()) == 3:
            break
        await page.wait_for_timeout(100)
    assert await pages() == [("catalog", user_id), ("room", user_id), ("room", user_id)]
    assert not [line for line in log if "pageerror" in line], log


async def test_the_creator_reads_the_insight_page_and_adds_a_cost(aiohttp_server, tmp_path, browser):
    app = create_app(paywall_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", event_flush_ms=50))
    base = str((await aiohttp_server(app)).make_url("")).rstrip("/")
    creator, _ = await script_a_room(app, base)
    log: list[str] = []
    page = await open_page(browser, base, "insight", log, login=creator.token)
    await page.goto(f"{base}/static/dashboard.html")
    await page.click("a[href='/static/analytics.html?room=maths']")
    await page.wait_for_function("document.getElementById('status').dataset.state === 'ready'")
    people = await page.eval_on_selector_all("#funnel-table td.people", "cells => cells.map(c => c.textContent)")
    assert people == ["5", "2", "3", "2", "1"]
    charts = await page.evaluate("""() => { const c = window.stagepass.charts();
        return { funnel: c.funnel.data.datasets[0].data, live: c.retention.data.datasets[0].data.length,
                 drops: c.retention.data.datasets[2].data.map(p => p.x) }; }""")
    assert charts == {"funnel": [5, 2, 3, 2, 1], "live": 11, "drops": [3, 5]}
    assert "太棒了" in await page.text_content("#chapters") or "线性" in await page.text_content("#chapters")
    assert await page.text_content("#revenue [data-key=roi]") == "-40.6 %"  # (891 - 1500) / 1500
    await page.screenshot(path=str(SCREENSHOTS / "insight-room.png"), full_page=True)

    await page.select_option("#cost-category", "promotion")
    await page.fill("#cost-amount", "5")
    await page.click("#cost-submit")
    await page.wait_for_function("document.querySelector('#revenue [data-key=costs]').textContent.includes('20')")
    assert await page.text_content("#revenue [data-key=roi]") == "-55.5 %"  # (891 - 2000) / 2000 = -0.5545
    assert not [line for line in log if "pageerror" in line or "console.error" in line], log


async def test_suggestions_on_the_pages_and_deleting_the_account(aiohttp_server, tmp_path, browser):
    app = create_app(paywall_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", event_flush_ms=50))
    base = str((await aiohttp_server(app)).make_url("")).rstrip("/")
    creator = await Api.sign_up(base, "creator")
    for slug, title in (("gt-1", "Fingerstyle guitar"), ("gt-2", "Blues guitar"), ("ck-1", "Sourdough bread")):
        await paid_room(creator, slug=slug, title=title, tags=["guitar" if slug.startswith("gt") else "cooking"])
    for _ in range(2):
        fan = await Api.sign_up(base)
        await buy(fan, "gt-1")
        await buy(fan, "gt-2")
    me = await Api.sign_up(base, email="buyer@example.org")
    await buy(me, "gt-1")
    log: list[str] = []
    page = await open_page(browser, base, "buyer", log, login=me.token)
    await page.goto(f"{base}/")
    await page.wait_for_selector("#for-you:not([hidden]) li")
    shown = await page.eval_on_selector_all("#for-you li", "items => items.map(i => i.dataset.suggested)")
    assert shown[0] == "gt-2" and "gt-1" not in shown  # bought together by the others; never what I own
    await page.goto(f"{base}/static/room.html?room=gt-1")
    await page.wait_for_selector("#also-bought:not([hidden]) li")
    assert (await page.eval_on_selector_all("#also-bought li", "items => items.map(i => i.dataset.suggested)"))[0] == "gt-2"

    await page.goto(f"{base}/static/login.html")
    await page.wait_for_selector("#my-data:not([hidden])")
    async with page.expect_download() as download:
        await page.click("#download-data")
    data = json.loads(Path(await (await download.value).path()).read_text())
    assert data["account"]["email"] == "buyer@example.org" and [o["room"] for o in data["orders"]] == ["gt-1"]
    await page.fill("#delete-password", "correct horse battery")
    await page.click("#delete-submit")
    await page.wait_for_url(f"{base}/")
    assert (await me.get("/api/me"))[0] == 401
    assert (await Api(base).post("/api/auth/login", {"email": "buyer@example.org",
                                                     "password": "correct horse battery"}))[0] == 401
    assert not [line for line in log if "pageerror" in line], log


async def test_the_replay_page_reports_progress_and_resumes_there(aiohttp_server, tmp_path, browser, packaged):
    settings = paywall_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", event_flush_ms=50)
    app = create_app(settings)
    base = str((await aiohttp_server(app)).make_url("")).rstrip("/")
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator, slug="maths")
    rec_id = install(packaged, settings.server.data_dir, "maths")
    buyer = await Api.sign_up(base)
    await buy(buyer, "maths", "replay")
    log: list[str] = []
    page = await open_page(browser, base, "replay", log, login=buyer.token)
    await page.goto(f"{base}/static/replay.html?recording={rec_id}")
    await page.wait_for_function("document.getElementById('status').dataset.state === 'ready'")
    assert await page.evaluate("window.stagepass.resumedAt") is None  # never watched: from the start
    await page.evaluate("const v = document.getElementById('video'); v.muted = true; v.play()")
    await page.wait_for_function("document.getElementById('video').currentTime > 1.5", timeout=15_000)
    position = await page.evaluate("(() => { const v = document.getElementById('video'); v.pause(); "
                                   "return Math.floor(v.currentTime * 1000); })()")
    for _ in range(100):  # the pause sent a heartbeat
        beats = await events_of(app, kind="replay_progress")
        if beats:
            break
        await page.wait_for_timeout(100)
    (beat,) = beats
    assert (beat.user_id, beat.broadcast, abs(beat.t_ms - position) < 300) == (buyer.user["id"], rec_id, True)
    assert [json.loads(e.data)["page"] for e in await events_of(app, kind="page_visit")] == ["replay"]

    await page.reload()
    await page.wait_for_function("window.stagepass.resumedAt !== undefined && window.stagepass.resumedAt !== null")
    assert await page.evaluate("window.stagepass.resumedAt") == beat.t_ms
    await page.wait_for_function(f"Math.abs(document.getElementById('video').currentTime - {beat.t_ms / 1000}) < 0.5")
    assert await page.locator("#drop-offs").is_hidden()  # a viewer sees no analytics

    # the creator sees where viewers left on the replay's timeline
    room_id = beat.room_id
    for user_id, t_ms in ((buyer.user["id"], 0), (creator.user["id"], 0)):
        app[INSIGHT].events.record("live_join", user_id=user_id, room_id=room_id, broadcast=rec_id, t_ms=t_ms)
    app[INSIGHT].events.record("live_leave", user_id=creator.user["id"], room_id=room_id, broadcast=rec_id, t_ms=30_000)
    app[INSIGHT].events.record("live_leave", user_id=buyer.user["id"], room_id=room_id, broadcast=rec_id, t_ms=120_000)
    await app[INSIGHT].events.flush()
    studio = await open_page(browser, base, "creator-replay", log, login=creator.token)
    await studio.goto(f"{base}/static/replay.html?recording={rec_id}")
    await studio.wait_for_selector("#drop-offs:not([hidden]) span.drop-off")
    marks = await studio.eval_on_selector_all("#drop-offs span", "s => s.map(x => [x.dataset.t, x.title])")
    # live: the creator left at 0:30 (half the joiners); replay: the buyer's heartbeats stop in minute 0
    assert marks == [["60000", "live: −50 % at minute 1"], ["60000", "replay: −100 % at minute 1"]]
    assert not [line for line in log if "pageerror" in line], log
