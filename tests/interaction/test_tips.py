"""Tips: announced once to the room, pinned longer for bigger tips."""

import secrets

import pytest
import redis.asyncio as aioredis

from core.cluster import LocalCluster, RedisCluster
from interaction.server import InteractionServer
from interaction.tips import TipService, pin_seconds
from tests.support.waiting import wait_for
from tests.support.chat import free_room_with_chats, refusal_code
from tests.support.paywall_fixtures import buy, paid_room

pytestmark = pytest.mark.inprocess

REDIS_URL = "redis://127.0.0.1:6379/8"  # this file's own database number (test_room_signals has 13)


def test_pin_seconds_grow_with_the_amount():
    assert [pin_seconds(a) for a in (1, 199, 200, 499, 500, 999, 1000, 4999, 5000, 9999, 10000, 10**8)] == [
        0, 0, 30, 30, 60, 60, 300, 300, 900, 900, 3600, 3600]
    values = [pin_seconds(a) for a in range(1, 20001, 7)]
    assert values == sorted(values)


async def test_tips_are_announced_once_with_their_pin_time(paywall_app):
    base, app = paywall_app
    room, creator, mod, (alice, bob), (a, b) = await free_room_with_chats(base)
    await paid_room(creator, slug="physics", ticket_price=0)
    try:
        order = await buy(alice, "maths", product="tip", amount=1000, message="thanks! <b>great</b> class")
        ack = await a.call("tip:announce", {"order_id": order["id"]})
        assert ack["ok"], ack
        tip = ack["tip"]
        assert tip == {"user": {"id": alice.user["id"], "name": "Viewer"}, "amount": 1000, "currency": "USD",
                       "message": "thanks! <b>great</b> class", "message_hidden": False, "pin_seconds": 300,
                       "broadcast": "", "t_ms": 0}
        await wait_for(lambda: b.got("tip"), timeout=3)
        assert b.got("tip") == [tip] and mod.got("tip") == [tip]

        assert refusal_code(await a.call("tip:announce", {"order_id": order["id"]})) == "already_announced"
        assert refusal_code(await b.call("tip:announce", {"order_id": order["id"]})) == "order_not_found"
        for payload in (None, "x", {}, {"order_id": 5}, {"order_id": ""}, {"order_id": "x" * 33}):
            assert refusal_code(await a.call("tip:announce", payload)) == "invalid_payload", payload
        assert refusal_code(await a.call("tip:announce", {"order_id": "0" * 24})) == "order_not_found"
        question = await buy(alice, "maths", product="question", amount=500)
        assert refusal_code(await a.call("tip:announce", {"order_id": question["id"]})) == "wrong_product"
        status, pending = await alice.post("/api/orders", {"room": "maths", "product": "tip", "amount": 500,
                                                           "idempotency_key": secrets.token_hex(8)})
        assert status == 201
        assert refusal_code(await a.call("tip:announce", {"order_id": pending["order"]["id"]})) == "order_not_paid"
        elsewhere = await buy(alice, "physics", product="tip", amount=500)
        assert refusal_code(await a.call("tip:announce", {"order_id": elsewhere["id"]})) == "order_not_found"

        # a small tip is not pinned; a blocked word hides the message, not the tip
        assert (await mod.call("mod:blocklist", {"add": ["spoiler"]}))["ok"]
        small = await buy(bob, "maths", product="tip", amount=150, message="SPOILER: it ends well")
        ack = await b.call("tip:announce", {"order_id": small["id"]})
        assert ack["ok"] and ack["tip"]["pin_seconds"] == 0
        assert ack["tip"]["message"] == "" and ack["tip"]["message_hidden"] is True
        await wait_for(lambda: len(a.got("tip")) == 2, timeout=3)
        assert len(b.got("tip")) == 2  # nothing else was broadcast
    finally:
        await room.close()


async def test_with_redis_a_tip_is_announced_once_across_nodes_and_restarts():
    r = aioredis.from_url(REDIS_URL)
    try:
        await r.ping()
    except OSError as exc:  # pragma: no cover - the machines run Redis
        pytest.fail(f"Redis at {REDIS_URL} is not reachable: {exc}")
    order_id = secrets.token_hex(12)
    try:
        node_a, node_b = RedisCluster.from_url(REDIS_URL), RedisCluster.from_url(REDIS_URL)
        first, restarted = TipService(InteractionServer(), node_a), TipService(InteractionServer(), node_b)
        assert await first._claim(order_id)
        assert not await first._claim(order_id)
        assert not await restarted._claim(order_id)  # another node, or this one after a restart
        assert 0 < await r.ttl(f"stagepass:tip-announced:{order_id}") <= 90 * 86400
        assert await TipService(InteractionServer(), LocalCluster())._claim(order_id)  # one process only
        await node_a.close()
        await node_b.close()
    finally:
        await r.delete(f"stagepass:tip-announced:{order_id}")
        await r.aclose()
