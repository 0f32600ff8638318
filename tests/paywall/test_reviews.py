"""Ratings and reviews: buyers of a class that took place (a real WHIP broadcast) review it,
an admin moderates, the creator replies; approved reviews show on the room and creator pages."""

from __future__ import annotations

import asyncio

import pytest

from paywall.http import PAYWALL
from stagepass.app import create_app
from tests.support.paywall_fixtures import Api, buy, paid_room, paywall_settings
from tests.support.peers import Publisher

pytestmark = pytest.mark.e2e


async def hold_class(base: str, creator: Api, slug: str) -> None:
    """Broadcast ``slug`` until the creator's dashboard lists the session."""
    key = (await creator.get(f"/api/rooms/{slug}/stream-key"))[1]["stream_key"]
    publisher = Publisher(base, audio=False)
    assert await publisher.publish(slug, key) == 201
    try:
        for _ in range(150):
            rooms = (await creator.get("/api/creator/dashboard"))[1]["rooms"]
            if any(r["slug"] == slug and r["sessions"] for r in rooms):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the broadcast was never recorded")
    finally:
        assert await publisher.delete() == 200
        await publisher.close()


async def test_buyers_review_admins_moderate_creators_reply(aiohttp_server, tmp_path):
    app = create_app(paywall_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", audience_sample_seconds=0.1))
    server = await aiohttp_server(app)
    base = str(server.make_url("")).rstrip("/")
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator)
    buyer, second, stranger, admin = [await Api.sign_up(base) for _ in range(4)]
    await app[PAYWALL].accounts.set_role(admin.user["email"], "admin")
    await buy(buyer, "maths")
    await buy(second, "maths", "replay")

    # before the class took place nobody reviews it
    status, body = await buyer.post("/api/rooms/maths/reviews", {"rating": 5, "text": "great"})
    assert (status, body["error"]["code"]) == (403, "class_not_held")
    await hold_class(base, creator, "maths")

    refusals = [
        (stranger.post("/api/rooms/maths/reviews", {"rating": 5}), 403, "not_a_buyer"),
        (creator.post("/api/rooms/maths/reviews", {"rating": 5}), 403, "own_room"),
        (buyer.post("/api/rooms/maths/reviews", {"rating": 6}), 400, "invalid_rating"),
        (buyer.post("/api/rooms/maths/reviews", {"rating": True}), 400, "invalid_rating"),
        (buyer.post("/api/rooms/maths/reviews", {"rating": 4, "text": "x" * 2001}), 400, "invalid_text"),
        (buyer.post("/api/rooms/maths/reviews", {"rating": 4, "stars": 4}), 400, "unknown_field"),
        (buyer.post("/api/rooms/nope/reviews", {"rating": 4}), 404, "room_not_found"),
        (Api(base).post("/api/rooms/maths/reviews", {"rating": 4}), 401, "login_required"),
    ]
    for call, status, code in refusals:
        got, body = await call
        assert (got, body["error"]["code"]) == (status, code), (code, body)

    status, body = await buyer.post("/api/rooms/maths/reviews", {"rating": 5, "text": "  Clear and <b>fun</b>  "})
    assert status == 201 and body["review"]["status"] == "pending" and body["review"]["text"] == "Clear and <b>fun</b>"
    first = body["review"]["id"]
    second_id = (await second.post("/api/rooms/maths/reviews", {"rating": 2, "text": "too fast"}))[1]["review"]["id"]

    # pending reviews are not public, but their authors see their own
    public = (await stranger.get("/api/rooms/maths/reviews"))[1]
    assert public == {"rating": {"average": None, "count": 0}, "reviews": [], "mine": None}
    assert (await buyer.get("/api/rooms/maths/reviews"))[1]["mine"]["status"] == "pending"

    # moderation: admins only
    assert (await creator.get("/api/admin/reviews"))[0] == 403
    assert (await admin.get("/api/admin/reviews?status=odd"))[1]["error"]["code"] == "invalid_status"
    queue = (await admin.get("/api/admin/reviews"))[1]["reviews"]
    assert [r["id"] for r in queue] == [first, second_id]
    assert (await admin.post(f"/api/admin/reviews/{first}", {"decision": "maybe"}))[1]["error"]["code"] == "invalid_decision"
    assert (await creator.post(f"/api/admin/reviews/{first}", {"decision": "approved"}))[0] == 403
    assert (await admin.post("/api/admin/reviews/999", {"decision": "approved"}))[0] == 404
    assert (await admin.post(f"/api/admin/reviews/{first}", {"decision": "approved"}))[1]["review"]["status"] == "approved"
    assert (await admin.post(f"/api/admin/reviews/{second_id}", {"decision": "rejected"}))[0] == 200
    assert (await admin.get("/api/admin/reviews"))[1]["reviews"] == []

    # the creator replies to reviews of their own rooms only
    assert (await stranger.post(f"/api/reviews/{first}/reply", {"reply": "hi"}))[1]["error"]["code"] == "review_not_found"
    assert (await creator.post(f"/api/reviews/{first}/reply", {"reply": "  "}))[1]["error"]["code"] == "invalid_reply"
    status, body = await creator.post(f"/api/reviews/{first}/reply", {"reply": "Thank you!"})
    assert status == 200 and body["review"]["reply"] == "Thank you!"

    page = (await stranger.get("/api/rooms/maths/reviews"))[1]
    assert page["rating"] == {"average": 5.0, "count": 1}
    assert [(r["author"], r["rating"], r["reply"]) for r in page["reviews"]] == [("Viewer", 5, "Thank you!")]
    assert (await stranger.get(f"/api/creators/{creator.user['id']}"))[1]["rating"] == {"average": 5.0, "count": 1}

    # editing sends it back to moderation (and out of the public rating)
    await buyer.post("/api/rooms/maths/reviews", {"rating": 3, "text": "on second thought"})
    assert (await stranger.get("/api/rooms/maths/reviews"))[1]["rating"] == {"average": None, "count": 0}
    assert [r["id"] for r in (await admin.get("/api/admin/reviews"))[1]["reviews"]] == [first]


