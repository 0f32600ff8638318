"""The HTTP side of the one door: where the door sits in the app, and refusals as JSON.

A handler (or anything it calls) raises ``core.access.Refusal``; ``refusal_middleware``,
installed innermost by the assembly, answers ``{"error": {"code", "message"}}`` with the
refusal's status, so the code chosen where the request was refused reaches the client.
The message is in the request's language (``core.i18n``: the language cookie, else
``Accept-Language``); a translated answer keeps the server's own message as ``detail``.
"""

from __future__ import annotations

from typing import Awaitable, Callable

from aiohttp import web

from .access import Door, Refusal
from .i18n import LANG_COOKIE, error_message, negotiate

__all__ = ["ACCESS", "refusal_middleware", "refusal_response", "request_language"]

#: the app's door (the paywall's, or the stream keys' without the paywall)
ACCESS = web.AppKey("access", Door)


def request_language(request: web.Request) -> str:
    """The language to answer ``request`` in: the user's choice (cookie), else ``Accept-Language``."""
    return negotiate(request.headers.get("Accept-Language"), request.cookies.get(LANG_COOKIE))


def refusal_response(refusal: Refusal, request: web.Request) -> web.Response:
    """The refusal as JSON, its message in the request's language."""
    lang = request_language(request)
    error = refusal.error()
    message = error_message(lang, refusal.code, refusal.message)
    if message != refusal.message:
        error = {**error, "message": message, "detail": refusal.message}
    return web.json_response({"error": error}, status=refusal.status,
                             headers={"Content-Language": lang, "Vary": "Accept-Language, Cookie"})


@web.middleware
async def refusal_middleware(request: web.Request,
                             handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    try:
        return await handler(request)
    except Refusal as refusal:
        return refusal_response(refusal, request)
