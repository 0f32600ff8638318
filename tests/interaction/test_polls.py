"""Polls through real Socket.IO clients against the real app (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import time

from sqlalchemy import select

from interaction.models import Poll, PollVote
from paywall.http import PAYWALL
from tests.support.chat import Chat, free_room_with_chats
from tests.support.waiting import wait_for
from tests.support.paywall_fixtures import Api, paid_room
import pytest

pytestmark = pytest.mark.inprocess

QUESTION = {"question": "Which topic next?", "options": ["Limits", "Series", "Integrals"]}


def error(ack: dict) -> str:
    assert ack["ok"] is False and set(ack["error"]) == {"code", "message"}, ack
    return ack["error"]["code"]


def last_poll(chat: Chat, poll_id: int):
    frames = [p for p in chat.got("poll") if p["id"] == poll_id]
    return frames[-1] if frames else None


async def rows(app, poll_id: int) -> tuple[Poll, list[PollVote]]:
    async with app[PAYWALL].db() as s:
        poll = await s.get(Poll, poll_id)
        votes = (await s.execute(select(PollVote).where(PollVote.poll_id == poll_id))).scalars().all()
    return poll, list(votes)


async def test_poll_open_vote_close_and_results_persisted(paywall_app):
    base, app = paywall_app
    room, creator, c, (alice, bob), (a, b) = await free_room_with_chats(base)
    carol = await Api.sign_up(base)
    try:
        # only moderators open polls; bad polls are refused and nothing is stored
        assert error(await a.call("poll:open", QUESTION)) == "forbidden"
        for payload, code in [
            ("a string", "invalid_payload"),
            ({"question": "", "options": ["a", "b"]}, "invalid_question"),
            ({"question": "   ", "options": ["a", "b"]}, "invalid_question"),
            ({"question": "q" * 201, "options": ["a", "b"]}, "invalid_question"),
            ({"question": 7, "options": ["a", "b"]}, "invalid_question"),
            ({"question": "q", "options": ["only one"]}, "invalid_options"),
            ({"question": "q", "options": [str(i) for i in range(7)]}, "invalid_options"),
            ({"question": "q", "options": ["a", "b" * 81]}, "invalid_options"),
            ({"question": "q", "options": ["a", ""]}, "invalid_options"),
            ({"question": "q", "options": ["a", 2]}, "invalid_options"),
            ({"question": "q", "options": "a,b"}, "invalid_options"),
            ({"question": "q", "options": ["Yes", "yes "]}, "invalid_options"),
        ]:
            assert error(await c.call("poll:open", payload)) == code, payload
        async with app[PAYWALL].db() as s:
            assert (await s.execute(select(Poll))).first() is None

        ack = await c.call("poll:open", QUESTION)
        assert ack["ok"], ack
        poll = ack["poll"]
        pid = poll["id"]
        assert poll["options"] == QUESTION["options"] and poll["counts"] == [0, 0, 0]
        assert poll["open"] is True and poll["total"] == 0 and isinstance(poll["opened_t_ms"], int)
        await wait_for(lambda: last_poll(a, pid) and last_poll(b, pid), timeout=5)
        assert last_poll(b, pid)["question"] == "Which topic next?"

        # votes: once each, with precise refusals
        assert (await a.call("poll:vote", {"id": pid, "option": 1})) == {"ok": True, "id": pid, "option": 1}
        assert error(await a.call("poll:vote", {"id": pid, "option": 2})) == "already_voted"
        assert error(await b.call("poll:vote", {"id": pid, "option": 3})) == "invalid_option"
        assert error(await b.call("poll:vote", {"id": pid, "option": -1})) == "invalid_option"
        assert error(await b.call("poll:vote", {"id": pid, "option": "1"})) == "invalid_option"
        assert error(await b.call("poll:vote", {"id": pid})) == "invalid_option"
        assert error(await b.call("poll:vote", {"id": 999_999, "option": 0})) == "not_found"
        assert error(await b.call("poll:vote", {"id": "x", "option": 0})) == "invalid_payload"
        assert error(await b.call("poll:vote", [pid, 0])) == "invalid_payload"
        assert (await b.call("poll:vote", {"id": pid, "option": 0}))["ok"]
        assert (await c.call("poll:vote", {"id": pid, "option": 1}))["ok"]
        await wait_for(lambda: last_poll(a, pid)["counts"] == [1, 2, 0], timeout=5)
        assert last_poll(a, pid)["total"] == 3

        # a late joiner gets the open poll, with its own vote (none yet)
        d = await room.connect(carol)
        await wait_for(lambda: last_poll(d, pid), timeout=5)
        assert last_poll(d, pid)["counts"] == [1, 2, 0] and last_poll(d, pid)["voted"] is None
        again = await room.connect(alice)  # alice's second tab knows what she voted
        await wait_for(lambda: last_poll(again, pid), timeout=5)
        assert last_poll(again, pid)["voted"] == 1

        # only moderators close; closing stores the results and is final
        assert error(await a.call("poll:close", {"id": pid})) == "forbidden"
        assert error(await c.call("poll:close", {"id": "1"})) == "invalid_payload"
        assert error(await c.call("poll:close", {"id": 999_999})) == "not_found"
        ack = await c.call("poll:close", {"id": pid})
        assert ack["ok"], ack
        assert ack["poll"]["open"] is False and ack["poll"]["counts"] == [1, 2, 0]
        assert isinstance(ack["poll"]["closed_t_ms"], int)
        assert error(await c.call("poll:close", {"id": pid})) == "poll_closed"
        assert error(await d.call("poll:vote", {"id": pid, "option": 0})) == "poll_closed"
        for chat in (a, b, d):
            await wait_for(lambda: last_poll(chat, pid)["open"] is False, timeout=5)
            assert last_poll(chat, pid)["counts"] == [1, 2, 0]

        row, votes = await rows(app, pid)
        assert row.open is False and json.loads(row.results) == [1, 2, 0]
        assert isinstance(row.opened_t_ms, int) and isinstance(row.closed_t_ms, int)
        assert row.closed_t_ms >= row.opened_t_ms
        assert sorted(v.option for v in votes) == [0, 1, 1]

        # a closed poll is not sent to new sockets
        e = await room.connect(carol)
        await asyncio.sleep(0.5)
        assert not e.got("poll")
    finally:
        await room.close()


async def test_double_votes_at_once_and_votes_racing_the_close(paywall_app):
    base, app = paywall_app
    room, creator, c, voters, voter_chats = await free_room_with_chats(base, viewers=6)
    tab2 = await room.connect(voters[0])
    chats = [c, *voter_chats, tab2]
    try:
        pid = (await c.call("poll:open", {"question": "Ready?", "options": ["yes", "no"]}))["poll"]["id"]
        # one user, two tabs, eight votes sent at once: exactly one counts
        acks = await asyncio.gather(*(chat.call("poll:vote", {"id": pid, "option": i % 2})
                                      for i, chat in enumerate([chats[1], tab2] * 4)))
        assert sum(1 for x in acks if x["ok"]) == 1, acks
        assert sorted(error(x) for x in acks if not x["ok"]) == ["already_voted"] * 7
        _, votes = await rows(app, pid)
        assert len(votes) == 1

        # the other voters vote while the creator closes: every acknowledged vote is in
        # the stored results, every refused one is not
        close, *acks = await asyncio.gather(
            c.call("poll:close", {"id": pid}),
            *(chat.call("poll:vote", {"id": pid, "option": 0}) for chat in chats[2:7]))
        assert close["ok"], close
        assert all(x["ok"] or error(x) == "poll_closed" for x in acks), acks
        row, votes = await rows(app, pid)
        assert len(votes) == 1 + sum(1 for x in acks if x["ok"])
        assert sum(json.loads(row.results)) == len(votes) == close["poll"]["total"]
        await wait_for(lambda: last_poll(chats[3], pid) and last_poll(chats[3], pid)["open"] is False, timeout=5)
        assert last_poll(chats[3], pid)["counts"] == json.loads(row.results)
    finally:
        await room.close()


async def test_results_frames_are_throttled_and_polls_stay_in_their_room(paywall_app):
    base, app = paywall_app
    room, creator, c, _, voter_chats = await free_room_with_chats(base, viewers=8)
    await paid_room(creator, slug="physics", ticket_price=0)
    other = await room.connect(creator, "physics")
    chats = [c, other, *voter_chats]
    try:
        elsewhere = (await other.call("poll:open", QUESTION))["poll"]["id"]
        pid = (await c.call("poll:open", QUESTION))["poll"]["id"]
        await wait_for(lambda: last_poll(c, pid), timeout=5)
        # another room's poll cannot be voted on, closed, or seen from here
        assert error(await chats[2].call("poll:vote", {"id": elsewhere, "option": 0})) == "not_found"
        assert error(await c.call("poll:close", {"id": elsewhere})) == "not_found"
        assert last_poll(c, elsewhere) is None

        before = len(c.got("poll"))
        started = time.monotonic()
        acks = await asyncio.gather(*(chat.call("poll:vote", {"id": pid, "option": i % 3})
                                      for i, chat in enumerate(chats[2:])))
        assert all(x["ok"] for x in acks), acks
        await wait_for(lambda: last_poll(c, pid)["total"] == 8, timeout=5)
        elapsed = time.monotonic() - started
        frames = len(c.got("poll")) - before
        # at most one frame per 250 ms (plus the first), however the votes were spread
        assert 1 <= frames <= elapsed / 0.25 + 2, (frames, elapsed)
        assert last_poll(c, pid)["counts"] == [3, 3, 2]
        # at most five open polls per room
        for _ in range(4):
            assert (await c.call("poll:open", QUESTION))["ok"]
        assert error(await c.call("poll:open", QUESTION)) == "too_many_polls"
    finally:
        await room.close()
