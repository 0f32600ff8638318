"""Likes, raised hands and presence through real Socket.IO clients against the real app.

Timing is asserted as counts over generous windows ("at most one frame per interval,
plus the first"), never as latencies: the test machines are small and busy.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from interaction.ratelimit import UserBuckets
from interaction.throttle import Throttle
from interaction.server import Client
from core.tasks import TaskOwner
from tests.support.chat import Chat, free_room_with_chats
from tests.support.waiting import wait_for
from tests.support.paywall_fixtures import Api, connected, paid_room, two_nodes_on_redis, view_token

pytestmark = pytest.mark.inprocess

REDIS_DB = 13  # this file's own Redis database number


def error(ack: dict) -> str:
    assert ack["ok"] is False and set(ack["error"]) == {"code", "message"}, ack
    return ack["error"]["code"]


async def close_all(chats) -> None:
    for chat in chats:
        await chat.close()


# ---------------------------------------------------------------- likes
async def test_likes_are_aggregated_into_a_few_frames(paywall_app):
    base, app = paywall_app
    room, creator, c, (alice, bob), (a, b) = await free_room_with_chats(base)
    try:
        started = time.monotonic()
        acks = await asyncio.gather(*(chat.call("like", {"count": 1}) for chat in [a, b] * 45))
        assert all(x["ok"] for x in acks), [x for x in acks if not x["ok"]][:3]
        assert max(x["total"] for x in acks) == 90
        await wait_for(lambda: c.got("likes") and c.got("likes")[-1]["total"] == 90, timeout=5)
        elapsed = time.monotonic() - started
        frames = c.got("likes")
        # 90 likes, a handful of frames: at most one per 250 ms plus the first
        assert len(frames) <= elapsed / 0.25 + 2 and len(frames) < 30, (len(frames), elapsed)
        assert sum(f["recent"] for f in frames) == 90
        assert [f["total"] for f in frames] == sorted(f["total"] for f in frames)
        await wait_for(lambda: a.got("likes") and a.got("likes")[-1]["total"] == 90, timeout=5)
        # a late joiner gets the total
        d = await room.connect(await Api.sign_up(base))
        await wait_for(lambda: d.got("likes"), timeout=5)
        assert d.got("likes")[0] == {"total": 90, "recent": 0}
        await d.close()
    finally:
        await room.close()


async def test_bad_likes_are_refused_and_each_user_is_rate_limited(paywall_app):
    base, app = paywall_app
    room, creator, c, (alice, bob), (a, b) = await free_room_with_chats(base)
    try:
        for payload, code in [
            ({"count": 0}, "invalid_count"), ({"count": 51}, "invalid_count"), ({"count": -3}, "invalid_count"),
            ({"count": "5"}, "invalid_count"), ({"count": 2.5}, "invalid_count"), ({"count": True}, "invalid_count"),
            ({}, "invalid_count"), (None, "invalid_payload"), ([5], "invalid_payload"), ("5", "invalid_payload"),
            ({"count": 10**12}, "invalid_count"),
        ]:
            assert error(await a.call("like", payload)) == code, payload
        await asyncio.sleep(0.6)
        assert not c.got("likes")  # nothing was counted
        # 50 likes a second per user: a full event passes, the next one at once does not,
        # and refused likes count nothing; other users are not affected
        assert (await a.call("like", {"count": 50}))["ok"]
        assert error(await a.call("like", {"count": 50})) == "rate_limited"
        a2 = await room.connect(alice)  # a second tab shares the limit
        assert error(await a2.call("like", {"count": 50})) == "rate_limited"
        await a2.close()
        assert (await b.call("like", {"count": 7}))["ok"]
        await wait_for(lambda: c.got("likes") and c.got("likes")[-1]["total"] == 57, timeout=5)
        await asyncio.sleep(1.2)  # the bucket refills
        assert (await a.call("like", {"count": 50}))["total"] == 107
        await wait_for(lambda: c.got("likes")[-1]["total"] == 107, timeout=5)
    finally:
        await room.close()


# ---------------------------------------------------------------- hands
def queue(chat: Chat) -> list[int]:
    return [item["user"]["id"] for item in chat.got("hands")[-1]["items"]]


async def test_hand_queue_is_for_moderators_and_disconnect_lowers_the_hand(paywall_app):
    base, app = paywall_app
    room, creator, c, (alice, bob), (a, b) = await free_room_with_chats(base)
    carol = await Api.sign_up(base)
    try:
        await wait_for(lambda: c.got("hands"), timeout=5)  # the (empty) queue on connect
        assert c.got("hands")[0] == {"items": []}
        assert error(await a.call("hand:raise", {"x": 1})) == "invalid_payload"
        assert error(await a.call("hand:raise", "up")) == "invalid_payload"
        assert (await a.call("hand:raise")) == {"ok": True, "raised": True}
        assert (await b.call("hand:raise", {})) == {"ok": True, "raised": True}
        assert (await a.call("hand:raise")) == {"ok": True, "raised": True}  # keeps her place
        await wait_for(lambda: queue(c) == [alice.user["id"], bob.user["id"]], timeout=5)
        item = c.got("hands")[-1]["items"][0]
        assert item["user"] == {"id": alice.user["id"], "name": "Viewer"}
        assert isinstance(item["raised_at"], str) and isinstance(item["t_ms"], int)
        # viewers get acks only
        assert error(await b.call("hand:lower", {"user_id": alice.user["id"]})) == "forbidden"
        assert error(await b.call("hand:lower", {"user_id": "me"})) == "invalid_payload"
        assert error(await b.call("hand:lower", {"user_id": 1, "x": 2})) == "invalid_payload"
        # a moderator joining later gets the queue
        c2 = await room.connect(creator)
        await wait_for(lambda: c2.got("hands"), timeout=5)
        assert queue(c2) == [alice.user["id"], bob.user["id"]]
        # disconnecting lowers the hand (not while another tab is still here)
        a2 = await room.connect(alice)
        await a2.close()
        await asyncio.sleep(0.6)
        assert queue(c) == [alice.user["id"], bob.user["id"]]
        await a.close()
        await wait_for(lambda: queue(c) == [bob.user["id"]], timeout=5)
        # the viewer lowers their own hand; a moderator lowers someone else's
        d = await room.connect(carol)
        assert (await d.call("hand:raise"))["ok"]
        await wait_for(lambda: queue(c) == [bob.user["id"], carol.user["id"]], timeout=5)
        assert (await d.call("hand:lower")) == {"ok": True, "raised": False}
        assert (await d.call("hand:lower", {})) == {"ok": True, "raised": False}
        await wait_for(lambda: queue(c) == [bob.user["id"]], timeout=5)
        ack = await c.call("hand:lower", {"user_id": bob.user["id"]})
        assert ack == {"ok": True, "user_id": bob.user["id"], "raised": False}
        await wait_for(lambda: b.got("hand") == [{"raised": False}], timeout=5)
        await wait_for(lambda: queue(c) == [] and queue(c2) == [], timeout=5)
        for viewer in (b, d):
            assert not viewer.got("hands")
    finally:
        await room.close()


# ---------------------------------------------------------------- presence
def viewers(chat: Chat):
    frames = chat.got("presence")
    return frames[-1]["viewers"] if frames else None


async def test_presence_counts_distinct_users_at_most_once_a_second(paywall_app):
    base, app = paywall_app
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator, ticket_price=0)
    people = [await Api.sign_up(base) for _ in range(5)]
    tokens = [await view_token(p, "maths") for p in people]
    c = await connected(base, creator)
    chats = [c]
    try:
        await wait_for(lambda: viewers(c) == 1, timeout=5)
        before = len(c.got("presence"))
        started = time.monotonic()
        chats += await asyncio.gather(*(connected(base, p, token=t) for p, t in zip(people, tokens)))
        await wait_for(lambda: viewers(c) == 6, timeout=5)
        elapsed = time.monotonic() - started
        frames = len(c.got("presence")) - before
        assert 1 <= frames <= elapsed / 1.0 + 2, (frames, elapsed)
        # a second tab does not change the count: only that tab is told
        await asyncio.sleep(1.1)
        before = len(c.got("presence"))
        tab = await connected(base, people[0])
        await wait_for(lambda: viewers(tab) == 6, timeout=5)
        await tab.close()
        await asyncio.sleep(1.2)
        assert len(c.got("presence")) == before
        # people leaving
        await chats[1].close()
        await chats[2].close()
        await wait_for(lambda: viewers(c) == 4, timeout=5)
        assert viewers(chats[3]) == 4
    finally:
        await close_all(chats)


# ---------------------------------------------------------------- helpers, without a server
async def test_throttle_coalesces_and_always_flushes_the_last_change():
    import logging

    tasks = TaskOwner(logging.getLogger("test"))
    state = {"version": 0}
    seen: list[int] = []

    async def flush(key):  # reads the state, then takes a while to send it
        seen.append(state["version"])
        await asyncio.sleep(0.01)

    throttle = Throttle(flush, tasks, 0.1, "test")
    started = time.monotonic()
    for _ in range(100):
        state["version"] += 1
        throttle.mark("room")
        await asyncio.sleep(0.005)
    elapsed = time.monotonic() - started
    await wait_for(lambda: seen and seen[-1] == 100, timeout=5)
    assert 2 <= len(seen) <= elapsed / 0.1 + 2, (len(seen), elapsed)
    assert seen[0] == 1  # the first change goes out at once
    await asyncio.sleep(0.3)
    assert "room" not in throttle._running  # the loop ended when things went quiet
    await tasks.close()
    throttle.mark("room")  # after close: nothing runs, nothing is left waiting
    assert "room" not in throttle._running


def test_user_buckets_take_many_and_forget_only_full_buckets():
    buckets = UserBuckets(rate=50, burst=50)
    alice = Client(sid="s1", user_id=1, name="A", room="r", room_id=1, creator_id=9, moderator=False)
    assert buckets.take(alice, 50) and not buckets.take(alice, 1)
    buckets.forget(alice)
    assert len(buckets) == 1 and not buckets.take(alice, 50)  # not full: remembered
    bob = Client(sid="s2", user_id=2, name="B", room="r", room_id=1, creator_id=9, moderator=False)
    assert buckets.take(bob, 1)
    buckets._buckets[("r", 2)].tokens = 50
    buckets.forget(bob)
    assert len(buckets) == 1


# ---------------------------------------------------------------- two nodes
@pytest.fixture
async def two_nodes(aiohttp_server, tmp_path):
    async with two_nodes_on_redis(aiohttp_server, tmp_path, REDIS_DB) as nodes:
        yield nodes


@pytest.mark.slow
async def test_like_totals_are_shared_across_nodes_with_redis(two_nodes):
    node_a, node_b = two_nodes
    creator = await Api.sign_up(node_a, "creator")
    await paid_room(creator, ticket_price=0)
    alice, bob = await Api.sign_up(node_a), await Api.sign_up(node_b)
    on_a, on_b = await connected(node_a, alice), await connected(node_b, bob)
    try:
        assert (await on_a.call("like", {"count": 10}))["total"] == 10
        assert (await on_b.call("like", {"count": 5}))["total"] == 15
        for chat in (on_a, on_b):
            await wait_for(lambda: any(f["total"] == 15 for f in chat.got("likes")), timeout=5)
        late = await connected(node_a, await Api.sign_up(node_a))
        await wait_for(lambda: late.got("likes"), timeout=5)
        assert late.got("likes")[0]["total"] == 15
        await late.close()
    finally:
        await close_all([on_a, on_b])
