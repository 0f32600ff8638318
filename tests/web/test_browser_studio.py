"""The creator's studio (web/static/studio.html) in a real Chromium against a real server.

A creator signs up and creates a paid room through the studio's form (after a refused
bad slug), rotates the stream key, goes live from the fake camera, shares the (fake)
screen and back, and runs the room: a ticketed viewer (a python-socketio client) sends
danmaku, a question, a like, a tip and a raised hand; the creator answers, deletes, mutes,
bans, runs a poll, sets slow mode and a blocked word from the UI, and the viewer's client
sees every effect. A full disk shows as a recording error. Stop ends the broadcast.
Plus GET /api/creator/rooms on both databases.
"""

from __future__ import annotations

import asyncio
import errno
import os
import time

import pytest

import mediaserver.recording.writer as writer_module
from stagepass.app import create_app
from signalling.whip import ROOMS
from tests.support.browser import SCREENSHOTS, open_page
from tests.support.chat import Chat
from tests.support.waiting import wait_for
from tests.support.paywall_fixtures import Api, buy, paid_room, paywall_settings, view_token

pytestmark = pytest.mark.e2e

XSS = "<img src=x onerror=alert(1)>"
TEST_BUDGET_S = 100

OUTBOUND_VIDEO = """async () => {
  const s = window.stagepass.session;
  if (!s) return null;
  const report = await s.pc.getStats();
  let out = null;
  report.forEach((x) => { if (x.type === 'outbound-rtp' && x.kind === 'video') out = x; });
  const sender = s.pc.getTransceivers().find((t) => t.receiver.track.kind === 'video').sender;
  return {width: out ? out.frameWidth || 0 : 0, label: sender.track ? sender.track.label : ''};
}"""


# ---------------------------------------------------------------------- API
async def test_creator_rooms_lists_only_my_rooms(paywall_app):
    base, _ = paywall_app
    anonymous = Api(base)
    status, body = await anonymous.get("/api/creator/rooms")
    assert status == 401 and body["error"]["code"] == "login_required"

    viewer = await Api.sign_up(base)
    status, body = await viewer.get("/api/creator/rooms")
    assert status == 403 and body["error"]["code"] == "not_a_creator"

    alice = await Api.sign_up(base, "creator")
    bob = await Api.sign_up(base, "creator")
    status, body = await alice.get("/api/creator/rooms")
    assert status == 200 and body == {"rooms": []}
    await paid_room(alice, slug="alice-1")
    await paid_room(bob, slug="bob-1")
    await paid_room(alice, slug="alice-2", ticket_price=0)
    status, body = await alice.get("/api/creator/rooms")
    assert status == 200
    assert [r["slug"] for r in body["rooms"]] == ["alice-1", "alice-2"]
    assert body["rooms"][0]["ticket_price"] == 990 and body["rooms"][1]["free"] is True
    assert "stream_key" not in body["rooms"][0]  # the key is only on its own endpoint


# ---------------------------------------------------------------------- browser
async def new_page(browser, base: str, name: str, log: list[str], api: Api | None = None,
                   viewport=(1280, 900)):
    return await open_page(browser, base, name, log, login=api.token if api else None, viewport=viewport)


async def poll_page(page, script: str, predicate, timeout: float = 15.0):
    """Evaluate ``script`` (may be async) until ``predicate(value)``; returns the value."""
    deadline = time.monotonic() + timeout
    while True:
        value = await page.evaluate(script)
        if predicate(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"page state not reached in {timeout} s: {value!r}")
        await asyncio.sleep(0.2)


