"""A paid room's page in Chromium set to Chinese: the page renders in zh-CN from the
browser's language, switches to English and remembers it; the viewer's watermark is drawn
in a closed shadow root, moves, stays under the danmaku, and comes back when removed or
hidden by CSS."""

from __future__ import annotations

import asyncio
import json

import pytest

from stagepass.app import create_app
from tests.support.browser import SCREENSHOTS, open_page
from tests.support.paywall_fixtures import Api, buy, paid_room, paywall_settings

pytestmark = [pytest.mark.e2e]

#: the watermark's box: the stage's child that is neither the video nor the danmaku layer
HOST = "[...document.getElementById('stage').children].find((e) => e.tagName === 'DIV' && !e.classList.contains('danmaku-layer'))"
RECT = f"(() => {{ const r = {HOST}.getBoundingClientRect(); return [r.left, r.top]; }})()"


async def _drawn_pixels(page) -> tuple[str, int]:
    """(shadow root type, painted pixels) of the watermark's canvas, read through the
    DevTools protocol (a closed shadow root is out of reach of the page's scripts)."""
    cdp = await page.context.new_cdp_session(page)
    doc = await cdp.send("DOM.getDocument", {"depth": -1, "pierce": True})

    def find(node, shadow_type=None):
        if node.get("nodeName") == "CANVAS" and shadow_type:
            return node, shadow_type
        for root in node.get("shadowRoots", []):
            found = find(root, root.get("shadowRootType"))
            if found:
                return found
        for child in node.get("children", []):
            found = find(child, shadow_type)
            if found:
                return found
        return None

    found = find(doc["root"])
    assert found, "no canvas in a shadow root"
    canvas, shadow_type = found
    obj = await cdp.send("DOM.resolveNode", {"backendNodeId": canvas["backendNodeId"]})
    result = await cdp.send("Runtime.callFunctionOn", {
        "objectId": obj["object"]["objectId"], "returnByValue": True,
        "functionDeclaration": "function () { const d = this.getContext('2d').getImageData(0, 0, this.width, this.height).data;"
                               " let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }"})
    await cdp.detach()
    return shadow_type, result["result"]["value"]


async def test_a_paid_room_in_chinese_with_the_viewers_watermark(aiohttp_server, tmp_path, browser):
    app = create_app(paywall_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}"))
    server = await aiohttp_server(app)
    base = str(server.make_url("")).rstrip("/")
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator, slug="maths", preview_seconds=90)
    viewer = await Api.sign_up(base, email="mei.lin@example.org")
    await buy(viewer, "maths")
    log: list[str] = []
    page = await open_page(browser, base, "room-zh", log, login=viewer.token, locale="zh-CN")
    await page.goto(f"{base}/static/room.html?room=maths")

    # Chinese from Accept-Language: static texts, the status line, the header, Intl money
    await page.wait_for_function("document.getElementById('status').dataset.state === 'idle'")
    assert await page.evaluate("document.documentElement.lang") == "zh-CN"
    assert await page.text_content("#about-title") == "课程介绍"
    assert await page.text_content("#status") == "尚未开播。"
    assert await page.input_value("#language") == "zh-CN"
    assert await page.get_attribute("#danmaku-text", "placeholder") == "发一条弹幕"
    assert await page.text_content("#price-info") == "门票：US$9.90 · 回放 US$5.00"
    assert await page.text_content("#likes") == "0 个赞"

    # the watermark: a closed shadow root with drawn pixels, under the danmaku, taking no clicks
    await page.wait_for_function(f"{HOST} && {HOST}.getBoundingClientRect().width > 0")
    shadow_type, pixels = await _drawn_pixels(page)
    assert shadow_type == "closed" and pixels > 100
    assert await page.evaluate(f"{HOST}.shadowRoot") is None
    assert await page.evaluate(f"""(() => {{ const host = {HOST}, layer = document.querySelector('.danmaku-layer');
        return Boolean(host.compareDocumentPosition(layer) & Node.DOCUMENT_POSITION_FOLLOWING)
          && getComputedStyle(host).pointerEvents === 'none' && getComputedStyle(host).zIndex === '0'; }})()""")
    # it moves on its own (the stage keeps its size meanwhile): one place for a few seconds, then another
    stage = "JSON.stringify(Object.values(document.getElementById('stage').getBoundingClientRect().toJSON()))"
    first, stage_before = await page.evaluate(RECT), await page.evaluate(stage)
    started = asyncio.get_running_loop().time()
    # polled on a timer, not on animation frames (which a loaded machine's headless Chromium can hold back);
    # it moves every 5 s, checked by a 1 s tick
    moved = f"(([x, y]) => Math.abs(x - {first[0]}) > 20 && Math.abs(y - {first[1]}) > 20)({RECT})"
    try:
        await page.wait_for_function(moved, polling=250, timeout=15_000)
    except Exception:
        raise AssertionError(f"the watermark stayed near {first}: now at {await page.evaluate(RECT)}") from None
    assert await page.evaluate(stage) == stage_before
    assert asyncio.get_running_loop().time() - started > 2

    # removed: back at once; hidden by a stylesheet or an inline style: shown again
    await page.evaluate(f"window.removed = {HOST}; window.removed.remove()")
    await page.wait_for_function(f"{HOST} && {HOST} !== window.removed", timeout=2_000)
    await page.add_style_tag(content="#stage > div:not(.danmaku-layer) { display: none !important; opacity: 0 !important; }")
    await page.evaluate(f"{HOST}.style.setProperty('visibility', 'hidden', 'important')")
    await asyncio.sleep(0.1)
    assert await page.evaluate(f"""(() => {{ const s = getComputedStyle({HOST});
        return [s.display, s.visibility, s.opacity]; }})()""") == ["block", "visible", "1"]
    await page.screenshot(path=str(SCREENSHOTS / "room-zh-watermark.png"))

    # switched to English, remembered across pages; server errors follow the choice
    async with page.expect_navigation():
        await page.select_option("#language", "en")
    await page.wait_for_function("document.getElementById('status').dataset.state === 'idle'")
    assert await page.text_content("#about-title") == "About this class"
    assert await page.evaluate("localStorage.getItem('stagepass_lang')") == "en"
    await page.goto(f"{base}/")
    await page.wait_for_function("document.documentElement.lang === 'en'")
    body = await page.evaluate("fetch('/api/catalog/nope').then((r) => r.json())")
    assert body["error"]["message"] == "no room named 'nope'"
    assert not [line for line in log if "pageerror" in line], log
