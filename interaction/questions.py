"""Q&A: viewers ask, upvote and withdraw questions; the creator and moderators answer,
pin and dismiss them.

* A question is 1..``max_chars`` characters (surrounding blanks trimmed). It goes through
  ``Moderation.check_post`` (mute, blocklist, slow mode) like a danmaku. A viewer may have
  at most ``max_open_per_user`` free questions open in a room at once.
* Paid questions: ``order_id`` of a PAID paywall order of product ``question``, bought by
  the asker for this room and not used by another question. Its ``amount`` becomes
  ``paid_amount``; paid questions sort above free ones. A paid question cannot be
  withdrawn; if it is dismissed, or still open when a broadcast ends, its order is refunded
  through the paywall's refund path (provider refund, then ``OrderBook.mark_refunded``,
  which reverses the ledger legs) and its status becomes ``refunded``
  (``refund_unanswered=False`` turns this off).
* The queue: open questions of the room, ``paid_amount`` desc, ``votes`` desc, oldest first.
* ``t_ms`` (asked) and ``answered_t_ms`` are on the media clock of ``broadcast``, so a
  replay can show answered questions as chapter markers (``chapters``). A question asked
  before the broadcast in which it is answered is moved to that broadcast with ``t_ms`` 0
  ("asked before the start"); one answered while nothing is live has no ``answered_t_ms``.

Every change is broadcast to the room as ``question`` with the whole question (status
included: ``withdrawn``, ``dismissed``, ``refunded``... tell pages to take it off the queue).
A client joining gets the queue as ``questions {items}``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Optional

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from mediaserver.live.room import Broadcast, Room as MediaRoom
from paywall.db import Database
from paywall.accounts import public_names
from paywall.catalog import lock_room
from paywall.order_facts import paid_order
from core.access import Refusal
from core.timeutil import as_utc

from .models import Question, QuestionVote
from .moderation import Moderation
from .server import Client, InteractionServer

__all__ = ["QuestionService"]

log = logging.getLogger("stagepass.questions")

MAX_ID = 2**31 - 1  # questions.id is a 32-bit integer column
QUEUE_ORDER = (Question.paid_amount.desc(), Question.votes.desc(), Question.created_at, Question.id)


def _item(q: Question, name: str) -> dict:
    return {
        "id": q.id, "text": q.text, "user": {"id": q.user_id, "name": name}, "status": q.status,
        "votes": q.votes, "pinned": q.pinned, "paid": q.paid_amount > 0, "paid_amount": q.paid_amount,
        "currency": q.currency, "broadcast": q.broadcast, "t_ms": q.t_ms, "answered_t_ms": q.answered_t_ms,
        "asked_at": as_utc(q.created_at).isoformat(timespec="milliseconds"),
    }


def _question_id(data: Any) -> int:
    value = data.get("id") if isinstance(data, dict) else None
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_ID:
        raise Refusal(400, "invalid_payload", "send {id} with a question id")
    return value


class QuestionService:
    def __init__(self, server: InteractionServer, moderation: Moderation, max_chars: int = 500,
                 max_open_per_user: int = 5, refund_unanswered: bool = True) -> None:
        self.server = server
        self.moderation = moderation
        self.max_chars = max_chars
        self.max_open_per_user = max_open_per_user
        self.refund_unanswered = refund_unanswered
        # check-then-write sections (an order used once, one pin per room) are serialised on
        # this node; on PostgreSQL a row lock (FOR UPDATE) serialises them across nodes too
        self._paid_lock = asyncio.Lock()
        self._pin_locks: dict[int, asyncio.Lock] = {}
        on = server.on
        on("question:ask", self.ask)
        on("question:vote", self.vote)
        on("question:withdraw", self.withdraw)
        on("question:list", self.list_queue)
        on("question:answer", self.answer, moderator=True)
        on("question:pin", self.pin, moderator=True)
        on("question:dismiss", self.dismiss, moderator=True)
        server.on_connect(self._send_queue)

    def attach(self, rooms: Any) -> None:
        """Listen to broadcast ends of ``rooms`` (the ``RoomRegistry``, known at startup)."""
        if self.broadcast_ended not in rooms.broadcast_ended:
            rooms.broadcast_ended.append(self.broadcast_ended)

    @property
    def db(self) -> Database:
        return self.server.db

    # ------------------------------------------------------------ reading
    @staticmethod
    def _select():
        names = public_names()
        return select(Question, names.c.display_name).join(names, names.c.user_id == Question.user_id)

    async def _get(self, question_id: int) -> dict:
        async with self.db() as s:
            q, name = (await s.execute(self._select().where(Question.id == question_id))).one()
        return _item(q, name)

    async def queue(self, room_id: int) -> list[dict]:
        """Open questions of a room: paid amount desc, votes desc, oldest first."""
        async with self.db() as s:
            rows = (await s.execute(self._select().where(
                Question.room_id == room_id, Question.status == "open").order_by(*QUEUE_ORDER))).all()
        return [_item(q, name) for q, name in rows]

    async def chapters(self, room_id: int, broadcast: str) -> list[dict]:
        """Answered questions of a broadcast in ``answered_t_ms`` order (replay chapters)."""
        async with self.db() as s:
            rows = (await s.execute(self._select().where(
                Question.room_id == room_id, Question.broadcast == broadcast, Question.status == "answered",
                Question.answered_t_ms.is_not(None)).order_by(Question.answered_t_ms, Question.id))).all()
        return [_item(q, name) for q, name in rows]

    async def _send_queue(self, client: Client) -> None:
        await self.server.sio.emit("questions", {"items": await self.queue(client.room_id)}, to=client.sid)

    async def list_queue(self, client: Client, data: Any) -> dict:
        if data is not None and not isinstance(data, dict):
            raise Refusal(400, "invalid_payload", "send nothing or {}")
        return {"items": await self.queue(client.room_id)}

    async def _emit(self, room: str, *question_ids: int) -> Optional[dict]:
        item = None
        for qid in question_ids:
            item = await self._get(qid)
            await self.server.emit_room(room, "question", item)
        return item

    # ------------------------------------------------------------ viewers
    def _validate_ask(self, data: Any) -> tuple[str, Optional[str]]:
        if not isinstance(data, dict):
            raise Refusal(400, "invalid_payload", "send {text, order_id?}")
        text, order_id = data.get("text"), data.get("order_id")
        if not isinstance(text, str) or not text.strip():
            raise Refusal(400, "invalid_text", "text: 1 or more characters")
        text = text.strip()
        if len(text) > self.max_chars:
            raise Refusal(400, "text_too_long", f"text: at most {self.max_chars} characters")
        if order_id is not None and (not isinstance(order_id, str) or not 1 <= len(order_id) <= 32):
            raise Refusal(400, "invalid_order", "order_id: the id of your paid question order")
        return text, order_id

    async def ask(self, client: Client, data: Any) -> dict:
        text, order_id = self._validate_ask(data)
        broadcast, t_ms = self.server.t_ms(client.room)
        row = Question(room_id=client.room_id, broadcast=broadcast, user_id=client.user_id, text=text,
                       t_ms=t_ms, status="open", votes=0, pinned=False, paid_amount=0)
        if order_id is None:
            async with self.db() as s:
                open_count = (await s.execute(select(func.count(Question.id)).where(
                    Question.room_id == client.room_id, Question.user_id == client.user_id,
                    Question.status == "open", Question.paid_amount == 0))).scalar_one()
            if open_count >= self.max_open_per_user:
                raise Refusal(409, "too_many_questions",
                                 f"you have {open_count} open questions; wait for answers or withdraw one")
            await self.moderation.check_post(client, text)
            async with self.db() as s:
                s.add(row)
                await s.commit()
        else:
            async with self._paid_lock:
                async with self.db() as s:
                    order = await paid_order(s, order_id, client.user_id, client.room_id, "question", lock=True)
                    used = (await s.execute(select(Question.id).where(Question.order_id == order_id))).first()
                    if used is not None:
                        raise Refusal(409, "order_used", "this order was already used for a question")
                    await self.moderation.check_post(client, text)
                    row.order_id, row.paid_amount, row.currency = order.id, order.amount, order.currency
                    s.add(row)
                    await s.commit()
        item = _item(row, client.name)
        await self.server.emit_room(client.room, "question", item)
        return {"question": item}

    async def vote(self, client: Client, data: Any) -> dict:
        qid = _question_id(data)
        async with self.db() as s:
            q = await s.get(Question, qid)
            if q is None or q.room_id != client.room_id:
                raise Refusal(404, "not_found", f"no question {qid} in this room")
            if q.user_id == client.user_id:
                raise Refusal(403, "own_question", "you cannot vote for your own question")
            if q.status != "open":
                raise Refusal(409, "not_open", f"the question is {q.status}")
            s.add(QuestionVote(question_id=qid, user_id=client.user_id))
            try:
                await s.flush()
            except IntegrityError:
                await s.rollback()
                raise Refusal(409, "already_voted", "you already voted for this question") from None
            counted = await s.execute(update(Question).execution_options(synchronize_session=False)
                                      .where(Question.id == qid, Question.status == "open")
                                      .values(votes=Question.votes + 1))
            if counted.rowcount != 1:
                await s.rollback()
                raise Refusal(409, "not_open", "the question is no longer open")
            await s.commit()
        return {"question": await self._emit(client.room, qid)}

    async def withdraw(self, client: Client, data: Any) -> dict:
        qid = _question_id(data)

        def check(q: Question) -> None:
            if q.user_id != client.user_id:
                raise Refusal(403, "not_yours", "you can only withdraw your own questions")
            if q.order_id is not None:
                raise Refusal(403, "paid_question",
                                 "a paid question cannot be withdrawn; if unanswered it is refunded")

        await self._transition(client, qid, {"status": "withdrawn"}, check)
        return {"question": await self._emit(client.room, qid)}

    # ------------------------------------------------------------ creator and moderators
    async def answer(self, client: Client, data: Any) -> dict:
        qid = _question_id(data)
        broadcast, t_ms = self.server.t_ms(client.room)
        values: dict[str, Any] = {"status": "answered", "answered_t_ms": t_ms if broadcast else None}

        def check(q: Question) -> None:
            if broadcast and q.broadcast != broadcast:  # asked before this broadcast began
                values.update(broadcast=broadcast, t_ms=0)

        await self._transition(client, qid, values, check)
        return {"question": await self._emit(client.room, qid)}

    async def dismiss(self, client: Client, data: Any) -> dict:
        qid = _question_id(data)
        async with self.db() as s:
            q = await s.get(Question, qid)
        if q is not None and q.room_id == client.room_id and q.order_id is not None and self.refund_unanswered:
            if not await self._refund(q.id, q.order_id):
                raise Refusal(409, "not_open", "the question is no longer open")
        else:
            await self._transition(client, qid, {"status": "dismissed"})
        return {"question": await self._emit(client.room, qid)}

    async def pin(self, client: Client, data: Any) -> dict:
        """``{id}`` pins a question (unpinning any other); ``{id, pinned: false}`` unpins it."""
        qid = _question_id(data)
        pinned = data.get("pinned", True)
        if not isinstance(pinned, bool):
            raise Refusal(400, "invalid_payload", "pinned: true or false")
        lock = self._pin_locks.setdefault(client.room_id, asyncio.Lock())
        async with lock:
            async with self.db() as s:
                # serialises pins of a room across nodes on PostgreSQL (SQLite ignores it)
                await lock_room(s, client.room_id)
                q = await s.get(Question, qid)
                if q is None or q.room_id != client.room_id:
                    raise Refusal(404, "not_found", f"no question {qid} in this room")
                changed: list[int] = []
                if pinned:
                    if q.status != "open":
                        raise Refusal(409, "not_open", f"the question is {q.status}")
                    changed = list((await s.execute(select(Question.id).where(
                        Question.room_id == client.room_id, Question.pinned.is_(True), Question.id != qid,
                        Question.status == "open"))).scalars())
                    await s.execute(update(Question).execution_options(synchronize_session=False)
                                    .where(Question.room_id == client.room_id, Question.pinned.is_(True),
                                           Question.id != qid).values(pinned=False))
                await s.execute(update(Question).execution_options(synchronize_session=False)
                                .where(Question.id == qid).values(pinned=pinned))
                await s.commit()
        await self._emit(client.room, *changed)
        return {"question": await self._emit(client.room, qid)}

    async def _transition(self, client: Client, qid: int, values: dict, check=None) -> None:
        """open -> another status (unpinned), once: a conditional update, so a concurrent
        answer, dismissal or refund of the same question cannot both happen."""
        async with self.db() as s:
            q = await s.get(Question, qid)
            if q is None or q.room_id != client.room_id:
                raise Refusal(404, "not_found", f"no question {qid} in this room")
            if check is not None:
                check(q)
            if q.status != "open":
                raise Refusal(409, "not_open", f"the question is {q.status}")
            done = await s.execute(update(Question).execution_options(synchronize_session=False)
                                   .where(Question.id == qid, Question.status == "open")
                                   .values(pinned=False, **values))
            if done.rowcount != 1:
                await s.rollback()
                raise Refusal(409, "not_open", "the question is no longer open")
            await s.commit()

    # ------------------------------------------------------------ refunds
    async def _refund(self, qid: int, order_id: str) -> bool:
        """Claim an open paid question as ``refunded``, then refund its order (provider,
        then ledger). If the refund fails the question is open again and the error raised.
        False if the question was not open (answered or refunded meanwhile)."""
        async with self.db() as s:
            claimed = await s.execute(update(Question).execution_options(synchronize_session=False)
                                      .where(Question.id == qid, Question.status == "open")
                                      .values(status="refunded", pinned=False))
            if claimed.rowcount != 1:
                await s.rollback()
                return False
            await s.commit()
        try:
            await self.server.paywall.orders.refund_paid(order_id)
        except Exception:
            async with self.db() as s:
                await s.execute(update(Question).execution_options(synchronize_session=False)
                                .where(Question.id == qid, Question.status == "refunded").values(status="open"))
                await s.commit()
            raise
        log.info("question %d refunded (order %s)", qid, order_id)
        return True

    async def broadcast_ended(self, room: MediaRoom, broadcast: Broadcast) -> None:
        """``RoomRegistry.broadcast_ended`` listener: refund every paid question of the room
        still open (asked during the broadcast or before it started) and tell the room. A
        discarded broadcast (no media ever came) was no class: its questions wait for the next."""
        if broadcast.discarded or not self.refund_unanswered or self.server.paywall is None:
            return
        catalog_room = await self.server.paywall.catalog.get(room.name)
        if catalog_room is None:  # an open room of STAGEPASS_ROOMS: no paid questions
            return
        async with self.db() as s:
            rows = (await s.execute(select(Question.id, Question.order_id).where(
                Question.room_id == catalog_room.id, Question.status == "open",
                Question.order_id.is_not(None)).order_by(Question.id))).all()
        refunded = 0
        for qid, order_id in rows:
            try:
                if not await self._refund(qid, order_id):
                    continue
            except Exception:
                log.exception("refund of question %d (order %s) failed; it stays open", qid, order_id)
                continue
            refunded += 1
            await self._emit(room.name, qid)
        if rows:
            log.info("broadcast %s of %s ended: %d of %d unanswered paid questions refunded",
                     broadcast.id, room.name, refunded, len(rows))
