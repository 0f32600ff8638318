"""Cross-site request refusal for the login cookie (CSRF).

A browser attaches the ``stagepass_session`` cookie to requests that another site's page
makes (``SameSite=Lax`` stops cross-site ``POST`` only between different *sites*: another
port or subdomain of the same site still gets it). So every unsafe request (``POST``,
``PUT``, ``PATCH``, ``DELETE``) that carries the cookie, or that would set it (sign up,
log in), and no bearer token, must come from our own pages:

* ``Sec-Fetch-Site`` (every current browser; a page cannot set it), when present, decides:
  ``same-origin`` or ``none`` (the user's own navigation) pass, anything else is refused;
* without it (older browsers), ``Origin``, when present, must be this server's origin
  (``STAGEPASS_PUBLIC_URL`` behind a proxy, else the request's own ``scheme://host``).

A request with neither header is not from a browser, so it cannot be forged by a page and
passes (scripts holding the cookie). Bearer-authenticated requests never use the cookie
and are unaffected, as are reads and the Stripe webhook (no cookie). The refusal is
``403 cross_site_request`` and changes nothing.
"""

from __future__ import annotations

from typing import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

from core.access import Refusal, bearer_token
from core.access_http import refusal_response

__all__ = ["COOKIE_SETTING_PATHS", "cross_site_guard", "is_cross_site"]

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
COOKIE_SETTING_PATHS = frozenset({"/api/auth/signup", "/api/auth/login"})
_SAME = frozenset({"same-origin", "none"})


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def is_cross_site(request: web.Request, public_url: str = "") -> bool:
    """True when a browser says this request comes from a page that is not ours."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site.strip().lower() not in _SAME
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    ours = {f"{request.scheme}://{request.host}".lower()}
    if public_url:
        ours.add(_origin_of(public_url))
    return origin.strip().lower() not in ours


def cross_site_guard(cookie_name: str, public_url: Callable[[web.Request], str]) -> Callable:
    """The aiohttp middleware refusing cross-site unsafe requests that use ``cookie_name``."""

    @web.middleware
    async def guard(request: web.Request,
                    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        if (request.method in UNSAFE_METHODS and bearer_token(request) is None
                and (cookie_name in request.cookies or request.path in COOKIE_SETTING_PATHS)
                and is_cross_site(request, public_url(request))):
            return refusal_response(Refusal(403, "cross_site_request",
                                            "this request comes from another site; use the Stagepass pages"), request)
        return await handler(request)

    return guard
