"""The HTTP side of the one door: where the door sits in the app, and refusals as JSON.

A handler (or anything it calls) raises ``core.access.Refusal``; ``refusal_middleware``,
installed innermost by the assembly, answers ``{"error": {"code", "message"}}`` with the
refusal's status, so the code chosen where the request was refused reaches the client.
"""

from __future__ import annotations

from typing import Awaitable, Callable

from aiohttp import web

from .access import Door, Refusal

__all__ = ["ACCESS", "refusal_middleware", "refusal_response"]

#: the app's door (the paywall's, or the stream keys' without the paywall)
ACCESS = web.AppKey("access", Door)


def refusal_response(refusal: Refusal) -> web.Response:
    return web.json_response(refusal.envelope(), status=refusal.status)


@web.middleware
async def refusal_middleware(request: web.Request,
                             handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    try:
        return await handler(request)
    except Refusal as refusal:
        return refusal_response(refusal)
