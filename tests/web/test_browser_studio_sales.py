"""The studio's "Sales and team" panel in a real Chromium against a real server: the creator
creates a coupon (after a refused empty code) and disables it, refunds a buyer's ticket,
sets the minimum price of a paid question and appoints then dismisses a moderator, all from
the page; then offers a monthly subscription and creates a course (and adds a room to it) from
the studio, and viewers subscribe and buy the course from the creator's page through the dev
checkout. The API sees every change; the ledger balances."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from tests.support.browser import SCREENSHOTS, open_page
from tests.support.pass_fixtures import admin_of, ledger
from tests.support.paywall_fixtures import Api, buy, paid_room

pytestmark = pytest.mark.e2e


async def test_studio_sales_and_team(sqlite_app, browser):
    base, app = sqlite_app
    boss = await admin_of(base, app)
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator)
    await paid_room(creator, "physics")
    viewer = await Api.sign_up(base)
    student = await Api.sign_up(base)
    order = await buy(viewer, "maths")
    helper = await Api.sign_up(base, email=f"helper-{secrets.token_hex(3)}@example.org")
    log: list[str] = []
    dialogs: list[str] = []
    page = await open_page(browser, base, "studio-sales", log, login=creator.token)
    page.on("dialog", lambda d: (dialogs.append(d.message), asyncio.ensure_future(d.accept())))
    try:
        await page.goto(f"{base}/static/studio.html?room=maths")
        await page.locator("#sales-panel").wait_for()
        await page.locator('#order-list li[data-status="paid"]').wait_for()
        assert await page.is_visible("#coupons-empty")

        # coupons: an empty code is refused with the server's message; then one is created and disabled
        await page.fill("#coupon-value", "20")
        await page.click("#coupon-add")
        await page.wait_for_function("document.getElementById('coupon-status').dataset.state === 'error'")
        assert "code" in await page.text_content("#coupon-status")
        await page.fill("#coupon-code", "early")
        await page.fill("#coupon-value", "20")
        await page.click("#coupon-add")
        await page.locator('#coupon-list li[data-coupon="EARLY"][data-active="true"]').wait_for()
        await page.click('#coupon-list li[data-coupon="EARLY"] button')
        await page.locator('#coupon-list li[data-coupon="EARLY"][data-active="false"]').wait_for()
        _, body = await creator.get("/api/rooms/maths/coupons")
        assert [(c["code"], c["kind"], c["value"], c["active"]) for c in body["coupons"]] == [("EARLY", "percent", 20, False)]

        # the buyer's ticket, refunded after a confirmation
        row = page.locator(f'#order-list li[data-order="{order["id"]}"]')
        assert "Viewer" in await row.text_content() and "ticket" in await row.text_content()
        await row.locator("button").click()
        await page.locator(f'#order-list li[data-order="{order["id"]}"][data-status="refunded"]').wait_for()
        assert len(dialogs) == 1 and "Refund the ticket of Viewer" in dialogs[0]
        _, body = await viewer.get(f"/api/orders/{order['id']}")
        assert body["order"]["status"] == "refunded"
        money = await ledger(boss)
        assert money.get(("cash:dev", "USD"), 0) == 0

        # the minimum price of a paid question (a bad amount is refused on the page)
        await page.fill("#qmin-price", "two")
        await page.click("#qmin-save")
        await page.wait_for_function("document.getElementById('qmin-status').dataset.state === 'error'")
        await page.fill("#qmin-price", "2.50")
        await page.click("#qmin-save")
        await page.wait_for_function("document.getElementById('qmin-status').dataset.state === 'ok'")
        _, body = await creator.get("/api/catalog/maths")
        assert body["room"]["question_min_price"] == 250

        # a moderator appointed by email (an unknown one refused), then dismissed
        await page.fill("#mod-email", "nobody@example.org")
        await page.click("#mod-appoint")
        await page.wait_for_function("document.getElementById('team-status').dataset.state === 'error'")
        await page.fill("#mod-email", helper.user["email"])
        await page.click("#mod-appoint")
        await page.locator(f'#moderator-list li[data-user="{helper.user["id"]}"]').wait_for()
        _, body = await creator.get("/api/rooms/maths/moderators")
        assert [m["user_id"] for m in body["moderators"]] == [helper.user["id"]]
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.locator("#sales-panel").screenshot(path=str(SCREENSHOTS / "studio-sales.png"))
        await page.click(f'#moderator-list li[data-user="{helper.user["id"]}"] button')
        await page.wait_for_function("document.querySelectorAll('#moderator-list li').length === 0")
        _, body = await creator.get("/api/rooms/maths/moderators")
        assert body["moderators"] == []

        # a monthly subscription offered from the studio (a bad price refused on the page) ...
        await page.locator("#plans-panel").wait_for()
        await page.fill("#plan-month", "15,5x")
        await page.click("#plans-save")
        await page.wait_for_function("document.getElementById('plans-status').dataset.state === 'error'")
        await page.fill("#plan-month", "15.00")
        await page.click("#plans-save")
        await page.wait_for_function("document.getElementById('plans-status').dataset.state === 'ok'")
        _, body = await viewer.get(f"/api/creators/{creator.user['id']}/plans")
        assert [(p["interval"], p["price"], p["currency"]) for p in body["plans"]] == [("month", 1500, "USD")]

        # ... and a viewer subscribes from the creator's page, through the dev checkout and back
        fan = await open_page(browser, base, "creator-page", log, login=viewer.token)
        try:
            await fan.goto(f"{base}/static/creator.html?id={creator.user['id']}")
            button = fan.locator('#plans button[data-interval="month"]')
            assert "15.00" in await button.text_content()
            await button.click()
            await fan.wait_for_url("**/pay/dev/passes/**")
            await fan.click("#confirm")
            await fan.wait_for_url(f"**/static/creator.html?id={creator.user['id']}")
            await fan.locator("#subscribed").wait_for()
            assert (await fan.text_content("#subscribed")).startswith("Subscribed until")
            assert await fan.locator("#plans button").count() == 0
        finally:
            await fan.context.close()
        _, body = await viewer.get("/api/catalog/maths")
        assert body["owned"] == ["replay", "ticket"]

        # a course of one room that takes the rooms added later, created in the studio; one more room added
        await page.fill("#course-slug", "mechanics")
        await page.fill("#course-title", "Mechanics course")
        await page.fill("#course-price", "40")
        await page.check('#course-rooms input[value="maths"]')
        await page.check("#course-later")
        await page.click("#course-create")
        course = page.locator('#my-courses li[data-series="mechanics"]')
        await course.wait_for()
        await course.locator("select").select_option("physics")
        await course.locator("button").click()
        await page.wait_for_function("document.getElementById('course-status').textContent.startsWith('Added physics')")
        _, body = await viewer.get("/api/series/mechanics")
        assert (body["series"]["price"], body["series"]["rooms"], body["series"]["include_later"]) == \
            (4000, ["maths", "physics"], True)

        # a student buys it from the creator's page
        shop = await open_page(browser, base, "courses", log, login=student.token)
        try:
            await shop.goto(f"{base}/static/creator.html?id={creator.user['id']}")
            buy_course = shop.locator('#course-list li[data-series="mechanics"] button')
            assert "40.00" in await buy_course.text_content()
            await buy_course.click()
            await shop.wait_for_url("**/pay/dev/passes/**")
            await shop.click("#confirm")
            await shop.locator('#course-list li[data-series="mechanics"] .badge').wait_for()
        finally:
            await shop.context.close()
        _, body = await student.get("/api/me/entitlements")
        assert body["entitlements"] == {"maths": ["replay", "ticket"], "physics": ["replay", "ticket"]}
        money = await ledger(boss)
        assert money[("cash:dev", "USD")] == 1500 + 4000
        assert not [line for line in log if "pageerror" in line], log
    finally:
        await page.context.close()
