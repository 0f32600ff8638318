"""Puts insight into the app: routes and the visitor cookie now, the services at startup."""

from __future__ import annotations

from typing import Optional

from aiohttp import web

from core.cluster import Cluster
from paywall.http import PAYWALL

from .http import INSIGHT, setup_routes
from .service import Insight
from .visitors import visitor_middleware

__all__ = ["INSIGHT", "install_insight", "open_insight"]


def install_insight(app: web.Application) -> None:
    """Routes and the visitor-id middleware (before the app starts)."""

    async def link(visitor: str, user_id: int) -> None:
        await app[INSIGHT].events.link_visitor(visitor, user_id)

    def secure(request: web.Request) -> bool:
        return request.secure or request.app[PAYWALL].settings.server.public_url.startswith("https://")

    app.middlewares.append(visitor_middleware(link, secure))
    setup_routes(app)


async def open_insight(app: web.Application, cluster: Optional[Cluster] = None) -> Insight:
    """Start the services over the app's paywall (at startup, once it is open); ``cluster``:
    the interaction features' (see ``Insight``)."""
    paywall = app[PAYWALL]
    insight = Insight(paywall.settings, paywall, cluster)
    await insight.start()
    app[INSIGHT] = insight
    return insight
