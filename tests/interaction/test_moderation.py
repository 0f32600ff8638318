"""Moderation through real Socket.IO clients: delete, mute, ban, slow mode, blocklist,
moderators, audit; and two nodes sharing Redis."""


import pytest

from tests.support.chat import Chat, free_room_with_chats
from tests.support.waiting import wait_for
from tests.support.paywall_fixtures import Api, connected, paid_room, two_nodes_on_redis, view_token

pytestmark = pytest.mark.inprocess

REDIS_DB = 12


@pytest.fixture
async def room_with_people(paywall_app):
    base, app = paywall_app
    room, creator, mod, (alice, bob), (a, b) = await free_room_with_chats(base)
    yield base, app, (creator, alice, bob), [mod, a, b]
    await room.close()


async def test_only_moderators_moderate_and_everything_is_audited(room_with_people):
    base, app, (creator, alice, bob), (c, a, b) = room_with_people
    sent = await a.call("danmaku:send", {"text": "spam spam"})
    assert (await b.call("mod:delete", {"kind": "danmaku", "id": sent["danmaku"]["id"]}))["error"]["code"] == "forbidden"
    assert (await c.call("mod:delete", {"kind": "danmaku", "id": 10**9}))["error"]["code"] == "not_found"
    assert (await c.call("mod:delete", {"kind": "video", "id": 1}))["error"]["code"] == "invalid_payload"
    assert (await c.call("mod:delete", {"kind": "danmaku", "id": sent["danmaku"]["id"]}))["ok"]
    await wait_for(lambda: b.got("deleted"), timeout=3)
    status, body = await bob.get("/api/rooms/maths/danmaku")
    assert body["items"] == []  # gone for everyone, kept in the database and the audit log
    # the creator appoints bob; bob can now moderate
    assert (await c.call("mod:appoint", {"user_id": bob.user["id"]}))["ok"]
    assert (await b.call("mod:slow_mode", {"seconds": 0}))["ok"]  # at once, no reconnect
    await b.close()
    b2 = await connected(base, bob)
    assert (await b2.call("mod:slow_mode", {"seconds": 0}))["ok"]
    assert (await a.call("mod:appoint", {"user_id": alice.user["id"]}))["error"]["code"] == "forbidden"
    audit = await c.call("mod:audit")
    assert [x["action"] for x in audit["actions"]][:4] == ["slow_mode", "slow_mode", "appoint_moderator", "delete_danmaku"]
    assert audit["actions"][3]["target"] == alice.user["id"] and audit["actions"][2]["actor"] == creator.user["id"]
    await b2.close()


async def test_mute_slow_mode_and_blocklist(room_with_people):
    base, app, (creator, alice, bob), (c, a, b) = room_with_people
    assert (await c.call("mod:mute", {"user_id": alice.user["id"], "seconds": 60}))["ok"]
    assert (await c.call("mod:mute", {"user_id": creator.user["id"], "seconds": 60}))["error"]["code"] == "invalid_target"
    assert (await c.call("mod:mute", {"user_id": alice.user["id"], "seconds": "60"}))["error"]["code"] == "invalid_payload"
    refused = await a.call("danmaku:send", {"text": "can I talk?"})
    assert refused["error"]["code"] == "muted"
    assert (await c.call("mod:slow_mode", {"seconds": 30}))["ok"]
    assert (await b.call("danmaku:send", {"text": "one"}))["ok"]
    assert (await b.call("danmaku:send", {"text": "two"}))["error"]["code"] == "slow_mode"
    assert (await c.call("danmaku:send", {"text": "mods are exempt"}))["ok"]
    assert (await c.call("danmaku:send", {"text": "still exempt"}))["ok"]
    assert (await c.call("mod:slow_mode", {"seconds": 0}))["ok"]
    added = await c.call("mod:blocklist", {"add": ["Casino"]})
    assert added["words"] == ["casino"]
    refused = await b.call("danmaku:send", {"text": "visit my CASINO now"})
    assert refused["error"]["code"] == "blocked_word" and "casino" in refused["error"]["message"]
    assert (await c.call("mod:blocklist", {"add": "casino"}))["error"]["code"] == "invalid_payload"
    assert (await c.call("mod:blocklist", {"remove": ["casino"]}))["words"] == []
    assert (await b.call("danmaku:send", {"text": "casino is fine now"}))["ok"]


