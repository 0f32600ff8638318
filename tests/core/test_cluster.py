"""The cluster seam: the same contract cases on ``LocalCluster`` and ``RedisCluster`` (the
machine's Redis, this file's own database), the node registry on both, the Redis
subscription surviving a killed connection, and two real nodes sharing one pub/sub
connection each for seats, the interaction bus and Socket.IO."""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

import pytest
from redis.asyncio import Redis

from core.cluster import Cluster, LocalCluster, NodeRegistry, RedisCluster
from signalling.whip import ROOMS
from stagepass.keys import NODES
from tests.support.chat import Chat
from tests.support.cluster_views import KINDS, two_cluster_views
from tests.support.live_server import KEY
from tests.support.waiting import wait_for
from tests.support.paywall_fixtures import Api, flushed_redis, paid_room, two_nodes_on_redis, view_token
from tests.support.peers import Publisher

pytestmark = pytest.mark.inprocess

REDIS_DB = 7  # this file's own database numbers
OTHER_DB = 6
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"


@pytest.fixture
async def raw_redis() -> AsyncIterator[Redis]:
    async with flushed_redis(REDIS_DB, decode_responses=True) as redis:
        yield redis


@pytest.fixture(params=KINDS)
async def pair(request, tmp_path) -> AsyncIterator[tuple[Cluster, Cluster]]:
    """Two nodes' views of one cluster, one of each kind (tests/support/cluster_views.py)."""
    async with two_cluster_views(request.param, REDIS_DB, tmp_path) as views:
        yield views


# ---------------------------------------------------------------- contract
async def test_strings_claims_and_compare_and_set(pair):
    a, b = pair
    assert await a.get("k") is None
    await a.set("k", "v1")
    assert await b.get("k") == "v1"
    assert not await b.set_if_absent("k", "v2")
    assert await b.set_if_absent("claim", "node-b", ttl=30)
    assert not await a.set_if_absent("claim", "node-a", ttl=30)
    assert await a.get("claim") == "node-b"
    # compare-and-set: only from the expected value; None expects absence, None deletes
    assert not await a.compare_and_set("claim", "node-a", "node-a")
    assert await b.compare_and_set("claim", "node-b", "node-b", ttl=30)
    assert not await a.compare_and_set("claim", None, "node-a")
    assert await a.compare_and_set("fresh", None, "x")
    assert await b.compare_and_set("claim", "node-b", None)
    assert await a.get("claim") is None
    assert await b.delete("k") and not await b.delete("k")


async def test_keys_expire_and_are_listed_by_prefix(pair):
    a, b = pair
    await a.set("nodes:one", "1", ttl=0.3)
    await a.set("nodes:two", "2")
    await a.set("nodes*:glob", "3")  # glob characters in a prefix are literal
    await a.set("other", "4")
    assert sorted(await b.keys("nodes:")) == ["nodes:one", "nodes:two"]
    assert await b.keys("nodes*") == ["nodes*:glob"]
    assert await b.expire("nodes:two", 0.3) and not await b.expire("missing", 1)
    await asyncio.sleep(0.45)
    assert await b.keys("nodes:") == [] and await a.get("nodes:one") is None
    assert await a.get("other") == "4"


async def test_counters_add_up_across_nodes(pair):
    a, b = pair
    assert await a.incr("likes", 10, ttl=30) == 10
    assert await b.incr("likes", 5, ttl=30) == 15
    assert await a.get("likes") == "15"
    assert await b.incr("likes", -15) == 0


async def test_hash_fields_count_and_vanish_at_zero(pair):
    a, b = pair
    assert await a.hash_incr("presence", "7", 1, ttl=30) == 1
    assert await b.hash_incr("presence", "7", 1, ttl=30) == 2
    assert await b.hash_incr("presence", "8") == 1
    assert await a.hash_get_all("presence") == {"7": "2", "8": "1"}
    assert await a.hash_incr("presence", "7", -2) == 0
    assert await b.hash_get_all("presence") == {"8": "1"}
    await a.hash_incr("presence", "8", -1)
    assert await b.hash_get_all("presence") == {} and await b.keys("presence") == []


async def test_ordered_sets_keep_arrival_order_and_evict_the_oldest(pair):
    a, b = pair
    assert await a.ordered_add("seats", "s1", limit=2, ttl=30) == []
    assert await b.ordered_add("seats", "s2", limit=2, ttl=30) == []
    assert await a.ordered_add("seats", "s3", limit=2, ttl=30) == ["s1"]
    assert await b.ordered_members("seats") == ["s2", "s3"]
    assert await b.ordered_add("seats", "s2", limit=2) == []  # taken again: now the newest
    assert await a.ordered_members("seats") == ["s3", "s2"]
    assert await a.ordered_add("seats", "s4", limit=1) == ["s3", "s2"]
    # keep_place: raising a hand twice keeps its first place
    for member in ("u1", "u2", "u1"):
        await a.ordered_add("hands", member, keep_place=True)
    assert await b.ordered_members("hands") == ["u1", "u2"]
    assert await b.ordered_remove("hands", "u1") and not await b.ordered_remove("hands", "u1")
    assert await a.ordered_pop_all("seats") == ["s4"]
    assert await b.ordered_members("seats") == [] and await b.ordered_pop_all("seats") == []


