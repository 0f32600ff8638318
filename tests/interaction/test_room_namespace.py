"""One room namespace: the open rooms of the configuration (``STAGEPASS_ROOMS``, or the
default install's ``demo``) and the paywall's rooms never share a name. A creator cannot
create a room named like an open room (409 ``slug_reserved``), and a database room whose
name is also configured stops the server at start, naming the room. Before this, a paid
room ``demo`` was played by anonymous WHEP viewers as the open room and refused its
creator's key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stagepass.app import create_app
from core.settings import ConfigError, Settings
from tests.support.password_costs import CHEAP_ARGON2
from tests.support.paywall_fixtures import Api, paid_room, paywall_settings
from tests.support.peers import Viewer
from tests.support.worker_pins import ONE_WORKER_EACH_FLAGS

pytestmark = pytest.mark.inprocess

ROOT = Path(__file__).resolve().parents[2]


async def test_a_creator_cannot_sell_a_room_named_like_an_open_room(paywall_app):
    base, app = paywall_app  # configured open room: "open"
    creator = await Api.sign_up(base, "creator")
    status, body = await creator.post("/api/rooms", {"slug": "open", "title": "Paid?", "currency": "USD",
                                                     "ticket_price": 990})
    assert (status, body["error"]["code"]) == (409, "slug_reserved"), body
    assert "'open'" in body["error"]["message"]
    # nothing was stored: not in the catalog, not the creator's, not for sale
    assert (await creator.get("/api/catalog/open"))[0] == 404
    assert (await creator.get("/api/creator/rooms"))[1]["rooms"] == []
    viewer = await Api.sign_up(base)
    status, body = await viewer.post("/api/orders", {"room": "open", "product": "ticket", "idempotency_key": "namespace-1"})
    assert (status, body["error"]["code"]) == (404, "room_not_found"), body
    # other names are fine
    await paid_room(creator, slug="open-2")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_configured_room_clashing_with_a_paid_room_stops_the_start(aiohttp_server, tmp_path, database_url):
    # a paid room "demo", created while "demo" was not an open room: anonymous viewers are refused
    first = await aiohttp_server(create_app(paywall_settings(tmp_path, database_url)))
    base = str(first.make_url("")).rstrip("/")
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator, slug="demo")
    anonymous = Viewer(base)
    try:
        assert await anonymous.play("demo") == 401
    finally:
        await anonymous.close()
    await first.close()
    # configuring "demo" as an open room would make it free to watch: the server refuses to start
    settings = paywall_settings(tmp_path, database_url)
    settings.media.rooms = {"demo": "demo-stream-key"}
    with pytest.raises(ConfigError, match="'demo'") as refused:
        await aiohttp_server(create_app(settings))
    assert "STAGEPASS_ROOMS" in str(refused.value)


def _serve(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "stagepass.cli", "serve", "--port", "0",
                           "--data-dir", str(data_dir), *ONE_WORKER_EACH_FLAGS, *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


async def test_stagepass_serve_refuses_a_database_room_named_like_the_default_demo(tmp_path):
    """The default install's open room ``demo`` (no ``STAGEPASS_ROOMS``) against a paid room
    ``demo`` in its database (made before names were reserved): exit 2, naming the room."""
    data = tmp_path / "data"
    settings = Settings.build(data_dir=data, rooms={"elsewhere": "elsewhere-key"}, **CHEAP_ARGON2)
    settings.validate()
    from paywall.service import Paywall

    paywall = await Paywall.open(settings)
    try:
        user, _ = await paywall.accounts.sign_up("c@example.org", "correct horse battery", "C", "creator")
        await paywall.catalog.create_room(user, {"slug": "demo", "title": "Paid demo", "currency": "USD",
                                                 "ticket_price": 990})
    finally:
        await paywall.close()
    r = _serve(data)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "invalid configuration" in r.stderr and "'demo'" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