async def test_ban_disconnects_and_refuses_reconnects(room_with_people):
    base, app, (creator, alice, bob), (c, a, b) = room_with_people
    assert (await c.call("mod:ban", {"user_id": alice.user["id"]}))["ok"]
    await wait_for(lambda: not a.sio.connected, timeout=5)
    assert a.got("kicked")[0]["code"] == "banned"
    again = Chat()
    assert not await again.connect(base, "maths", await view_token(alice, "maths"))
    assert again.refused["data"]["code"] == "banned"
    assert b.sio.connected
    assert (await c.call("mod:unban", {"user_id": alice.user["id"]}))["ok"]
    back = await connected(base, alice)
    await back.close()


@pytest.fixture
async def two_nodes(aiohttp_server, tmp_path):
    async with two_nodes_on_redis(aiohttp_server, tmp_path, REDIS_DB) as nodes:
        yield nodes


@pytest.mark.slow
async def test_danmaku_and_bans_cross_nodes_through_redis(two_nodes):
    node_a, node_b = two_nodes
    creator = await Api.sign_up(node_a, "creator")
    await paid_room(creator, ticket_price=0)
    alice = await Api.sign_up(node_a)
    bob = await Api.sign_up(node_b)
    mod = await connected(node_a, creator)
    on_a = await connected(node_a, alice)
    on_b = await connected(node_b, bob)
    try:
        ack = await on_a.call("danmaku:send", {"text": "hello from A"})
        assert ack["ok"]
        await wait_for(lambda: on_b.danmaku(), timeout=5)
        assert on_b.danmaku()[0]["text"] == "hello from A"
        # a ban issued on A ends bob's connection on B, and B refuses him afterwards
        assert (await mod.call("mod:ban", {"user_id": bob.user["id"]}))["ok"]
        await wait_for(lambda: not on_b.sio.connected, timeout=5)
        again = Chat()
        assert not await again.connect(node_b, "maths", await view_token(bob, "maths"))
        assert again.refused["data"]["code"] == "banned"
    finally:
        for chat in (mod, on_a, on_b):
            await chat.close()


async def test_newcomers_learn_slow_mode_and_reading_the_blocklist_changes_nothing(room_with_people):
    base, app, (creator, alice, bob), (c, a, b) = room_with_people
    assert (await c.call("mod:blocklist", {"add": ["spoiler"]}))["words"] == ["spoiler"]
    before = len((await c.call("mod:audit"))["actions"])
    assert (await c.call("mod:blocklist", {}))["words"] == ["spoiler"]  # a read
    assert len((await c.call("mod:audit"))["actions"]) == before
    assert (await c.call("mod:slow_mode", {"seconds": 20}))["ok"]
    late = await connected(base, await Api.sign_up(base))
    try:
        await wait_for(lambda: late.got("slow_mode"), timeout=3)
        assert late.got("slow_mode") == [{"seconds": 20}]
    finally:
        await late.close()
    assert (await c.call("mod:slow_mode", {"seconds": 0}))["ok"]
    quiet = await connected(base, await Api.sign_up(base))
    try:
        await wait_for(lambda: quiet.got("danmaku:recent"), timeout=3)
        assert quiet.got("slow_mode") == []  # off: nothing to say
    finally:
        await quiet.close()


async def test_moderating_an_unknown_user_is_refused_with_a_precise_code(room_with_people, caplog):
    """mute, ban, unban, appoint and dismiss of a user id nobody has: ``user_not_found``,
    nothing stored or audited, no traceback in the log (it was ``internal_error``)."""
    base, app, (creator, alice, bob), (c, a, b) = room_with_people
    ghost = alice.user["id"] + 10_000
    for event, payload in (("mod:mute", {"user_id": ghost, "seconds": 60}), ("mod:ban", {"user_id": ghost}),
                           ("mod:unban", {"user_id": ghost}), ("mod:appoint", {"user_id": ghost}),
                           ("mod:appoint", {"user_id": ghost, "remove": True})):
        reply = await c.call(event, payload)
        assert reply["ok"] is False and reply["error"]["code"] == "user_not_found", (event, reply)
        assert str(ghost) in reply["error"]["message"]
    assert (await c.call("mod:audit"))["actions"] == []
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records if r.exc_info]
    # known users still work, and a moderator the creator appointed is refused the same way
    assert (await c.call("mod:appoint", {"user_id": bob.user["id"]}))["ok"]
    assert (await b.call("mod:mute", {"user_id": ghost, "seconds": 5}))["error"]["code"] == "user_not_found"
    assert (await b.call("mod:mute", {"user_id": alice.user["id"], "seconds": 5}))["ok"]
