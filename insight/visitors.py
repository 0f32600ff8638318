"""The first-party visitor id: an HttpOnly cookie given to every browser on its first page,
so that what an anonymous visitor did (catalog, room pages, previews) is joined to the
account when they sign up or log in (``EventStore.link_visitor``).

The id is random (128 bits, hex); it says nothing about the person and is never sent
to anyone else.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from typing import Awaitable, Callable, Optional

from aiohttp import web

__all__ = ["VISITOR", "VISITOR_COOKIE", "visitor_id", "visitor_middleware"]

VISITOR_COOKIE = "stagepass_visitor"
VISITOR_RE = re.compile(r"^[0-9a-f]{32}$")
#: the visitor id of this request (the cookie's, or the one its response gives)
VISITOR = web.RequestKey("insight_visitor", str)
_LINKING = ("/api/auth/signup", "/api/auth/login")
_MAX_AGE = 365 * 86400
log = logging.getLogger("stagepass.insight")


def visitor_id(request: web.Request) -> Optional[str]:
    """The request's visitor id: its valid cookie, or the one the middleware is giving it."""
    if VISITOR in request:
        return request[VISITOR]
    value = request.cookies.get(VISITOR_COOKIE, "")
    return value if VISITOR_RE.match(value) else None


def _is_page(request: web.Request) -> bool:
    return request.method == "GET" and (request.path == "/" or request.path.endswith(".html"))


def visitor_middleware(link: Callable[[str, int], Awaitable[None]], secure: Callable[[web.Request], bool]):
    """Gives pages (and the event beacon) a visitor cookie, and joins it to the account a
    successful sign-up or log-in answers with (``link(visitor, user_id)``)."""

    @web.middleware
    async def middleware(request: web.Request, handler) -> web.StreamResponse:
        known = visitor_id(request)
        fresh = None
        if known is None and (_is_page(request) or request.path == "/api/events"):
            fresh = request[VISITOR] = secrets.token_hex(16)
        response = await handler(request)
        if fresh is not None and response.status < 400:
            response.set_cookie(VISITOR_COOKIE, fresh, max_age=_MAX_AGE, httponly=True, samesite="Lax",
                                secure=secure(request), path="/")
        if known is not None and request.path in _LINKING and response.status in (200, 201):
            user_id = _answered_user(response)
            if user_id is not None:
                try:
                    await link(known, user_id)
                except Exception:  # the login itself succeeded: never fail it for analytics
                    log.exception("joining visitor events to user %d failed", user_id)
        return response

    return middleware


def _answered_user(response: web.StreamResponse) -> Optional[int]:
    body = getattr(response, "body", None)
    if not isinstance(body, bytes):
        return None
    try:
        user = json.loads(body).get("user") or {}
    except (ValueError, AttributeError):
        return None
    return user.get("id") if isinstance(user.get("id"), int) else None
