"""Polls: the creator and moderators ask, viewers vote once, results update live.

``poll:open {question, options}`` (moderators) stores a ``Poll`` stamped with the media
clock (``opened_t_ms``). ``poll:vote {id, option}`` stores a ``PollVote``; its primary
key (poll_id, user_id) is what makes a second vote impossible, even two sent at once
from two tabs or two nodes. ``poll:close {id}`` (moderators) closes it, stamps
``closed_t_ms`` and stores the final counts in ``Poll.results`` (JSON list).

The room gets ``poll {id, question, options, counts, total, open, opened_t_ms,
closed_t_ms, broadcast}`` when a poll opens, while votes arrive (at most one frame per
poll every ``interval``, 250 ms, however many votes) and when it closes. The counts are
read from the database for every frame, so they are right on every node and after a
restart. A frame with ``open: false`` is final. A joining socket gets each open poll of
the room, with ``voted`` (its user's option, or null).

Votes and closing do not race: a vote holds a share lock on the poll row (PostgreSQL)
and inserts only while the poll is open (``INSERT ... SELECT ... WHERE EXISTS``, which
SQLite runs under its single writer lock); closing updates the row, then counts in the
same transaction. A vote that was acknowledged is in the results; a refused one is not.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Optional, Sequence

from sqlalchemy import Integer, exists, func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from paywall.db import Database

from core.access import Refusal

from .models import Poll, PollVote
from .ratelimit import UserBuckets
from .throttle import Throttle
from .server import Client, InteractionServer

__all__ = ["PollService"]

log = logging.getLogger("stagepass.interaction")

MAX_QUESTION = 200
MAX_OPTION = 80
MIN_OPTIONS, MAX_OPTIONS = 2, 6


def _validate_open(data: Any) -> tuple[str, list[str]]:
    if not isinstance(data, dict):
        raise Refusal(400, "invalid_payload", "send {question, options}")
    question, options = data.get("question"), data.get("options")
    if not isinstance(question, str) or not 1 <= len(question.strip()) <= MAX_QUESTION:
        raise Refusal(400, "invalid_question", f"question: 1 to {MAX_QUESTION} characters")
    if (not isinstance(options, list) or not MIN_OPTIONS <= len(options) <= MAX_OPTIONS
            or not all(isinstance(o, str) and 1 <= len(o.strip()) <= MAX_OPTION for o in options)):
        raise Refusal(400, "invalid_options",
                         f"options: {MIN_OPTIONS} to {MAX_OPTIONS} texts of 1 to {MAX_OPTION} characters")
    options = [o.strip() for o in options]
    if len({o.casefold() for o in options}) != len(options):
        raise Refusal(400, "invalid_options", "options: each option only once")
    return question.strip(), options


def _poll_id(data: Any) -> int:
    value = data.get("id") if isinstance(data, dict) else None
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 2**62:
        raise Refusal(400, "invalid_payload", "id: the poll's id")
    return value


def _payload(poll: Poll, counts: Sequence[int]) -> dict:
    return {
        "id": poll.id, "question": poll.question, "options": json.loads(poll.options),
        "counts": list(counts), "total": sum(counts), "open": poll.open,
        "opened_t_ms": poll.opened_t_ms, "closed_t_ms": poll.closed_t_ms, "broadcast": poll.broadcast,
    }


class PollService:
    def __init__(self, server: InteractionServer, interval: float = 0.25, max_open: int = 5,
                 vote_rate: float = 5.0, vote_burst: int = 10) -> None:
        self.server = server
        self.max_open = max_open
        self.buckets = UserBuckets(vote_rate, vote_burst)  # attempts, so refusals cost little
        self.throttle = Throttle(self._flush, server.tasks, interval, "poll")
        server.on("poll:open", self.open, moderator=True)
        server.on("poll:close", self.close, moderator=True)
        server.on("poll:vote", self.vote)
        server.on_connect(self._send_open)
        server.on_disconnect(self._left)

    @property
    def db(self) -> Database:
        return self.server.db

    # ------------------------------------------------------------ events
    async def open(self, client: Client, data: Any) -> dict:
        question, options = _validate_open(data)
        broadcast, t_ms = self.server.t_ms(client.room)
        async with self.db() as s:
            already = (await s.execute(select(func.count()).select_from(Poll).where(
                Poll.room_id == client.room_id, Poll.open.is_(True)))).scalar_one()
            if already >= self.max_open:
                raise Refusal(409, "too_many_polls", f"at most {self.max_open} open polls; close one first")
            poll = Poll(room_id=client.room_id, broadcast=broadcast, question=question,
                        options=json.dumps(options), open=True, opened_t_ms=t_ms)
            s.add(poll)
            await s.commit()
        self.throttle.mark((client.room, poll.id))
        return {"poll": _payload(poll, [0] * len(options))}

    async def vote(self, client: Client, data: Any) -> dict:
        poll_id = _poll_id(data)
        option = data.get("option")
        if not isinstance(option, int) or isinstance(option, bool) or not 0 <= option < MAX_OPTIONS:
            raise Refusal(400, "invalid_option", "option: the index of an option")
        if not self.buckets.take(client):
            raise Refusal(429, "rate_limited", "too many votes; slow down")
        async with self.db() as s:
            # the share lock keeps the poll open until this vote is committed (PostgreSQL;
            # SQLite ignores it and relies on the conditional insert below)
            poll = (await s.execute(select(Poll).where(Poll.id == poll_id)
                                    .with_for_update(read=True))).scalar_one_or_none()
            if poll is None or poll.room_id != client.room_id:
                raise Refusal(404, "not_found", f"no poll {poll_id} in this room")
            if not poll.open:
                raise Refusal(409, "poll_closed", "this poll is closed")
            if option >= len(json.loads(poll.options)):
                raise Refusal(400, "invalid_option", "option: the index of an option")
            still_open = exists().where(Poll.id == poll_id, Poll.open.is_(True))
            row = select(literal(poll_id, Integer), literal(client.user_id, Integer),
                         literal(option, Integer)).where(still_open)
            try:
                result = await s.execute(insert(PollVote).from_select(["poll_id", "user_id", "option"], row))
                await s.commit()
            except IntegrityError:
                await s.rollback()
                raise Refusal(409, "already_voted", "you already voted in this poll") from None
        if result.rowcount == 0:
            raise Refusal(409, "poll_closed", "this poll is closed")
        self.throttle.mark((client.room, poll_id))
        return {"id": poll_id, "option": option}

    async def close(self, client: Client, data: Any) -> dict:
        poll_id = _poll_id(data)
        _, t_ms = self.server.t_ms(client.room)
        async with self.db() as s:
            poll = await s.get(Poll, poll_id)
            if poll is None or poll.room_id != client.room_id:
                raise Refusal(404, "not_found", f"no poll {poll_id} in this room")
            closed = await s.execute(update(Poll).where(Poll.id == poll_id, Poll.open.is_(True))
                                     .values(open=False, closed_t_ms=t_ms)
                                     .execution_options(synchronize_session=False))
            if closed.rowcount == 0:
                raise Refusal(409, "poll_closed", "this poll is already closed")
            counts = await self._counts(s, poll_id, len(json.loads(poll.options)))
            await s.execute(update(Poll).where(Poll.id == poll_id).values(results=json.dumps(counts))
                            .execution_options(synchronize_session=False))
            await s.commit()
        poll.open, poll.closed_t_ms = False, t_ms
        self.throttle.mark((client.room, poll_id))
        return {"poll": _payload(poll, counts)}

    # ------------------------------------------------------------ reading
    @staticmethod
    async def _counts(s: AsyncSession, poll_id: int, n: int) -> list[int]:
        counts = [0] * n
        rows = await s.execute(select(PollVote.option, func.count()).where(PollVote.poll_id == poll_id)
                               .group_by(PollVote.option))
        for option, count in rows:
            if 0 <= option < n:
                counts[option] = count
        return counts

    async def poll(self, poll_id: int) -> Optional[dict]:
        """The poll as broadcast: live counts while open, the stored results once closed."""
        async with self.db() as s:
            poll = await s.get(Poll, poll_id)
            if poll is None:
                return None
            n = len(json.loads(poll.options))
            if not poll.open and poll.results is not None:
                counts = json.loads(poll.results)
            else:
                counts = await self._counts(s, poll_id, n)
        return _payload(poll, counts)

    async def of_broadcast(self, room_id: int, broadcast: str) -> list[dict]:
        """Polls opened during a broadcast, in ``opened_t_ms`` order (replay chapters)."""
        async with self.db() as s:
            polls = (await s.execute(select(Poll).where(Poll.room_id == room_id, Poll.broadcast == broadcast)
                                     .order_by(Poll.opened_t_ms, Poll.id))).scalars().all()
            out = []
            for poll in polls:
                n = len(json.loads(poll.options))
                counts = json.loads(poll.results) if poll.results is not None else await self._counts(s, poll.id, n)
                out.append(_payload(poll, counts))
        return out

    async def _flush(self, key: tuple[str, int]) -> None:
        room, poll_id = key
        payload = await self.poll(poll_id)
        if payload is not None:
            await self.server.emit_room(room, "poll", payload)

    async def _send_open(self, client: Client) -> None:
        try:
            async with self.db() as s:
                polls = (await s.execute(select(Poll).where(Poll.room_id == client.room_id, Poll.open.is_(True))
                                         .order_by(Poll.id))).scalars().all()
                if not polls:
                    return
                ids = [p.id for p in polls]
                counts = {p.id: [0] * len(json.loads(p.options)) for p in polls}
                for poll_id, option, count in await s.execute(
                        select(PollVote.poll_id, PollVote.option, func.count())
                        .where(PollVote.poll_id.in_(ids)).group_by(PollVote.poll_id, PollVote.option)):
                    if 0 <= option < len(counts[poll_id]):
                        counts[poll_id][option] = count
                mine = dict((await s.execute(select(PollVote.poll_id, PollVote.option).where(
                    PollVote.poll_id.in_(ids), PollVote.user_id == client.user_id))).all())
        except Exception:  # never refuse a connection over this
            log.exception("listing the open polls of %s", client.room)
            return
        for poll in polls:
            await self.server.sio.emit("poll", {**_payload(poll, counts[poll.id]), "voted": mine.get(poll.id)},
                                       to=client.sid)

    async def _left(self, client: Client) -> None:
        self.buckets.forget(client)
