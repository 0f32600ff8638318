"""Assembling the aiohttp application: domain, signalling and pages."""

from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator, Optional

from aiohttp import web

import web as web_assets
from signalling.permissions import Permissions, StreamKeyPermissions
from signalling.whip import PERMISSIONS, ROOMS, SETTINGS, setup_routes

from .aiortc_bridge import check_aiortc_version
from .config import Settings
from .room import RoomRegistry

__all__ = ["create_app"]

STATIC_DIR = Path(web_assets.__file__).parent / "static"


def create_app(settings: Settings, permissions: Optional[Permissions] = None) -> web.Application:
    check_aiortc_version()
    app = web.Application(client_max_size=settings.max_sdp_bytes)
    app[SETTINGS] = settings
    app[PERMISSIONS] = permissions or StreamKeyPermissions(settings.stream_keys())

    async def rooms_ctx(app: web.Application) -> AsyncIterator[None]:
        app[ROOMS] = RoomRegistry(settings)
        yield
        await app[ROOMS].close()

    app.cleanup_ctx.append(rooms_ctx)
    setup_routes(app)

    async def index(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/static/watch.html")

    app.router.add_get("/", index)
    app.router.add_static("/static/", STATIC_DIR, follow_symlinks=False)
    return app
