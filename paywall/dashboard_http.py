"""HTTP handlers of the creator dashboard (thin: ``paywall.dashboard`` does the work).

``GET /api/creator/dashboard``: the logged-in creator's rooms, sales, earnings, balance
and sessions. ``GET /api/creator/broadcasts/{id}/audience``: one session's concurrent
viewers ``[[t_ms, viewers], ...]`` (404 unless it is one of the creator's rooms).
"""

from __future__ import annotations

from aiohttp import web

from .http import PAYWALL, api, current_user

__all__ = ["setup_routes"]


@api
async def dashboard(request: web.Request) -> web.Response:
    user = await current_user(request)
    return web.json_response(await request.app[PAYWALL].dashboard.overview(user))


@api
async def broadcast_audience(request: web.Request) -> web.Response:
    user = await current_user(request)
    body = await request.app[PAYWALL].dashboard.session_audience(user, request.match_info["broadcast"])
    return web.json_response(body)


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/api/creator/dashboard", dashboard)
    app.router.add_get("/api/creator/broadcasts/{broadcast}/audience", broadcast_audience)
