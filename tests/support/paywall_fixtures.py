"""Fixtures for paywall tests: a full app over SQLite or PostgreSQL, and an API client."""

from __future__ import annotations

import contextlib
import secrets
import uuid
from typing import Any, AsyncIterator, Optional

import aiohttp
import asyncpg
import pytest

from stagepass.app import create_app
from core.settings import Settings
from tests.support.password_costs import CHEAP_ARGON2
from tests.support.worker_pins import ONE_WORKER_EACH

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request, tmp_path):
    """A fresh empty database of each kind: SQLite in tmp, a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'paywall.db'}"
        return
    async with fresh_postgres() as url:
        yield url


@contextlib.asynccontextmanager
async def fresh_postgres() -> AsyncIterator[str]:
    """The URL of a new empty PostgreSQL database, dropped afterwards."""
    name = f"sp_{uuid.uuid4().hex[:12]}"
    try:
        admin = await asyncpg.connect(PG_ADMIN)
    except OSError as exc:  # pragma: no cover - the machines run PostgreSQL
        pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is not reachable: {exc}")
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def paywall_settings(tmp_path, database_url: str, **overrides: Any) -> Settings:
    """Settings of a test server; tests sign up many users from one address, so the
    sign-up limit per client is lifted and creators' rooms are listed at once (no admin
    review of unverified creators: tests/paywall/test_trust.py turns it on) unless a test sets them.
    No RTMP listener and one worker of each kind (in-process) unless a test asks for more.
    Password hashes are cheap (``CHEAP_ARGON2``) unless a test sets the costs."""
    overrides = {"signups_per_hour": 1000, "review_unverified": False, "rtmp_port": 0, **ONE_WORKER_EACH,
                 **CHEAP_ARGON2, **overrides}
    s = Settings.build(data_dir=tmp_path / "data", database_url=database_url, rooms={"open": "open-room-key"},
                 secret="s" * 40, **overrides)
    s.validate()
    return s


@pytest.fixture
async def paywall_app(database_url, aiohttp_server, tmp_path):
    """(base_url, app) of a full Stagepass server with the paywall."""
    app = create_app(paywall_settings(tmp_path, database_url))
    server = await aiohttp_server(app)
    yield str(server.make_url("")).rstrip("/"), app


@pytest.fixture
async def sqlite_app(aiohttp_server, tmp_path):
    """(base_url, app) of a full server over SQLite only: for tests where the database kind
    does not matter (no money moves, or the money path is covered on both elsewhere)."""
    app = create_app(paywall_settings(tmp_path, f"sqlite:///{tmp_path / 'paywall.db'}"))
    server = await aiohttp_server(app)
    yield str(server.make_url("")).rstrip("/"), app


@contextlib.asynccontextmanager
async def flushed_redis(redis_db: int, **options: Any) -> AsyncIterator[Any]:
    """A client of the machine's Redis database ``redis_db``, flushed before and after."""
    import redis.asyncio as aioredis

    r = aioredis.from_url(f"redis://127.0.0.1:6379/{redis_db}", **options)
    await r.flushdb()
    try:
        yield r
    finally:
        await r.flushdb()
        await r.aclose()


@contextlib.asynccontextmanager
async def two_nodes_on_redis(aiohttp_server, tmp_path, redis_db: int) -> AsyncIterator[list[str]]:
    """Two Stagepass nodes sharing one SQLite database and Redis database ``redis_db``
    (flushed before and after); yields their base URLs."""
    url = f"redis://127.0.0.1:6379/{redis_db}"
    db = f"sqlite:///{tmp_path / 'shared.db'}"
    servers = []
    async with flushed_redis(redis_db):
        try:
            for name in ("a", "b"):
                app = create_app(paywall_settings(tmp_path / name, db, redis_url=url))
                servers.append(await aiohttp_server(app))
            yield [str(s.make_url("")).rstrip("/") for s in servers]
        finally:
            for s in servers:
                await s.close()


