"""Comments under replays and rooms: threads one level deep, the replay's discussion for
its owners, moderation as for danmaku (bans, mutes, blocked words, deletion, audit), rate
limits, reports that hide a comment until a moderator reviews it."""

from __future__ import annotations

import datetime as dt

import pytest

from interaction.assembly import INTERACTION
from interaction.models import BlockedWord, ModerationAction, RoomBan, RoomModerator
from paywall.http import PAYWALL
from sqlalchemy import select
from tests.support.paywall_fixtures import Api, buy

pytestmark = pytest.mark.inprocess


async def thread(api: Api, query: str = "") -> list[dict]:
    status, body = await api.get(f"/api/rooms/maths/comments{query}")
    assert status == 200, body
    return body["comments"]


async def test_threads_access_and_bad_input(shop):
    base, app, creator, rec_id, _ = shop
    visitor, alice, bob = Api(base), await Api.sign_up(base), await Api.sign_up(base)
    assert (await visitor.post("/api/rooms/maths/comments", {"text": "hi"}))[0] == 401
    status, first = await alice.post("/api/rooms/maths/comments", {"text": "  When is the next class?  "})
    assert status == 201 and first["text"] == "When is the next class?"
    status, reply = await creator.post("/api/rooms/maths/comments", {"text": "Friday", "parent": first["id"]})
    assert status == 201
    status, second = await bob.post("/api/rooms/maths/comments", {"text": "<script>x</script>"})
    assert status == 201
    comments = await thread(visitor)
    assert [c["text"] for c in comments] == ["<script>x</script>", "When is the next class?"]  # newest first
    assert [r["text"] for r in comments[1]["replies"]] == ["Friday"]
    assert comments[1]["user"]["id"] == alice.user["id"] and comments[0]["mine"] is False
    for body, status, code in [
        ({"text": ""}, 400, "invalid_comment"),
        ({"text": "x" * 1001}, 400, "invalid_comment"),
        ({"text": 5}, 400, "invalid_comment"),
        ({"text": "deeper", "parent": reply["id"]}, 400, "invalid_parent"),
        ({"text": "elsewhere", "parent": 999999}, 400, "invalid_parent"),
        ({"text": "x", "parent": "1"}, 400, "invalid_parent"),
        ({"text": "x", "recording": "../etc"}, 400, "invalid_comment"),
        ({"text": "x", "stars": 5}, 400, "invalid_comment"),
        # the replay's discussion: for those who have the replay
        ({"text": "great class", "recording": rec_id}, 403, "replay_required"),
    ]:
        got, resp = await bob.post("/api/rooms/maths/comments", body)
        assert (got, resp["error"]["code"]) == (status, code), body
    assert (await bob.post("/api/rooms/nope/comments", {"text": "x"}))[0] == 404
    # a reply to a comment of the room's discussion does not belong to a replay's
    got, resp = await creator.post("/api/rooms/maths/comments", {"text": "x", "recording": rec_id,
                                                                  "parent": first["id"]})
    assert (got, resp["error"]["code"]) == (400, "invalid_parent")
    await buy(bob, "maths", "replay")
    status, under_replay = await bob.post("/api/rooms/maths/comments", {"text": "great class", "recording": rec_id})
    assert status == 201
    assert [c["text"] for c in await thread(visitor, f"?recording={rec_id}")] == ["great class"]
    assert len(await thread(visitor)) == 2  # the room's discussion is separate
    # deleting: the author, or a moderator; a deleted comment with replies stays as a placeholder
    assert (await bob.call("DELETE", f"/api/comments/{first['id']}"))[0] == 403
    assert (await alice.call("DELETE", f"/api/comments/{first['id']}"))[0] == 200
    comments = await thread(visitor)
    assert comments[1]["deleted"] and comments[1]["text"] == "" and comments[1]["user"] is None
    assert [r["text"] for r in comments[1]["replies"]] == ["Friday"]
    assert (await creator.call("DELETE", f"/api/comments/{second['id']}"))[0] == 200
    assert [c["id"] for c in await thread(visitor)] == [first["id"]]
    async with app[INTERACTION].server.db() as s:
        actions = (await s.execute(select(ModerationAction.action, ModerationAction.target_user_id))).all()
    assert actions == [("delete_comment", bob.user["id"])]  # alice deleting her own is no moderation
    assert (await bob.call("DELETE", "/api/comments/abc"))[0] == 404


