"""Share links (Open Graph / Twitter card metadata) and the embeddable player, with the
frame-ancestors policy the creator allows, checked over HTTP and in a real Chromium that
frames the player from another origin."""

from __future__ import annotations

import html
import json
import re

import aiohttp
import pytest
from aiohttp import web

from tests.support.browser import open_page

pytestmark = pytest.mark.e2e


def meta(page: str) -> dict[str, str]:
    return {html.unescape(k): html.unescape(v)
            for k, v in re.findall(r'<meta (?:property|name)="([^"]+)" content="([^"]*)">', page)}


async def get(url: str, headers: dict | None = None) -> tuple[int, str, dict]:
    async with aiohttp.ClientSession() as http:
        async with http.get(url, allow_redirects=False, headers=headers) as r:
            return r.status, await r.text(), dict(r.headers)


@pytest.fixture
async def shared(shop):
    base, app, creator, rec_id, _ = shop
    status, _ = await creator.patch("/api/rooms/maths", {"title": 'Live maths <b>"now"</b>',
                                                         "description": "Limits & series"})
    assert status == 200
    status, clip = await creator.post(f"/api/recordings/{rec_id}/clips",
                                      {"start_ms": 2000, "end_ms": 5000, "title": "Epsilon & delta", "teaser": True})
    assert status == 201, clip
    status, private = await creator.post(f"/api/recordings/{rec_id}/clips", {"start_ms": 0, "end_ms": 2000})
    assert status == 201
    return base, creator, rec_id, clip, private


async def test_share_pages_carry_open_graph_and_twitter_cards(shared):
    base, creator, rec_id, clip, private = shared
    status, page, headers = await get(f"{base}/share/room/maths")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    tags = meta(page)
    assert tags["og:title"] == 'Live maths <b>"now"</b>' and "<b>" not in page.split("<body>")[0].replace(
        "&lt;b&gt;", "")  # escaped, never markup
    assert tags["og:description"].startswith("Live class · ticket 9.90 USD · Limits & series")
    assert tags["og:image"] == f"{base}/replay/{rec_id}/poster.jpg" and tags["twitter:card"] == "summary_large_image"
    assert f'url={base}/static/room.html?room=maths' in html.unescape(page)
    status, page, _ = await get(f"{base}/share/replay/{rec_id}")
    tags = meta(page)
    assert status == 200 and tags["og:type"] == "video.other" and "5.00 USD" in tags["og:description"]
    status, page, _ = await get(f"{base}/share/clip/{clip['id']}")
    tags = meta(page)
    assert status == 200 and tags["og:title"] == "Epsilon & delta"
    assert tags["twitter:card"] == "player" and tags["twitter:player"] == f"{base}/embed/clip/{clip['id']}"
    # what is not public is not shared
    for path in (f"/share/clip/{private['id']}", "/share/room/nope", "/share/replay/0123456789abcdef",
                 f"/embed/clip/{private['id']}", "/embed/room/nope", "/embed/clip/zzz"):
        assert (await get(base + path))[0] == 404, path


async def test_frame_ancestors_follow_the_creators_choice(shared):
    base, creator, rec_id, clip, _ = shared
    status, page, headers = await get(f"{base}/embed/clip/{clip['id']}")
    assert status == 200 and headers["Content-Security-Policy"] == "frame-ancestors 'self'"
    assert "/static/embed.js" in page
    for bad in (["javascript:alert(1)"], ["https://a.example/path"], "https://a.example", ["*", "https://b.example"],
                [f"https://{n}.example" for n in range(11)]):
        got, resp = await creator.patch("/api/rooms/maths", {"embed_origins": bad})
        assert (got, resp["error"]["code"]) == (400, "invalid_embed_origins"), bad
    got, resp = await creator.patch("/api/rooms/maths", {"embed_origins": ["https://Blog.Example.org/", "http://127.0.0.1:9"]})
    assert got == 200 and resp["room"]["embed_origins"] == ["https://blog.example.org", "http://127.0.0.1:9"]
    _, _, headers = await get(f"{base}/embed/room/maths")
    assert headers["Content-Security-Policy"] == "frame-ancestors 'self' https://blog.example.org http://127.0.0.1:9"
    await creator.patch("/api/rooms/maths", {"embed_origins": ["*"]})
    _, page, headers = await get(f"{base}/embed/room/maths")
    assert headers["Content-Security-Policy"] == "frame-ancestors *"
    config = json.loads(html.unescape(re.search(r'data-config="([^"]*)"', page).group(1)))
    assert config["playlist"] == f"/clips/{clip['id']}/index.m3u8" and config["buy_label"] == "Buy · 9.90 USD"
    assert config["title"] == 'Live maths <b>"now"</b>'  # data for textContent, escaped in the attribute
    _, page, _ = await get(f"{base}/embed/room/maths", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    config = json.loads(html.unescape(re.search(r'data-config="([^"]*)"', page).group(1)))
    assert config["buy_label"] == "购买 · 9.90 USD" and '<html lang="zh-CN">' in page


@pytest.mark.slow
async def test_chromium_plays_the_embed_only_where_the_creator_allows(shared, aiohttp_server, browser):
    base, creator, rec_id, clip, _ = shared

    async def parent(request: web.Request) -> web.Response:
        return web.Response(content_type="text/html", text=(
            f'<!doctype html><iframe id="player" src="{base}/embed/clip/{clip["id"]}" width="640" height="400">'
            "</iframe>"))

    site = web.Application()
    site.router.add_get("/", parent)
    other = await aiohttp_server(site)
    other_origin = str(other.make_url("")).rstrip("/").replace("127.0.0.1", "localhost")  # another origin
    log: list[str] = []
    page = await open_page(browser, other_origin, "blog", log)
    # not allowed yet: the browser refuses to show the player in the other site's frame
    await page.goto(other_origin + "/")
    await page.wait_for_timeout(1000)
    frame = next(f for f in page.frames if f != page.main_frame)
    assert await frame.evaluate("() => !document.getElementById('video')") or "chrome-error" in frame.url
    assert (await creator.patch("/api/rooms/maths", {"embed_origins": [other_origin]}))[0] == 200
    await page.goto(other_origin + "/")
    frame = await (await page.wait_for_selector("#player")).content_frame()
    await frame.wait_for_function("() => { const v = document.getElementById('video');"
                                  " return v && v.readyState >= 2; }", timeout=15000)
    await frame.evaluate("() => { const v = document.getElementById('video'); v.muted = true; return v.play(); }")
    await frame.wait_for_function("document.getElementById('video').currentTime > 0.5", timeout=15000)
    assert await frame.evaluate("document.getElementById('buy').textContent") == "Buy · 9.90 USD"
    assert await frame.evaluate("document.getElementById('buy').href") == f"{base}/static/room.html?room=maths"
