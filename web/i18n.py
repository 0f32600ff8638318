"""The pages' catalogues: ``GET /i18n/catalogue.json[?lang=zh-CN]``.

Without ``lang`` the server chooses, as for API errors (``core.i18n.negotiate``: the
``stagepass_lang`` cookie, else ``Accept-Language``), so a first visit follows the browser's
language; ``web/static/i18n.js`` asks for the language the user picked. The answer is
``{"lang", "supported", "messages"}``.
"""

from __future__ import annotations

from aiohttp import web

from core.access import Refusal
from core.i18n import LANG_COOKIE, SUPPORTED, catalogue, negotiate

__all__ = ["setup_i18n_routes"]


async def _catalogue(request: web.Request) -> web.Response:
    unexpected = set(request.query) - {"lang"}
    if unexpected:
        raise Refusal(400, "unexpected_parameter", f"GET /i18n/catalogue.json takes only lang, not {', '.join(sorted(unexpected))}")
    lang = request.query.get("lang")
    if lang is None:
        lang = negotiate(request.headers.get("Accept-Language"), request.cookies.get(LANG_COOKIE))
    elif lang not in SUPPORTED:
        raise Refusal(400, "invalid_query", f"lang: one of {', '.join(SUPPORTED)}")
    return web.json_response(
        {"lang": lang, "supported": list(SUPPORTED), "messages": dict(catalogue(lang))},
        headers={"Cache-Control": "no-cache", "Vary": "Accept-Language, Cookie", "Content-Language": lang})


def setup_i18n_routes(app: web.Application) -> None:
    app.router.add_get("/i18n/catalogue.json", _catalogue)