@pytest.mark.slow
async def test_studio_creates_room_goes_live_and_runs_the_room(aiohttp_server, tmp_path, browser, monkeypatch):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    # A switchable full disk for the recorder (the real writer, failing as on ENOSPC).
    disk = {"full": False}
    real_mux = writer_module.RecordingWriter.mux

    def mux(self, packet):
        if disk["full"]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_mux(self, packet)

    monkeypatch.setattr(writer_module.RecordingWriter, "mux", mux)
    app = create_app(paywall_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}"))
    server = await aiohttp_server(app)
    base = str(server.make_url("")).rstrip("/")
    creator = await Api.sign_up(base, "creator")
    viewer = await Api.sign_up(base)
    log: list[str] = []
    dialogs: list[str] = []
    timings: dict[str, float] = {}
    chat = Chat()
    t0 = time.monotonic()
    try:
        async with asyncio.timeout(TEST_BUDGET_S):
            # 0. Nobody logged in: a link to log in (and back); a viewer: a clear message.
            anon = await new_page(browser, base, "anonymous", log, viewport=(390, 844))
            await anon.goto(f"{base}/static/studio.html?room=physics")
            link = anon.locator("#studio-login")
            await link.wait_for()
            assert await link.get_attribute("href") == "/static/login.html?next=%2Fstatic%2Fstudio.html%3Froom%3Dphysics"
            assert await anon.is_hidden("#rooms-panel")
            await anon.screenshot(path=str(SCREENSHOTS / "studio-logged-out.png"))
            await anon.context.close()
            not_creator = await new_page(browser, base, "viewer-studio", log, viewer)
            await not_creator.goto(f"{base}/static/studio.html")
            await not_creator.wait_for_function(
                "document.getElementById('account-note').textContent.includes('The studio is for creators')")
            assert await not_creator.is_hidden("#rooms-panel")
            await not_creator.context.close()

            # 1. The creator's studio: no rooms yet, the form is open. A bad slug is refused
            #    by the API and the error shows next to the form.
            studio = await new_page(browser, base, "studio", log, creator)
            studio.on("dialog", lambda d: (dialogs.append(d.message), asyncio.ensure_future(d.accept())))
            await studio.goto(f"{base}/static/studio.html")
            await studio.locator("#rf-slug").wait_for()
            assert await studio.is_visible("#rooms-empty")
            await studio.fill("#rf-slug", "Physics 101!")
            await studio.fill("#rf-title", "Live physics")
            await studio.click("#room-save")
            error = studio.locator("#room-form-error")
            await studio.wait_for_function("document.getElementById('room-form-error').dataset.state === 'error'")
            assert "slug" in (await error.text_content()) and "HTTP 400" in (await error.text_content())
            assert await studio.get_attribute("#rf-slug", "aria-invalid") == "true"
            status, _ = await creator.get("/api/catalog/physics")
            assert status == 404  # nothing created

            await studio.fill("#rf-slug", "physics")
            await studio.fill("#rf-description", "Waves & <b>optics</b>")
            await studio.fill("#rf-tags", "Science, waves")
            await studio.fill("#rf-currency", "usd")
            await studio.fill("#rf-ticket_price", "9.90")
            await studio.fill("#rf-replay_price", "5")
            await studio.fill("#rf-max_devices", "2")
            await studio.check("#rf-replay_included")
            await studio.click("#room-save")
            await studio.locator('#room-list li[data-room="physics"]').wait_for()
            assert studio.url.endswith("/static/studio.html?room=physics")
            status, body = await creator.get("/api/catalog/physics")
            assert status == 200, body
            room = body["room"]
            assert (room["title"], room["ticket_price"], room["replay_price"], room["currency"]) == \
                ("Live physics", 990, 500, "USD")
            assert room["max_devices"] == 2 and room["replay_included"] is True and room["tags"] == ["science", "waves"]
            assert room["description"] == "Waves & <b>optics</b>"
            assert await studio.input_value("#room") == "physics"
            assert not await studio.locator("#room-editor").get_attribute("open")  # folded away after creating

            # studio.html?room=<slug> selects the room: the form edits it.
            await studio.reload()
            await studio.wait_for_function("document.getElementById('room-form').dataset.mode === 'edit'")
            assert await studio.input_value("#rf-title") == "Live physics"
            assert await studio.is_disabled("#rf-slug")
            assert await studio.input_value("#rf-ticket_price") == "9.90"
            await studio.click("#room-form-title")  # unfold the editor (a <summary>)

            # Edit (PATCH) the selected room.
            await studio.fill("#rf-title", "Live physics: waves")
            await studio.fill("#rf-preview_seconds", "30")
            await studio.click("#room-save")
            await studio.wait_for_function("document.getElementById('room-form-error').textContent === 'Saved.'")
            _, body = await creator.get("/api/catalog/physics")
            assert body["room"]["title"] == "Live physics: waves" and body["room"]["preview_seconds"] == 30
            assert await studio.text_content("#room-heading") == "· Live physics: waves"

            # 2. OBS settings: absolute WHIP URL, hidden key, reveal, rotate (after a confirm).
            assert await studio.input_value("#whip-url") == f"{base}/whip/physics"
            _, key_body = await creator.get("/api/rooms/physics/stream-key")
            key_field = studio.locator("#stream-key")
            await studio.wait_for_function(
                f"document.getElementById('stream-key').value === {key_body['stream_key']!r}")
            assert await key_field.get_attribute("type") == "password"
            await studio.click("#reveal-key")
            assert await key_field.get_attribute("type") == "text"
            await studio.click("#rotate-key")
            await studio.wait_for_function(
                f"document.getElementById('stream-key').value !== {key_body['stream_key']!r}")
            _, rotated = await creator.get("/api/rooms/physics/stream-key")
            assert rotated["stream_key"] == await key_field.input_value() != key_body["stream_key"]
            assert len(dialogs) == 1 and "new stream key" in dialogs[0].lower()
            await studio.click("#reveal-key")
            assert await key_field.get_attribute("type") == "password"

            # 3. The chat connects with the creator's publish token (moderator).
            await studio.wait_for_function(
                "document.getElementById('chat-status').textContent.includes('connected as moderator')")
            options = await studio.eval_on_selector_all("#camera option", "os => os.map(o => o.textContent)")
            assert options and all(options), options  # labelled once permission is given
            assert await studio.eval_on_selector_all("#microphone option", "os => os.length") >= 1

            # 4. Go live from the fake camera (login-minted publish token, no stream key).
            t_live = time.monotonic()
            await studio.click("#golive")
            await studio.wait_for_function("document.getElementById('status').textContent === 'live'")
            media = app[ROOMS].get("physics")
            await wait_for(lambda: media.publisher is not None and media.publisher.last_media() is not None, timeout=10)
            timings["go live"] = time.monotonic() - t_live
            _, stats = await creator.get("/api/rooms/physics")
            assert stats["live"] is True and stats["codecs"]["video"] in ("H264", "VP8"), stats
            await studio.wait_for_function("Number(document.getElementById('quality').dataset.kbps) > 0")
            quality = await studio.text_content("#quality")
            assert "kbps" in quality and "fps" in quality, quality
            await studio.wait_for_function(
                "document.getElementById('recording').textContent.startsWith('Recording ●')")

            # 5. Screen share: the live sender's video track becomes the screen, then the camera.
            camera = await poll_page(studio, OUTBOUND_VIDEO, lambda v: v and v["width"] > 0)
            await studio.click("#share")
            await studio.wait_for_function("document.getElementById('share').getAttribute('aria-pressed') === 'true'")
            shared = await poll_page(studio, OUTBOUND_VIDEO,
                                     lambda v: v["label"].startswith("screen") and v["width"] == 1280)
            assert shared["label"] != camera["label"]
            await studio.screenshot(path=str(SCREENSHOTS / "studio-screen-share.png"))
            await studio.click("#share")
            back = await poll_page(studio, OUTBOUND_VIDEO,
                                   lambda v: v["label"] == camera["label"] and v["width"] == camera["width"])
            assert back["label"] == camera["label"]
            assert media.publisher is not None and await studio.text_content("#status") == "live"

            # 6. A ticketed viewer joins the chat and speaks.
            await buy(viewer, "physics")
            assert await chat.connect(base, "physics", await view_token(viewer, "physics")), chat.refused
            await studio.wait_for_function("document.getElementById('stat-chat').textContent === '2'")
            first = await chat.call("danmaku:send", {"text": XSS})
            second = await chat.call("danmaku:send", {"text": "hello from the back row", "color": "#FF0000"})
            assert first["ok"] and second["ok"], (first, second)
            asked = await chat.call("question:ask", {"text": "Why <b>is</b> the sky blue?"})
            assert asked["ok"], asked
            paid_order = await buy(viewer, "physics", product="question", amount=300, message="paid")
            paid = await chat.call("question:ask", {"text": "Paid: derive it again?", "order_id": paid_order["id"]})
            assert paid["ok"], paid
            assert (await chat.call("like", {"count": 3}))["ok"]
            tip = await buy(viewer, "physics", product="tip", amount=500, message="thanks <script>")
            assert (await chat.call("tip:announce", {"order_id": tip["id"]}))["ok"]
            assert (await chat.call("hand:raise"))["ok"]

            line = studio.locator(f'#danmaku-list li[data-id="{first["danmaku"]["id"]}"]')
            await line.wait_for()
            assert await line.locator(".text").text_content() == XSS  # literally, as text
            assert await studio.locator("#danmaku-list img").count() == 0
            question = studio.locator(f'#questions li[data-id="{asked["question"]["id"]}"]')
            await question.wait_for()
            assert await question.locator(".text").text_content() == "Why <b>is</b> the sky blue?"
            assert await studio.locator("#questions b").count() == 0
            # The paid question first (as the server orders the queue), with its amount.
            first_question = studio.locator("#questions > li").first
            await studio.wait_for_function("document.querySelectorAll('#questions > li').length === 2")
            assert await first_question.get_attribute("data-id") == str(paid["question"]["id"])
            assert await first_question.locator(".badge.paid").text_content() == "$3.00"
            await studio.wait_for_function("document.getElementById('stat-danmaku-rate').textContent === '2 / min'")
            await studio.wait_for_function("document.getElementById('stat-likes').textContent === '3'")
            await studio.wait_for_function("document.getElementById('stat-tips').textContent.startsWith('1 · $5.00')")
            assert await studio.locator("#tip-list .text").first.text_content() == "thanks <script>"
            await studio.wait_for_function("document.getElementById('stat-revenue').textContent.includes('(3 orders)')")
            await studio.locator("#hands li").first.wait_for()
            assert "Viewer" in await studio.text_content("#hands")
            await studio.screenshot(path=str(SCREENSHOTS / "studio-live-panels.png"), full_page=True)

            # 7. The creator acts from the UI; the viewer's client sees each effect.
            # (keyboard: focus the button, press Enter)
            await question.locator('button[data-action="answer"]').focus()
            await studio.keyboard.press("Enter")
            await question.wait_for(state="detached")
            await wait_for(lambda: any(q["id"] == asked["question"]["id"] and q["status"] == "answered"
                                       for q in chat.got("question")), timeout=5)

            # Dismissing the paid question refunds it.
            await first_question.locator('button[data-action="dismiss"]').click()
            await wait_for(lambda: any(q["id"] == paid["question"]["id"] and q["status"] == "refunded"
                                       for q in chat.got("question")), timeout=10)
            await studio.wait_for_function("document.getElementById('qa-count').textContent === '0'")
            _, order = await viewer.get(f"/api/orders/{paid_order['id']}")
            assert order["order"]["status"] == "refunded", order

            await line.locator('button[data-action="delete"]').click()
            await line.wait_for(state="detached")
            await wait_for(lambda: {"kind": "danmaku", "id": first["danmaku"]["id"]} in chat.got("deleted"), timeout=5)

            await studio.locator("#hands li button").click()
            await wait_for(lambda: {"raised": False} in chat.got("hand"), timeout=5)
            await studio.wait_for_function("document.getElementById('hands-count').textContent === '0'")

            # Poll: open from the UI, the viewer votes, results update live, close.
            await studio.fill("#poll-question", "Louder <i>or</i> softer?")
            await studio.fill("#poll-options", "Louder\nSofter\n")
            await studio.click("#poll-open")
            await wait_for(lambda: chat.got("poll"), timeout=5)
            poll = chat.got("poll")[-1]
            assert poll["open"] and poll["options"] == ["Louder", "Softer"]
            assert (await chat.call("poll:vote", {"id": poll["id"], "option": 1}))["ok"]
            card = studio.locator(f'#polls li[data-id="{poll["id"]}"]')
            await studio.wait_for_function(
                f"document.querySelector('#polls li[data-id=\"{poll['id']}\"] li[data-option=\"1\"] .votes')"
                "?.textContent === '1 (100%)'")
            assert await card.locator(".poll-question strong").text_content() == "Louder <i>or</i> softer?"
            await card.locator('button[data-action="close"]').click()
            await studio.wait_for_function(
                f"document.querySelector('#polls li[data-id=\"{poll['id']}\"]').dataset.open === 'false'")
            await wait_for(lambda: any(p["id"] == poll["id"] and not p["open"] and p["counts"] == [0, 1]
                                       for p in chat.got("poll")), timeout=5)

            # Slow mode and a blocked word.
            await studio.fill("#slow-seconds", "5")
            await studio.press("#slow-seconds", "Enter")  # submits the form
            await wait_for(lambda: {"seconds": 5} in chat.got("slow_mode"), timeout=5)
            assert "every 5 s" in await studio.text_content("#slow-state")
            await studio.fill("#block-word", "Spoiler")
            await studio.click("#block-add")
            await studio.wait_for_function("document.getElementById('blocklist').textContent.includes('spoiler')")
            refused = await chat.call("question:ask", {"text": "a SPOILER here"})
            assert refused["error"]["code"] == "blocked_word", refused

            # Mute, then ban through the viewer's remaining danmaku line.
            other = studio.locator(f'#danmaku-list li[data-id="{second["danmaku"]["id"]}"]')
            await other.locator('button[data-action="mute"]').click()
            await wait_for(lambda: any(m["user"] == viewer.user["id"] for m in chat.got("muted")), timeout=5)
            await other.locator('button[data-action="ban"]').click()
            await wait_for(lambda: {"code": "banned", "message": "you are banned from this room"} in chat.got("kicked"),
                           timeout=5)
            await wait_for(lambda: not chat.sio.connected, timeout=5)
            await studio.locator(f'#banned li[data-user="{viewer.user["id"]}"]').wait_for()
            again = Chat()
            assert not await again.connect(base, "physics", await view_token(viewer, "physics"))
            assert again.refused and again.refused["data"]["code"] == "banned", again.refused
            await again.close()
            # Unban from the list: the viewer may connect again.
            await studio.locator(f'#banned li[data-user="{viewer.user["id"]}"] button').click()
            await studio.locator("#banned li").wait_for(state="detached")
            again = Chat()
            assert await again.connect(base, "physics", await view_token(viewer, "physics")), again.refused
            await again.close()

            # 8. The recorder reports a full disk: the studio says so, the broadcast goes on.
            disk["full"] = True
            await studio.wait_for_function(
                "document.getElementById('recording').dataset.state === 'error'", timeout=20_000)
            assert "No space left on device" in await studio.text_content("#recording")
            assert await studio.text_content("#status") == "live"

            # 9. Phone-sized screen: no sideways scrolling, panels stacked.
            await studio.set_viewport_size({"width": 390, "height": 844})
            width = await studio.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, width
            await studio.screenshot(path=str(SCREENSHOTS / "studio-phone.png"), full_page=True)
            await studio.set_viewport_size({"width": 1280, "height": 900})

            # 10. Stop: the WHIP DELETE ends the broadcast.
            t_stop = time.monotonic()
            await studio.click("#stop")
            await studio.wait_for_function("document.getElementById('status').dataset.state === 'stopped'")
            await wait_for(lambda: media.publisher is None and media.broadcast is None, timeout=5)
            _, stats = await creator.get("/api/rooms/physics")
            assert stats["live"] is False, stats
            timings["stop"] = time.monotonic() - t_stop
            assert await studio.text_content("#quality") == "Connection quality: not live."
            # the replay is packaged from what was recorded before the disk filled up
            replay = studio.locator("#replay-list li[data-status='ready']")
            await replay.wait_for(timeout=30_000)
            assert "No space left on device" in await replay.inner_text()
            assert (await replay.locator("a").get_attribute("href")).startswith("/static/replay.html?recording=")

            assert dialogs == [dialogs[0]], dialogs  # only the rotate confirm: no alert(1)
            assert not [line for line in log if "pageerror" in line], "\n".join(log)
    except BaseException:
        print("\n".join(log))
        raise
    finally:
        await chat.close()
    timings["total"] = time.monotonic() - t0
    print(" ".join(f"{k}={v:.2f}s" for k, v in timings.items()))
