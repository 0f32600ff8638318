"""Seats: how many devices one ticket may play on at once, with real WebRTC peers.

* one node (in-process seats): a second device ends the first when ``max_devices`` is 1,
  both stay with 2, and a device that leaves gives its seat back;
* two nodes sharing one database and one Redis (``Seats`` on a ``RedisCluster``): taking a
  seat on one node ends the session on the other, and a refund ends sessions on every node.
"""

from __future__ import annotations

import asyncio
from typing import Optional

import pytest
from redis.asyncio import Redis

from stagepass.app import CLUSTER, create_app
from paywall.http import PAYWALL
from signalling.whip import ADMISSION, ROOMS
from tests.support.waiting import wait_for
from tests.support.paywall_fixtures import (
    Api, buy, creator_and_viewer, flushed_redis, paywall_settings, view_token,
)
from tests.support.peers import Publisher, Viewer

pytestmark = pytest.mark.inprocess

REDIS_DB = 11  # this file's own database number
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"


class TokenViewer(Viewer):
    async def play_with(self, room: str, token: str) -> int:
        return await self.post(f"/whep/{room}", token=token)

    @property
    def session_id(self) -> str:
        assert self.location, "not playing"
        return self.location.rsplit("/", 1)[1]


def subscribers(app, room: str = "maths") -> set[str]:
    r = app[ROOMS].get(room)
    return set(r.subscribers) if r is not None else set()


async def frames_grow(viewer: Viewer, by: int = 15, timeout: float = 20) -> None:
    start = len(viewer.numbers)
    await wait_for(lambda: len(viewer.numbers) >= start + by, timeout=timeout)


async def play(base: str, token: str, peers: list) -> TokenViewer:
    v = TokenViewer(base)
    peers.append(v)
    status = await v.play_with("maths", token)
    assert status == 201, getattr(v, "error", None)
    return v


async def publish(base: str, creator: Api, peers: list) -> Publisher:
    status, minted = await creator.post("/api/rooms/maths/tokens", {"scope": "publish"})
    assert status == 201, minted
    publisher = Publisher(base)
    peers.append(publisher)
    assert await publisher.publish("maths", minted["token"]) == 201
    return publisher


async def close_all(peers: list) -> None:
    for p in reversed(peers):
        try:
            await p.close()
        except Exception:  # pragma: no cover - best effort cleanup
            pass


# ---------------------------------------------------------------------- one node
@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_one_device_a_second_device_ends_the_first(paywall_app):
    base, app = paywall_app
    creator, viewer = await creator_and_viewer(base, max_devices=1)
    await buy(viewer, "maths")
    peers: list = []
    try:
        await publish(base, creator, peers)
        a = await play(base, await view_token(viewer, "maths"), peers)
        await frames_grow(a)
        assert subscribers(app) == {a.session_id}

        b = await play(base, await view_token(viewer, "maths"), peers)
        await wait_for(lambda: subscribers(app) == {b.session_id}, timeout=10)
        await frames_grow(b, by=30)
        assert subscribers(app) == {b.session_id}
        # A gets nothing more (a few frames already in flight may still decode)
        stopped_at = len(a.numbers)
        await frames_grow(b, by=30)
        assert len(a.numbers) - stopped_at <= 5
        # A's session resource is gone
        assert await a.delete() == 404
    finally:
        await close_all(peers)


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_two_devices_both_stay_and_a_leaving_device_frees_its_seat(paywall_app):
    base, app = paywall_app
    creator, viewer = await creator_and_viewer(base, max_devices=2)
    await buy(viewer, "maths")
    peers: list = []
    try:
        await publish(base, creator, peers)
        a = await play(base, await view_token(viewer, "maths"), peers)
        await frames_grow(a)
        b = await play(base, await view_token(viewer, "maths"), peers)
        await frames_grow(b)
        await frames_grow(a, by=30)  # A keeps playing next to B
        assert subscribers(app) == {a.session_id, b.session_id}

        # B leaves (WHEP DELETE): its seat is free again, so C takes it and A stays
        assert await b.delete() == 200
        await b.close()
        await wait_for(lambda: subscribers(app) == {a.session_id}, timeout=10)
        c = await play(base, await view_token(viewer, "maths"), peers)
        await frames_grow(c)
        await frames_grow(a, by=15)
        assert subscribers(app) == {a.session_id, c.session_id}

        # a third device at once: the oldest (A) goes
        d = await play(base, await view_token(viewer, "maths"), peers)
        await wait_for(lambda: subscribers(app) == {c.session_id, d.session_id}, timeout=10)
        await frames_grow(d)
        await frames_grow(c, by=15)
        assert subscribers(app) == {c.session_id, d.session_id}
    finally:
        await close_all(peers)


# ---------------------------------------------------------------------- two nodes
@pytest.fixture
async def redis_db():
    async with flushed_redis(REDIS_DB) as redis:
        yield redis


@pytest.fixture
async def two_nodes(aiohttp_server, tmp_path, database_url, redis_db):
    """Two Stagepass nodes over one database and one Redis: [(base_url, app), ...]."""
    nodes = []
    for name in ("a", "b"):
        settings = paywall_settings(tmp_path, database_url, redis_url=REDIS_URL)
        settings.server.data_dir = tmp_path / f"data-{name}"
        app = create_app(settings)
        server = await aiohttp_server(app)
        nodes.append((str(server.make_url("")).rstrip("/"), app))
    yield nodes


