"""Behaviour events from real pages in Chromium: an anonymous visitor's catalog and room
visits carry the visitor cookie, and signing up on the login page joins them to the new
account; the pages load without errors."""

from __future__ import annotations

import json

import pytest

from insight.visitors import VISITOR_COOKIE
from stagepass.app import create_app
from tests.browser import open_page
from tests.insight_fixtures import events_of
from tests.paywall_fixtures import Api, paid_room, paywall_settings

pytestmark = pytest.mark.slow


async def test_page_visits_in_chromium_are_joined_to_the_account_at_sign_up(aiohttp_server, tmp_path, browser):
    app = create_app(paywall_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", event_flush_ms=50))
    base = str((await aiohttp_server(app)).make_url("")).rstrip("/")
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator, slug="maths")
    log: list[str] = []
    page = await open_page(browser, base, "visitor", log)
    await page.goto(f"{base}/")
    await page.goto(f"{base}/static/room.html?room=maths")
    await page.wait_for_function("document.getElementById('status').dataset.state === 'needs-login'")
    cookies = {c["name"]: c for c in await page.context.cookies()}
    visitor = cookies[VISITOR_COOKIE]["value"]
    assert cookies[VISITOR_COOKIE]["httpOnly"]

    async def pages() -> list:
        return [(json.loads(e.data)["page"], e.user_id) for e in await events_of(app, visitor=visitor)]

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
