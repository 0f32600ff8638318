"""HTTP handlers of the creator dashboard (thin: ``paywall.dashboard`` does the work).

``GET /api/creator/dashboard``: the logged-in creator's rooms, sales, earnings, balance
and sessions, and the bytes their recordings occupy (``stored_bytes``, per room and in
all: objects in the object store, or files on this node's disk). ``GET /api/creator/broadcasts/{id}/audience``: one session's concurrent
viewers ``[[t_ms, viewers], ...]`` (404 unless it is one of the creator's rooms).
"""

from __future__ import annotations

from aiohttp import web

from core.cpu import off_loop

from .http import PAYWALL, current_user
from .replay_http import RECORDINGS

__all__ = ["setup_routes"]


async def dashboard(request: web.Request) -> web.Response:
    user = await current_user(request)
    body = await request.app[PAYWALL].dashboard.overview(user)
    library = request.app.get(RECORDINGS)
    if library is not None and isinstance(body.get("rooms"), list):
        slugs = {room["slug"] for room in body["rooms"]}
        recordings = [r for r in await library.recordings() if r.room in slugs]
        sizes = await off_loop(lambda: [(r.room, library.bytes_of(r)) for r in recordings])
        per_room: dict[str, int] = {}
        for slug, size in sizes:
            per_room[slug] = per_room.get(slug, 0) + size
        for room in body["rooms"]:
            room["stored_bytes"] = per_room.get(room["slug"], 0)
        body["stored_bytes"] = sum(per_room.values())
    return web.json_response(body)


async def broadcast_audience(request: web.Request) -> web.Response:
    user = await current_user(request)
    body = await request.app[PAYWALL].dashboard.session_audience(user, request.match_info["broadcast"])
    return web.json_response(body)


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/api/creator/dashboard", dashboard)
    app.router.add_get("/api/creator/broadcasts/{broadcast}/audience", broadcast_audience)
