"""HTTP of the platform around the rooms: creator pages, follows, the notification inbox,
notification preferences and the one-click unsubscribe link of notification email."""

from __future__ import annotations

import html

from aiohttp import web

from core.access import Refusal
from core.access_http import request_language
from core.i18n import translate
from .http import PAYWALL, current_user, optional_user, path_number, read_json
from .request_body import read_form

__all__ = ["setup_routes"]


async def creator_page(request: web.Request) -> web.Response:
    """``{"creator": {id, display_name, bio, since}, "followers", "upcoming", "past", "following"?}``"""
    paywall = request.app[PAYWALL]
    return web.json_response(await paywall.creators.page(path_number(request, "creator", "creator_not_found"), await optional_user(request)))


async def follow(request: web.Request) -> web.Response:
    user = await current_user(request)
    creator = path_number(request, "creator", "creator_not_found")
    follows = request.app[PAYWALL].follows
    if request.method == "DELETE":
        return web.json_response({"following": False, "followers": await follows.unfollow(user, creator)})
    return web.json_response({"following": True, "followers": await follows.follow(user, creator)})


async def following(request: web.Request) -> web.Response:
    user = await current_user(request)
    return web.json_response({"following": await request.app[PAYWALL].follows.following(user)})


async def edit_profile(request: web.Request) -> web.Response:
    user = await current_user(request)
    body = await read_json(request)
    if set(body) != {"bio"}:
        raise Refusal(400, "unknown_field", "send {\"bio\": \"...\"}")
    return web.json_response({"bio": await request.app[PAYWALL].creators.set_bio(user, body["bio"])})


async def inbox(request: web.Request) -> web.Response:
    user = await current_user(request)
    return web.json_response(await request.app[PAYWALL].notifications.inbox(user))


async def mark_read(request: web.Request) -> web.Response:
    user = await current_user(request)
    body = await read_json(request)
    changed = await request.app[PAYWALL].notifications.mark_read(user, body.get("ids"))
    return web.json_response({"marked": changed})


async def preferences(request: web.Request) -> web.Response:
    """GET: ``{"preferences": {kind: {"inbox": bool, "email": bool}}}``; PATCH changes some."""
    user = await current_user(request)
    notifications = request.app[PAYWALL].notifications
    if request.method == "PATCH":
        prefs = await notifications.set_preferences(user.id, await read_json(request))
    else:
        prefs = await notifications.preferences(user.id)
    return web.json_response({"preferences": prefs})


_PAGE = """<!doctype html><html lang="{lang}"><head><meta charset="utf-8"><title>{title}</title>
<link rel="stylesheet" href="/static/style.css"></head><body><main class="narrow"><h1>{heading}</h1>
{content}</main></body></html>"""


def _page(request: web.Request, content: str) -> web.Response:
    lang = request_language(request)
    page = _PAGE.format(lang=lang, title=translate(lang, "unsubscribe.title"),
                        heading=translate(lang, "unsubscribe.heading"), content=content)
    return web.Response(text=page, content_type="text/html")


def _kind_name(request: web.Request, kind: str) -> str:
    return html.escape(translate(request_language(request), f"notifications.{kind}", default=kind))


async def unsubscribe(request: web.Request) -> web.Response:
    """The link in every notification email. GET shows a button (mail scanners open links, so a
    GET changes nothing); POST, from that button or a mail client's one-click (RFC 8058), turns
    that kind's email off."""
    notifications = request.app[PAYWALL].notifications
    token = request.query.get("token", "")
    if request.method == "GET":
        _, kind = notifications.read_unsubscribe_token(token)
        lang = request_language(request)
        content = (f'<form method="post" action="?token={html.escape(token)}">'
                   f'<p>{translate(lang, "unsubscribe.ask", kind=_kind_name(request, kind))}</p>'
                   f'<button type="submit">{translate(lang, "unsubscribe.button")}</button></form>')
        return _page(request, content)
    await read_form(request)  # "List-Unsubscribe=One-Click", or the button's empty form
    _, kind = await notifications.unsubscribe(token)
    content = f"<p>{translate(request_language(request), 'unsubscribe.done', kind=_kind_name(request, kind))}</p>"
    return _page(request, content)


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/creators/{creator}", creator_page)
    r.add_post("/api/creators/{creator}/follow", follow)
    r.add_delete("/api/creators/{creator}/follow", follow)
    r.add_get("/api/me/following", following)
    r.add_patch("/api/me/profile", edit_profile)
    r.add_get("/api/me/notifications", inbox)
    r.add_post("/api/me/notifications/read", mark_read)
    r.add_get("/api/me/notification-settings", preferences)
    r.add_patch("/api/me/notification-settings", preferences)
    r.add_get("/api/notifications/unsubscribe", unsubscribe)
    r.add_post("/api/notifications/unsubscribe", unsubscribe)
