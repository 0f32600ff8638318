"""Following a creator and the header's inbox in Chromium: a viewer follows from the creator
page, hears of a newly scheduled room in the header's inbox, opens it (read), and turns a
kind of email off on the settings page."""

from __future__ import annotations

import datetime as dt

import pytest

from stagepass.app import create_app
from tests.support.browser import SCREENSHOTS, open_page
from tests.support.paywall_fixtures import Api, paid_room, paywall_settings

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


async def test_follow_inbox_and_settings_in_the_browser(aiohttp_server, tmp_path, browser):
    server = await aiohttp_server(create_app(paywall_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}")))
    base = str(server.make_url("")).rstrip("/")
    creator = await Api.sign_up(base, "creator")
    await creator.patch("/api/me/profile", {"bio": "Maths <b>for</b> everyone"})
    await paid_room(creator, slug="algebra", title="Algebra 1")
    viewer = await Api.sign_up(base)
    log: list[str] = []
    page = await open_page(browser, base, "viewer", log, login=viewer.token)
    try:
        await page.goto(f"{base}/static/creator.html?id={creator.user['id']}")
        await page.wait_for_selector("#status[data-state=ready]", state="attached")
        assert await page.text_content("#bio") == "Maths <b>for</b> everyone"  # text, never HTML
        assert await page.text_content("#followers") == "0 followers"
        await page.click("#follow")
        await page.wait_for_function("document.getElementById('followers').textContent === '1 follower'")
        assert await page.text_content("#follow") == "Unfollow"
        assert (await creator.get(f"/api/creators/{creator.user['id']}"))[1]["followers"] == 1

        starts = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=2)).isoformat().replace("+00:00", "Z")
        assert (await creator.patch("/api/rooms/algebra", {"starts_at": starts}))[0] == 200
        await page.reload()
        await page.wait_for_function("document.getElementById('inbox-count')?.textContent === '1'")
        await page.click("#inbox-button")
        item = page.locator("#inbox-list li.unread a")
        assert (await item.text_content()).startswith("Algebra 1 is scheduled for ")
        await page.screenshot(path=str(SCREENSHOTS / "creator-page-inbox.png"))
        await item.click()
        await page.wait_for_url("**/static/room.html?room=algebra")
        await page.wait_for_function("document.getElementById('inbox-count')?.textContent === ''")
        assert (await viewer.get("/api/me/notifications"))[1]["unread"] == 0

        await page.goto(f"{base}/static/notifications.html")
        await page.wait_for_selector("#status[data-state=ready]")
        await page.click("input[data-kind=live][data-channel=email]")
        await page.wait_for_function("document.getElementById('status').textContent === 'Saved.'")
        prefs = (await viewer.get("/api/me/notification-settings"))[1]["preferences"]
        assert prefs["live"] == {"inbox": True, "email": False} and prefs["replay"]["email"] is True
    finally:
        await page.context.close()
    assert not [line for line in log if "pageerror" in line], log
