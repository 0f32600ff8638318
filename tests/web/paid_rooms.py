"""A paywalled server in the test's event loop and a creator going live on it, for the
browser tests of the room page."""

from __future__ import annotations

from aiohttp import web

from signalling.whip import ROOMS
from stagepass.app import create_app
from tests.support.paywall_fixtures import paywall_settings
from tests.support.peers import Publisher
from tests.support.waiting import wait_for

__all__ = ["publish", "start_server"]


async def start_server(aiohttp_server, tmp_path) -> tuple[str, web.Application]:
    """The app with the paywall on SQLite in ``tmp_path``: ``(base URL, app)``."""
    app = create_app(paywall_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}"))
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/"), app


async def publish(base: str, app: web.Application, slug: str, key: str) -> Publisher:
    """An aiortc publisher live in room ``slug`` (its media arrived)."""
    publisher = Publisher(base)
    assert await publisher.publish(slug, key) == 201, publisher.error
    room = app[ROOMS].get(slug)
    await wait_for(lambda: room.live and room.publisher.last_media() is not None, timeout=10)
    return publisher