async def test_published_messages_reach_every_subscriber_in_order(pair):
    a, b = pair
    heard: list[tuple[str, str]] = []

    async def first(message: str) -> None:
        heard.append(("first", message))

    async def broken(message: str) -> None:
        raise RuntimeError("a failing handler is logged, not fatal")

    async def second(message: str) -> None:
        heard.append(("second", message))

    subscriptions = [await b.subscribe("bus", h) for h in (first, broken, second)]
    other = await b.subscribe("elsewhere", first)
    for n in range(3):
        await a.publish("bus", f"m{n}")  # published right after subscribe returned: not missed
    await wait_for(lambda: len(heard) == 6, timeout=5)
    assert [m for who, m in heard if who == "first"] == ["m0", "m1", "m2"]
    assert [m for who, m in heard if who == "second"] == ["m0", "m1", "m2"]
    await subscriptions[0].close()
    await subscriptions[0].close()  # idempotent
    await a.publish("bus", "after")
    await wait_for(lambda: len(heard) == 7, timeout=5)
    await asyncio.sleep(0.1)
    assert heard[-1] == ("second", "after") and len(heard) == 7
    for s in (*subscriptions, other):
        await s.close()


async def test_node_registry_lists_live_nodes_and_who_hosts_a_room(pair):
    a, b = pair
    hosted_a: list[str] = ["maths"]
    hosted_b: list[str] = ["maths", "physics"]
    node_a = NodeRegistry(a, "node-a", lambda: hosted_a, info={"url": "http://a"}, interval=0.1)
    node_b = NodeRegistry(b, "node-b", lambda: hosted_b, interval=0.1)
    await node_a.start()
    await node_b.start()
    try:
        listed = await node_b.nodes()
        assert [n.id for n in listed] == ["node-a", "node-b"]
        assert listed[0].info == {"url": "http://a"} and listed[0].rooms == ["maths"]
        assert listed[1].rooms == ["physics"]  # maths was claimed by node A first
        assert await node_a.host_of("physics") == "node-b" and await node_b.host_of("maths") == "node-a"
        assert await node_b.host_of("chemistry") is None
        # the broadcast ends on A: released at once, and B takes the room at its next beat
        hosted_a.clear()
        await node_a.release_room("maths")
        assert await _eventually(lambda: node_a.host_of("maths"), "node-b")
        # a node that stops leaves at once; one that dies expires after three missed beats
        await node_a.close()
        assert [n.id for n in await node_b.nodes()] == ["node-b"]
        await node_b.tasks.close()  # dead: no more heartbeats, nothing released
        assert await _eventually(node_b.nodes, [])
        assert await node_b.host_of("maths") is None
    finally:
        await node_a.close()
        await node_b.close()


async def _eventually(read, expected, timeout: float = 5.0) -> bool:
    """Poll the coroutine function ``read`` until it returns ``expected``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while await read() != expected:
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


# ---------------------------------------------------------------- Redis only
async def test_a_killed_subscription_connection_is_made_again(raw_redis):
    cluster = RedisCluster.from_url(REDIS_URL)
    heard: list[str] = []

    async def got(message: str) -> None:
        heard.append(message)

    try:
        await cluster.subscribe("bus", got)
        await cluster.subscribe("other", got)
        killed = await _subscribed_ids(raw_redis)
        assert len(killed) == 1  # one connection for every channel of the process
        assert await raw_redis.client_kill_filter(_id=killed[0]) == 1
        # messages published while no connection listens are lost (that is pub/sub): the
        # subscriber is back when a message gets through again, on both channels
        deadline = asyncio.get_running_loop().time() + 10
        while "again" not in heard:
            assert asyncio.get_running_loop().time() < deadline, "the subscription did not come back"
            await cluster.publish("bus", "again")
            await asyncio.sleep(0.1)
        await cluster.publish("other", "both channels")
        await wait_for(lambda: "both channels" in heard, timeout=5)
        assert len(await _subscribed_ids(raw_redis)) == 1
    finally:
        await cluster.close()


async def test_deployments_on_other_database_numbers_do_not_hear_each_other(raw_redis):
    """Redis pub/sub is server-wide: the channels carry the database number."""
    ours = RedisCluster.from_url(REDIS_URL)
    theirs = RedisCluster.from_url(f"redis://127.0.0.1:6379/{OTHER_DB}")
    heard: list[str] = []

    async def got(message: str) -> None:
        heard.append(message)

    try:
        await ours.subscribe("bus", got)
        await theirs.publish("bus", "other deployment")
        await ours.publish("bus", "ours")
        await wait_for(lambda: heard, timeout=5)
        await asyncio.sleep(0.1)
        assert heard == ["ours"]
    finally:
        await ours.close()
        await theirs.close()


def _viewers(chat: Chat):
    frames = chat.got("presence")
    return frames[-1]["viewers"] if frames else None


def _hands(chat: Chat) -> list[int]:
    frames = chat.got("hands")
    return [item["user"]["id"] for item in frames[-1]["items"]] if frames else []


async def _subscribed_ids(redis: Redis) -> list[str]:
    """Ids of this database's clients holding subscriptions."""
    return [c["id"] for c in await redis.client_list()
            if c.get("db") == str(REDIS_DB) and c.get("sub", "0") != "0"]