class Api:
    """A JSON client of the paywall API holding one user's login token."""

    def __init__(self, base: str, token: Optional[str] = None) -> None:
        self.base = base
        self.token = token
        self.user: dict = {}

    async def call(self, method: str, path: str, body: Any = None, raw: Optional[bytes] = None,
                   headers: Optional[dict] = None, token: Optional[str] = "self") -> tuple[int, Any]:
        headers = dict(headers or {})
        token = self.token if token == "self" else token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        kwargs: dict = {"headers": headers}
        if body is not None:
            kwargs["json"] = body
        elif raw is not None:
            kwargs["data"] = raw
        async with aiohttp.ClientSession() as http:
            async with http.request(method, self.base + path, **kwargs) as r:
                if r.content_type == "application/json":
                    return r.status, await r.json()
                return r.status, await r.text()

    async def get(self, path: str, **kw) -> tuple[int, Any]:
        return await self.call("GET", path, **kw)

    async def post(self, path: str, body: Any = None, **kw) -> tuple[int, Any]:
        return await self.call("POST", path, body, **kw)

    async def patch(self, path: str, body: Any = None, **kw) -> tuple[int, Any]:
        return await self.call("PATCH", path, body, **kw)

    @classmethod
    async def sign_up(cls, base: str, role: str = "viewer", email: Optional[str] = None) -> "Api":
        api = cls(base)
        email = email or f"{role}-{secrets.token_hex(4)}@example.org"
        status, body = await api.post("/api/auth/signup", {"email": email, "password": "correct horse battery",
                                                           "display_name": role.title(), "role": role})
        assert status == 201, body
        api.token, api.user = body["token"], body["user"]
        return api


async def paid_room(creator: Api, slug: str = "maths", **fields: Any) -> dict:
    body = {"slug": slug, "title": "Live maths", "currency": "USD", "ticket_price": 990,
            "replay_price": 500, "replay_included": False, "max_devices": 1, **fields}
    status, resp = await creator.post("/api/rooms", body)
    assert status == 201, resp
    return resp


async def buy(viewer: Api, slug: str, product: str = "ticket", **extra: Any) -> dict:
    status, resp = await viewer.post("/api/orders", {"room": slug, "product": product,
                                                     "idempotency_key": secrets.token_hex(8), **extra})
    assert status == 201, resp
    order = resp["order"]
    if order["status"] == "pending":
        status, resp = await viewer.post(f"/pay/dev/{order['id']}", {"action": "confirm"})
        assert status == 200, resp
        order = resp["order"]
    assert order["status"] == "paid"
    return order


async def pending_order(viewer: Api, slug: str = "maths", product: str = "ticket") -> dict:
    """A new order of ``viewer``'s for ``product`` of ``slug``, not paid yet."""
    status, resp = await viewer.post("/api/orders", {"room": slug, "product": product,
                                                     "idempotency_key": secrets.token_hex(8)})
    assert status == 201 and resp["order"]["status"] == "pending", resp
    return resp["order"]


async def creator_and_viewer(base: str, **room: Any) -> tuple[Api, Api]:
    """A creator with a paid room ``maths`` (``room``: its fields) and a signed-up viewer."""
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator, **room)
    return creator, await Api.sign_up(base, "viewer")


async def admin_of(base: str, app) -> Api:
    """A new user made admin (the way the ``set-role`` command does)."""
    from paywall.http import PAYWALL

    admin = await Api.sign_up(base)
    await app[PAYWALL].accounts.set_role(admin.user["email"], "admin")
    return admin


async def view_token(viewer: Api, slug: str) -> str:
    status, resp = await viewer.post(f"/api/rooms/{slug}/tokens", {"scope": "view"})
    assert status == 201, resp
    return resp["token"]


async def connected(base: str, api: Api, room: str = "maths", token: str = ""):
    """A Socket.IO client (tests/support/chat.py) in ``room`` with ``api``'s view token."""
    from tests.support.chat import Chat

    chat = Chat()
    assert await chat.connect(base, room, token or await view_token(api, room)), chat.refused
    return chat
