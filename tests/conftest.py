import asyncio
import os

import pytest

from stagepass.app import create_app
from core.settings import Settings
from core.access import StreamKeyAccess

# Servers the tests start as processes list new rooms at once, as the in-process fixtures do
# (``paywall_settings``); the review queue for unverified creators is tested in test_trust.py.
os.environ.setdefault("STAGEPASS_REVIEW_UNVERIFIED", "off")

pytest_plugins = ("tests.support.missing_tools", "tests.support.paywall_fixtures", "tests.support.replays", "tests.support.browser",
                  "tests.support.gst")

KEY = "test-stream-key"


@pytest.fixture
def settings(tmp_path) -> Settings:
    s = Settings.build(data_dir=tmp_path, rooms={"demo": KEY, "other": "other-key-123"}, rtmp_port=0)
    s.validate()
    return s


@pytest.fixture
async def server(aiohttp_server, settings):
    """A real Stagepass app (live path only, config rooms) on a loopback port."""
    app = create_app(settings, access=StreamKeyAccess(settings.stream_keys()))
    srv = await aiohttp_server(app)
    yield str(srv.make_url("")).rstrip("/"), app


async def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)
