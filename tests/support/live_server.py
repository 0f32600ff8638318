"""The live path's test server (a pytest plugin, registered in tests/conftest.py): a real
Stagepass app with two config rooms and no paywall, on a loopback port."""

from __future__ import annotations

import pytest

from core.access import StreamKeyAccess
from core.settings import Settings
from stagepass.app import create_app
from tests.support.worker_pins import ONE_WORKER_EACH

KEY = "test-stream-key"  # room ``demo``'s stream key
OTHER_KEY = "other-key-123"  # room ``other``'s


def media_settings(tmp_path, **overrides) -> Settings:
    """The live path's settings of the ``server`` fixture: config rooms ``demo`` and ``other``."""
    s = Settings.build(**{"data_dir": tmp_path, "rooms": {"demo": KEY, "other": OTHER_KEY}, "rtmp_port": 0,
                          **ONE_WORKER_EACH, **overrides})
    s.validate()
    return s


@pytest.fixture
def settings(tmp_path) -> Settings:
    return media_settings(tmp_path)


@pytest.fixture
async def server(aiohttp_server, settings):
    """A real Stagepass app (live path only, config rooms) on a loopback port: (base_url, app)."""
    app = create_app(settings, access=StreamKeyAccess(settings.stream_keys()))
    srv = await aiohttp_server(app)
    yield str(srv.make_url("")).rstrip("/"), app


async def media_server(aiohttp_server, tmp_path, **overrides):
    """A live-path server with ``media_settings(tmp_path, **overrides)``: (server, base_url, app)."""
    settings = media_settings(tmp_path, **overrides)
    app = create_app(settings, access=StreamKeyAccess(settings.stream_keys()))
    server = await aiohttp_server(app)
    return server, str(server.make_url("")).rstrip("/"), app