async def seat_holders(redis: Redis, user_id: int) -> set[str]:
    return {m.decode() for m in await redis.zrange(f"stagepass:seats:maths:{user_id}", 0, -1)}


@pytest.mark.slow
async def test_a_seat_taken_on_another_node_ends_the_session_here(two_nodes, redis_db):
    (base_a, app_a), (base_b, app_b) = two_nodes
    assert app_a[ADMISSION].seats.cluster is app_a[CLUSTER] and app_a[CLUSTER].kind == "redis"
    creator, viewer = await creator_and_viewer(base_a, max_devices=1)
    order = await buy(viewer, "maths")
    uid = viewer.user["id"]
    peers: list = []
    try:
        # no media is needed: a viewer session exists as soon as WHEP answers 201
        on_a = await play(base_a, await view_token(viewer, "maths"), peers)
        assert subscribers(app_a) == {on_a.session_id}
        assert await seat_holders(redis_db, uid) == {on_a.session_id}

        viewer_b = Api(base_b, viewer.token)  # the same login, through node B
        on_b = await play(base_b, await view_token(viewer_b, "maths"), peers)
        await wait_for(lambda: not subscribers(app_a), timeout=10)
        assert subscribers(app_b) == {on_b.session_id}
        assert await seat_holders(redis_db, uid) == {on_b.session_id}

        # and back: a new device on A ends the one on B
        again_a = await play(base_a, await view_token(viewer, "maths"), peers)
        await wait_for(lambda: not subscribers(app_b), timeout=10)
        assert subscribers(app_a) == {again_a.session_id}
        assert await seat_holders(redis_db, uid) == {again_a.session_id}

        # a refund on node B ends the session on node A
        status, body = await Api(base_b, creator.token).post(f"/api/orders/{order['id']}/refund")
        assert status == 200 and body["order"]["status"] == "refunded"
        await wait_for(lambda: not subscribers(app_a), timeout=10)
        assert await seat_holders(redis_db, uid) == set()
        refused = TokenViewer(base_a)
        peers.append(refused)
        assert await refused.play_with("maths", again_a.token) == 403
    finally:
        await close_all(peers)
    assert app_a[PAYWALL] is not app_b[PAYWALL]


async def subscribed_client(redis: Redis, cluster) -> Optional[dict]:
    """The Redis client entry of the cluster's pub/sub connection (where the seats hear
    evictions), if it is connected."""
    conn = cluster._subscriber.connection
    writer = getattr(conn, "_writer", None) if conn is not None else None
    if writer is None or writer.is_closing():
        return None
    host, port = writer.get_extra_info("sockname")[:2]
    for client in await redis.client_list():
        if client["addr"] == f"{host}:{port}" and client.get("sub", "0") != "0":
            return client
    return None


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_evictions_still_arrive_after_the_redis_connection_drops(two_nodes, redis_db):
    (base_a, app_a), (base_b, app_b) = two_nodes
    creator, viewer = await creator_and_viewer(base_a, max_devices=1)
    await buy(viewer, "maths")
    peers: list = []
    try:
        on_a = await play(base_a, await view_token(viewer, "maths"), peers)
        # drop node A's pub/sub connection (only that one connection, this test's own)
        cluster_a = app_a[CLUSTER]
        client = await subscribed_client(redis_db, cluster_a)
        assert client is not None
        assert await redis_db.client_kill_filter(_id=client["id"]) == 1
        # give a recovering node time to subscribe again (the last assertion decides)
        deadline = asyncio.get_running_loop().time() + 5
        while asyncio.get_running_loop().time() < deadline:
            again = await subscribed_client(redis_db, cluster_a)
            if again is not None and again["id"] != client["id"]:
                break
            await asyncio.sleep(0.2)

        on_b = await play(base_b, await view_token(Api(base_b, viewer.token), "maths"), peers)
        await wait_for(lambda: not subscribers(app_a), timeout=10)
        assert subscribers(app_b) == {on_b.session_id}
        assert on_a.session_id not in subscribers(app_a)
    finally:
        await close_all(peers)


async def test_redis_seats_say_why_a_holder_is_evicted(redis_db):
    """Evictions carry their reason across nodes (a newer device, or a refund); a bare
    holder, as published by an older node, still means a taken seat."""
    from core.cluster import RedisCluster
    from paywall.seats import CHANNEL, REVOKED, SEAT_TAKEN, Seats

    heard: list[tuple[str, str]] = []

    async def on_evict(holder: str, reason: str) -> None:
        heard.append((holder, reason))

    node_a, node_b = RedisCluster.from_url(REDIS_URL), RedisCluster.from_url(REDIS_URL)
    a, b = Seats(node_a), Seats(node_b)
    b.on_evict = on_evict
    await a.start()
    await b.start()
    try:
        assert await a.take("maths:1", "s1", 1) == []
        assert await a.take("maths:1", "s2", 1) == ["s1"]
        assert await a.take("maths:1", "s3", 2) == []
        assert sorted(await a.evict_all("maths:1")) == ["s2", "s3"]
        await redis_db.publish(f"stagepass:{REDIS_DB}:{CHANNEL}", "legacy-holder")
        await wait_for(lambda: len(heard) == 4, timeout=5)
        assert heard[0] == ("s1", SEAT_TAKEN)
        assert sorted(heard[1:3]) == [("s2", REVOKED), ("s3", REVOKED)]
        assert heard[3] == ("legacy-holder", SEAT_TAKEN)
    finally:
        await a.close()
        await b.close()
        await node_a.close()
        await node_b.close()
