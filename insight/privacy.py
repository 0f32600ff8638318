"""A person's data: download it all (JSON), or delete the account.

Deleting keeps what accounting must keep and removes the person from it: orders, ledger
legs and payouts stay (so every transaction still balances and the creator's earnings do
not change), pointing at a user row that no longer says who it was (no email, no name, a
password that matches nothing). Everything else about the person goes: logins, behaviour
events (theirs and their visitor ids'), visitor links, danmaku, question texts, votes,
previews, coupon offers, moderator roles and bans; their tickets are revoked and their passes
ended (a subscription cancelled at the payment provider), ending any session still playing. A creator who still has rooms is refused (``409``): their rooms
are other people's purchases.

The chat's tables are reached by name (``sqlalchemy.table``): the chat package sits a layer
above this one.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Awaitable, Callable, Optional

from sqlalchemy import column, delete, select, table, update

from paywall.accounts import UserView
from paywall.db import Database
from core.access import Refusal
from paywall.models import Entitlement, LoginSession, Order, PreviewUse, Room, User
from paywall.passes import PassBook
from paywall.passwords import PasswordPool

from .models import BehaviourEvent, CouponOffer, VisitorLink
from .reports import DANMAKU

__all__ = ["Privacy"]

log = logging.getLogger("stagepass.insight")
QUESTIONS = table("questions", column("id"), column("room_id"), column("user_id"), column("text"),
                  column("status"), column("paid_amount"), column("currency"), column("created_at"))
_BY_USER = [table(name, column("user_id")) for name in ("question_votes", "poll_votes", "room_moderators", "room_bans")]
DELETED_NAME = "Deleted user"


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


class Privacy:
    def __init__(self, db: Database, passwords: PasswordPool,
                 on_revoked: Optional[Callable[[int, str], Awaitable[None]]] = None,
                 passes: Optional[PassBook] = None) -> None:
        self.db = db
        self.passwords = passwords
        self.on_revoked = on_revoked
        self.passes = passes
        #: rows other packages still hold in memory (danmaku written behind) go to the
        #: database before a person's data is read or deleted; the assembly adds them
        self.flushers: list[Callable[[], Awaitable[None]]] = []

    async def _flush(self) -> None:
        for flush in self.flushers:
            await flush()

    async def export(self, user: UserView) -> dict[str, Any]:
        """Everything the server holds about ``user``."""
        await self._flush()
        async with self.db() as s:
            account = await s.get(User, user.id)
            slugs = dict((await s.execute(select(Room.id, Room.slug))).all())
            orders = (await s.execute(select(Order).where(Order.user_id == user.id).order_by(Order.created_at))).scalars()
            entitlements = (await s.execute(select(Entitlement).where(Entitlement.user_id == user.id))).scalars()
            danmaku = (await s.execute(select(DANMAKU.c.room_id, DANMAKU.c.broadcast, DANMAKU.c.t_ms, DANMAKU.c.text,
                                              DANMAKU.c.sent_at).where(DANMAKU.c.user_id == user.id))).all()
            questions = (await s.execute(select(QUESTIONS).where(QUESTIONS.c.user_id == user.id))).mappings().all()
            visitors = (await s.execute(select(VisitorLink.visitor).where(VisitorLink.user_id == user.id))).scalars().all()
            events = (await s.execute(select(BehaviourEvent).where(BehaviourEvent.user_id == user.id)
                                      .order_by(BehaviourEvent.at, BehaviourEvent.id))).scalars()
            offers = (await s.execute(select(CouponOffer).where(CouponOffer.user_id == user.id))).scalars()
            passes = await self.passes.of_user(user.id) if self.passes is not None else []
            return {
                "account": {"id": account.id, "email": account.email, "display_name": account.display_name,
                            "role": account.role, "created_at": _iso(account.created_at)},
                "orders": [{"id": o.id, "room": slugs.get(o.room_id), "product": o.product, "amount": o.amount,
                            "currency": o.currency, "status": o.status, "message": o.message,
                            "created_at": _iso(o.created_at), "paid_at": _iso(o.paid_at),
                            "refunded_at": _iso(o.refunded_at)} for o in orders],
                "entitlements": [{"room": slugs.get(e.room_id), "kind": e.kind, "active": e.active,
                                  "created_at": _iso(e.created_at)} for e in entitlements],
                "danmaku": [{"room": slugs.get(r), "session": b, "t_ms": t, "text": text, "sent_at": _iso(at)}
                            for r, b, t, text, at in danmaku],
                "questions": [{"room": slugs.get(q["room_id"]), "text": q["text"], "status": q["status"],
                               "paid_amount": q["paid_amount"], "currency": q["currency"],
                               "created_at": _iso(q["created_at"])} for q in questions],
                "visitor_ids": list(visitors),
                "events": [{"at": _iso(e.at), "kind": e.kind, "room": slugs.get(e.room_id), "session": e.broadcast,
                            "t_ms": e.t_ms, "value": e.value, "data": json.loads(e.data) if e.data else None}
                           for e in events],
                "coupon_offers": [{"room": slugs.get(o.room_id), "code": o.code, "percent": o.percent,
                                   "offered_at": _iso(o.created_at)} for o in offers],
                "passes": [{k: v for k, v in p.items() if k != "checkout_url"} for p in passes],
            }

    async def delete_account(self, user: UserView, password: object) -> None:
        if not isinstance(password, str):
            raise Refusal(400, "missing_field", "password is required (a string): confirm with your password")
        await self._flush()
        async with self.db() as s:
            account = await s.get(User, user.id)
            if account is None:
                raise Refusal(404, "user_not_found", "no such account")
            stored = account.password_hash
            has_rooms = (await s.execute(select(Room.id).where(Room.creator_id == user.id).limit(1))).first()
        if not await self.passwords.verify(stored, password):
            raise Refusal(403, "bad_credentials", "wrong password; nothing was deleted")
        if has_rooms is not None:
            raise Refusal(409, "creator_has_rooms", "you still have rooms (others bought them); "
                               "contact an admin to close them before deleting your account")
        async with self.db() as s:
            held = (await s.execute(select(Room.slug).join(Entitlement, Entitlement.room_id == Room.id).where(
                Entitlement.user_id == user.id, Entitlement.active).distinct())).scalars().all()
            visitors = (await s.execute(select(VisitorLink.visitor).where(VisitorLink.user_id == user.id))).scalars().all()
            await s.execute(delete(BehaviourEvent).where(BehaviourEvent.user_id == user.id))
            if visitors:
                await s.execute(delete(BehaviourEvent).where(BehaviourEvent.visitor.in_(visitors)))
            for model in (VisitorLink, CouponOffer, LoginSession, PreviewUse):
                await s.execute(delete(model).where(model.user_id == user.id))
            for chat_table in [DANMAKU, *_BY_USER]:
                await s.execute(delete(chat_table).where(chat_table.c.user_id == user.id))
            await s.execute(update(QUESTIONS).where(QUESTIONS.c.user_id == user.id).values(text="", status="deleted"))
            await s.execute(update(Order).where(Order.user_id == user.id).values(message=""))
            await s.execute(update(Entitlement).where(Entitlement.user_id == user.id, Entitlement.active)
                            .values(active=False))
            await s.execute(update(User).where(User.id == user.id).values(
                email=f"deleted-{user.id}@deleted.invalid", display_name=DELETED_NAME, password_hash="!deleted",
                role="viewer"))
            await s.commit()
        log.info("user %d deleted their account (orders and ledger kept, person removed)", user.id)
        if self.passes is not None:
            await self.passes.end_all(user.id)
        if self.on_revoked is not None:
            for slug in held:
                try:
                    await self.on_revoked(user.id, slug)
                except Exception:
                    log.exception("ending the sessions of deleted user %d in room %s failed", user.id, slug)