@pytest.mark.slow
async def test_each_node_shares_one_pubsub_connection_and_presence_and_hands_span_nodes(aiohttp_server, tmp_path, raw_redis):
    """Seats, the interaction bus, Socket.IO's client manager and the danmaku feed of a node listen on one
    Redis connection, from the node's one pool (python-socketio's ``AsyncRedisManager``
    would have opened a client of its own); presence and raised hands are the room's on
    both nodes."""
    async with two_nodes_on_redis(aiohttp_server, tmp_path, REDIS_DB) as (node_a, node_b):
        creator = await Api.sign_up(node_a, "creator")
        await paid_room(creator, ticket_price=0)
        chats = []
        try:
            for base in (node_a, node_b):  # Socket.IO subscribes at its first connection
                chat = Chat()
                assert await chat.connect(base, "maths", await view_token(Api(base, creator.token), "maths"))
                chats.append(chat)
            clients = [c for c in await raw_redis.client_list()
                       if c.get("db") == str(REDIS_DB) and c.get("sub", "0") != "0"]
            assert sorted(c["sub"] for c in clients) == ["4", "4"], clients
            # channels are server-wide, so they carry the database number
            channels = set(await raw_redis.pubsub_channels(f"stagepass:{REDIS_DB}:*"))
            assert channels == {f"stagepass:{REDIS_DB}:{c}" for c in ("seats:evicted", "interaction", "socketio",
                                                                        "danmaku-feed")}
            # presence counts distinct users of every node: the creator on both is one
            await wait_for(lambda: all(_viewers(c) == 1 for c in chats), timeout=5)
            viewer = await Api.sign_up(node_b)
            chat = Chat()
            assert await chat.connect(node_b, "maths", await view_token(viewer, "maths"))
            chats.append(chat)
            await wait_for(lambda: all(_viewers(c) == 2 for c in chats), timeout=5)
            # hands: raised on B, seen by the moderator on A; the viewer's tab on A keeps it
            # up when the one on B closes; lowered from A, the viewer's tab on A hears it
            uid = viewer.user["id"]
            assert (await chat.call("hand:raise"))["ok"]
            await wait_for(lambda: _hands(chats[0]) == [uid], timeout=5)
            tab = Chat()
            assert await tab.connect(node_a, "maths", await view_token(Api(node_a, viewer.token), "maths"))
            chats.append(tab)
            await chat.close()
            await asyncio.sleep(0.6)
            assert _hands(chats[0]) == [uid]
            assert (await chats[0].call("hand:lower", {"user_id": uid}))["ok"]
            await wait_for(lambda: tab.got("hand") == [{"raised": False}] and _hands(chats[0]) == [], timeout=5)
            await tab.close()
            await chats[1].close()  # the creator's socket on B: still connected on A
            await wait_for(lambda: _viewers(chats[0]) == 1, timeout=5)
        finally:
            for chat in chats:
                await chat.close()


async def test_a_node_claims_the_rooms_it_broadcasts_and_releases_them_at_the_end(server, settings):
    """The assembly's registry (in process here): a live room is this node's at the next
    heartbeat, and free again as soon as its broadcast ends."""
    base, app = server
    nodes = app[NODES]
    assert [n.id for n in await nodes.nodes()] == [settings.node_id()]
    publisher = Publisher(base)
    try:
        assert await publisher.publish("demo", KEY) == 201
        await wait_for(lambda: app[ROOMS].get("demo").phase == "live", timeout=10)
        await nodes.heartbeat()
        assert await nodes.host_of("demo") == settings.node_id()
        assert (await nodes.nodes())[0].rooms == ["demo"]
        assert await publisher.delete() == 200
        assert await nodes.host_of("demo") is None
    finally:
        await publisher.close()
