"""Share links and the embeddable player.

* ``GET /share/room/{room}``, ``/share/replay/{recording}``, ``/share/clip/{clip}`` -- a page
  for link previews: Open Graph and Twitter card metadata (title, description with the
  price, poster, and for a free clip the player), then the real page for people (a
  refresh). Crawlers do not run scripts, so this is rendered here, every value escaped.
* ``GET /embed/clip/{clip}`` -- the embeddable player of a free clip (a teaser);
  ``GET /embed/room/{room}`` -- the room's newest teaser, or its poster, with the buy
  button (opening the room page in a new tab). Both answer with
  ``Content-Security-Policy: frame-ancestors`` from the room's ``embed_origins``: ``'self'``
  plus the origins the creator allows (``*``: any site; none: this site only).
"""

from __future__ import annotations

import json
from html import escape
from typing import Optional
from urllib.parse import quote

from aiohttp import web

from core.access_http import request_language
from core.cpu import off_loop
from core.i18n import translate
from mediaserver.packaging.clips import Clip
from paywall.catalog import RoomView
from paywall.clips_http import CLIPS
from paywall.http import PAYWALL
from paywall.replay_http import RECORDINGS

__all__ = ["frame_ancestors", "price_text", "setup_share_routes"]

_MINOR_DIGITS = {"JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "HUF": 2, "KWD": 3, "BHD": 3, "JOD": 3}


def price_text(minor: Optional[int], currency: str) -> str:
    """9900, "USD" -> "9.90 USD"; 0 or None -> "Free"."""
    if not minor:
        return "Free"
    digits = _MINOR_DIGITS.get(currency, 2)
    return f"{minor / 10 ** digits:.{digits}f} {currency}"


def frame_ancestors(room: Optional[RoomView]) -> str:
    origins = room.embed_origins if room is not None else ()
    if tuple(origins) == ("*",):
        return "frame-ancestors *"
    return " ".join(["frame-ancestors 'self'", *origins])


def _base(request: web.Request) -> str:
    return request.app[PAYWALL].settings.server.public_url or f"{request.scheme}://{request.host}"


def _meta(props: dict[str, Optional[str]]) -> str:
    lines = []
    for key, value in props.items():
        if value is None:
            continue
        attr = "name" if key.startswith("twitter:") else "property"
        lines.append(f'  <meta {attr}="{escape(key)}" content="{escape(value)}">')
    return "\n".join(lines)


def _share_page(title: str, description: str, target: str, props: dict[str, Optional[str]]) -> web.Response:
    body = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{escape(title)} · Stagepass</title>
  <meta name="description" content="{escape(description)}">
{_meta(props)}
  <meta http-equiv="refresh" content="0; url={escape(target)}">
  <link rel="canonical" href="{escape(target)}">
</head>
<body><p><a href="{escape(target)}">{escape(title)}</a></p></body>
</html>
"""
    return web.Response(text=body, content_type="text/html", headers={"Cache-Control": "public, max-age=60"})


def _not_found(what: str) -> web.Response:
    return web.Response(status=404, content_type="text/html",
                        text=f"<!doctype html><title>Not found</title><p>No such {escape(what)}.</p>")


def _room_description(room: RoomView) -> str:
    price = price_text(room.ticket_price, room.currency)
    text = (room.description or "").strip().replace("\n", " ")
    text = text[:200] + ("…" if len(text) > 200 else "")
    return f"Live class · ticket {price}" + (f" · {text}" if text else "")


async def _latest_poster(request: web.Request, slug: str) -> Optional[str]:
    for rec in await request.app[RECORDINGS].recordings(slug):
        poster = rec.summary().get("poster_url")
        if poster:
            return poster
    return None


async def share_room(request: web.Request) -> web.Response:
    room = await request.app[PAYWALL].catalog.get(request.match_info["room"])
    if room is None:
        return _not_found("room")
    base, poster = _base(request), await _latest_poster(request, room.slug)
    target = f"{base}/static/room.html?room={quote(room.slug)}"
    return _share_page(room.title, _room_description(room), target, {
        "og:type": "website", "og:site_name": "Stagepass", "og:title": room.title,
        "og:description": _room_description(room), "og:url": f"{base}/share/room/{quote(room.slug)}",
        "og:image": base + poster if poster else None,
        "twitter:card": "summary_large_image" if poster else "summary", "twitter:title": room.title,
        "twitter:description": _room_description(room), "twitter:image": base + poster if poster else None,
    })


async def share_replay(request: web.Request) -> web.Response:
    rec = await request.app[RECORDINGS].find(request.match_info["recording"])
    room = await request.app[PAYWALL].catalog.get(rec.room) if rec is not None else None
    if rec is None or not rec.ready:
        return _not_found("replay")
    base = _base(request)
    summary = rec.summary()
    title = f"Replay: {room.title if room else rec.room}"
    price = price_text(room.replay_price if room and room.replay_price is not None else
                       (room.ticket_price if room else 0), room.currency if room else "USD")
    description = f"Replay of a live class · {price}"
    poster = base + summary["poster_url"] if summary.get("poster_url") else None
    target = f"{base}{summary['replay_url']}"
    return _share_page(title, description, target, {
        "og:type": "video.other", "og:site_name": "Stagepass", "og:title": title, "og:description": description,
        "og:url": f"{base}/share/replay/{rec.id}", "og:image": poster,
        "twitter:card": "summary_large_image" if poster else "summary", "twitter:title": title,
        "twitter:description": description, "twitter:image": poster,
    })


async def _clip(request: web.Request) -> tuple[Optional[Clip], Optional[RoomView]]:
    clip = await off_loop(request.app[CLIPS].find, request.match_info["clip"])
    room = await request.app[PAYWALL].catalog.get(clip.room) if clip is not None else None
    return clip, room


async def share_clip(request: web.Request) -> web.Response:
    clip, room = await _clip(request)
    if clip is None or not clip.teaser:  # only free clips are shared with the world
        return _not_found("clip")
    base = _base(request)
    summary = clip.summary()
    title = summary["title"] or f"A clip of {room.title if room else clip.room}"
    description = f"Free clip of {room.title if room else clip.room}" + (
        f" · ticket {price_text(room.ticket_price, room.currency)}" if room else "")
    player = f"{base}/embed/clip/{clip.id}"
    return _share_page(title, description, f"{base}{summary['page_url']}", {
        "og:type": "video.other", "og:site_name": "Stagepass", "og:title": title, "og:description": description,
        "og:url": f"{base}/share/clip/{clip.id}", "og:image": base + summary["poster_url"],
        "og:video": player, "og:video:type": "text/html",
        "twitter:card": "player", "twitter:title": title, "twitter:description": description,
        "twitter:image": base + summary["poster_url"], "twitter:player": player,
        "twitter:player:width": "640", "twitter:player:height": "360",
    })


def _embed_page(request: web.Request, room: Optional[RoomView], data: dict) -> web.Response:
    config = escape(json.dumps(data), quote=True)
    body = f"""<!doctype html>
<html lang="{request_language(request)}">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{escape(data.get("title") or "Stagepass")}</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="/static/embed.css">
  <script src="/vendor/hls.min.js" defer></script>
  <script type="module" src="/static/embed.js"></script>
</head>
<body data-config="{config}">
<main class="embed">
  <div class="frame"><video id="video" controls playsinline preload="metadata"></video>
    <img id="poster" alt="" hidden></div>
  <div class="bar"><span id="title"></span>
    <a id="buy" class="button" target="_blank" rel="noopener"></a></div>
</main>
</body>
</html>
"""
    return web.Response(text=body, content_type="text/html",
                        headers={"Content-Security-Policy": frame_ancestors(room), "Cache-Control": "no-store"})


def _buy(request: web.Request, room: Optional[RoomView], slug: str) -> dict:
    """The embed's button to the room page, in the visitor's language."""
    base, lang = _base(request), request_language(request)
    label = (translate(lang, "embed.buy", price=price_text(room.ticket_price, room.currency)) if room and room.ticket_price
             else translate(lang, "embed.watch"))
    return {"buy_url": f"{base}/static/room.html?room={quote(slug)}", "buy_label": label}


async def embed_clip(request: web.Request) -> web.Response:
    clip, room = await _clip(request)
    if clip is None or not clip.teaser:
        return _not_found("clip")
    summary = clip.summary()
    return _embed_page(request, room, {
        "kind": "clip", "title": summary["title"] or (room.title if room else clip.room),
        "playlist": summary["playlist_url"], "poster": summary["poster_url"], **_buy(request, room, clip.room),
    })


async def embed_room(request: web.Request) -> web.Response:
    room = await request.app[PAYWALL].catalog.get(request.match_info["room"])
    if room is None:
        return _not_found("room")
    clips = await off_loop(request.app[CLIPS].clips, room.slug)
    teaser = next((c for c in clips if c.teaser and c.ready), None)
    data = {"kind": "room", "title": room.title, "poster": await _latest_poster(request, room.slug),
            **_buy(request, room, room.slug)}
    if teaser is not None:
        data.update(playlist=teaser.summary()["playlist_url"], poster=teaser.summary()["poster_url"])
    return _embed_page(request, room, data)


def setup_share_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/share/room/{room}", share_room)
    r.add_get("/share/replay/{recording}", share_replay)
    r.add_get("/share/clip/{clip}", share_clip)
    r.add_get("/embed/clip/{clip}", embed_clip)
    r.add_get("/embed/room/{room}", embed_room)