@pytest.mark.slow
async def test_reviews_on_the_room_page_in_chromium(aiohttp_server, tmp_path, browser):
    """The room page shows the approved reviews with the creator's reply and the average, and
    a buyer writes one from its form; the server's refusal reaches a stranger as text."""
    from tests.support.browser import open_page

    app = create_app(paywall_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", audience_sample_seconds=0.1))
    server = await aiohttp_server(app)
    base = str(server.make_url("")).rstrip("/")
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator)
    fan, buyer, stranger, admin = [await Api.sign_up(base) for _ in range(4)]
    await app[PAYWALL].accounts.set_role(admin.user["email"], "admin")
    await buy(fan, "maths")
    await buy(buyer, "maths")
    await hold_class(base, creator, "maths")
    review = (await fan.post("/api/rooms/maths/reviews", {"rating": 4, "text": "<script>x</script> good"}))[1]["review"]
    await admin.post(f"/api/admin/reviews/{review['id']}", {"decision": "approved"})
    await creator.post(f"/api/reviews/{review['id']}/reply", {"reply": "Thanks!"})

    log: list[str] = []
    page = await open_page(browser, base, "buyer", log, login=buyer.token)
    try:
        await page.goto(f"{base}/static/room.html?room=maths")
        await page.wait_for_selector("#reviews:not([hidden])")
        assert await page.text_content("#rating") == "4.0 / 5 (1 review)"
        item = page.locator("#review-list li")
        assert "<script>x</script> good" in await item.text_content() and "Thanks!" in await item.text_content()
        await page.select_option("#review-rating", "5")
        await page.fill("#review-text", "Loved it")
        await page.click("#review-submit")
        await page.wait_for_function("document.getElementById('review-status').dataset.state === 'ready'")
        mine = (await buyer.get("/api/rooms/maths/reviews"))[1]["mine"]
        assert (mine["rating"], mine["text"], mine["status"]) == (5, "Loved it", "pending")
    finally:
        await page.context.close()
    page = await open_page(browser, base, "stranger", log, login=stranger.token)
    try:
        await page.goto(f"{base}/static/room.html?room=maths")
        await page.wait_for_selector("#review-form:not([hidden])")
        await page.click("#review-submit")
        await page.wait_for_function("document.getElementById('review-status').dataset.state === 'error'")
        assert "only buyers" in await page.text_content("#review-status")
    finally:
        await page.context.close()
    assert not [line for line in log if "pageerror" in line], log