async def test_moderation_rate_limit_and_reports(shop):
    base, app, creator, rec_id, _ = shop
    visitor = Api(base)
    alice, bob, carol, dave, mod = [await Api.sign_up(base) for _ in range(5)]
    room = await app[PAYWALL].catalog.get("maths")
    async with app[INTERACTION].server.db() as s:
        s.add(RoomBan(room_id=room.id, user_id=dave.user["id"], kind="ban"))
        s.add(RoomBan(room_id=room.id, user_id=carol.user["id"], kind="mute",
                      until=dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=5)))
        s.add(BlockedWord(room_id=room.id, word="casino"))
        s.add(RoomModerator(room_id=room.id, user_id=mod.user["id"]))
        await s.commit()
    for api, text, status, code in [(dave, "hello", 403, "banned"), (carol, "hello", 403, "muted"),
                                    (alice, "Best CASINO here", 400, "blocked_word")]:
        got, resp = await api.post("/api/rooms/maths/comments", {"text": text})
        assert (got, resp["error"]["code"]) == (status, code)
    # 3 at once, then one every 5 s
    for n in range(3):
        assert (await alice.post("/api/rooms/maths/comments", {"text": f"comment {n}"}))[0] == 201
    got, resp = await alice.post("/api/rooms/maths/comments", {"text": "one more"})
    assert (got, resp["error"]["code"]) == (429, "rate_limited")
    target = (await thread(visitor))[0]
    # reports: once per user, not one's own; hidden at the third
    assert (await alice.post(f"/api/comments/{target['id']}/report", {}))[1]["error"]["code"] == "invalid_report"
    got, resp = await bob.post(f"/api/comments/{target['id']}/report", {"reason": "spam"})
    assert got == 201 and resp["hidden"] is False
    got, resp = await bob.post(f"/api/comments/{target['id']}/report", {"reason": "spam"})
    assert (got, resp["error"]["code"]) == (409, "already_reported")
    assert (await bob.post(f"/api/comments/{target['id']}/report", {"reason": "x" * 201}))[0] == 400
    assert (await visitor.post(f"/api/comments/{target['id']}/report", {}))[0] == 401
    assert (await carol.post(f"/api/comments/{target['id']}/report", {}))[0] == 201
    assert [c["reported"] for c in await thread(bob) if c["id"] == target["id"]] == [True]
    got, resp = await dave.post(f"/api/comments/{target['id']}/report", {})
    assert got == 201 and resp["hidden"] is True
    assert target["id"] not in [c["id"] for c in await thread(visitor)]
    # moderators (appointed, creator) still see it, with its reports, and review it
    seen = {c["id"]: c for c in await thread(mod)}
    assert seen[target["id"]]["hidden"] is True and seen[target["id"]]["reports"] == 3
    assert (await bob.post(f"/api/comments/{target['id']}/review", {"action": "keep"}))[0] == 403
    got, resp = await mod.post(f"/api/comments/{target['id']}/review", {"action": "ban"})
    assert (got, resp["error"]["code"]) == (400, "invalid_review")
    assert (await mod.post(f"/api/comments/{target['id']}/review", {"action": "keep"}))[0] == 200
    assert target["id"] in [c["id"] for c in await thread(visitor)]
    other = (await thread(visitor))[1]
    assert (await creator.post(f"/api/comments/{other['id']}/review", {"action": "delete"}))[0] == 200
    assert other["id"] not in [c["id"] for c in await thread(visitor)]
    async with app[INTERACTION].server.db() as s:
        actions = [a for (a,) in (await s.execute(select(ModerationAction.action).order_by(ModerationAction.id)))]
    assert actions == ["keep_comment", "delete_comment"]
