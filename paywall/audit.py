"""``AuditLog``: every admin action (refunds, role changes, payouts, takedowns,
verifications, moderation) in one table that admins read."""

from __future__ import annotations

import json
from typing import Any, Optional

from sqlalchemy import select

from core.timeutil import iso_z

from .accounts import UserView
from .db import Database
from core.access import Refusal
from .models import AuditEntry, User

__all__ = ["ACTIONS", "AuditLog"]

ACTIONS = ("refund", "role", "payout", "takedown", "verification", "listing", "review", "report")


class AuditLog:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(self, actor_id: Optional[int], action: str, target: str, **detail: Any) -> None:
        """``actor_id`` None: the command line (an operator on the machine)."""
        assert action in ACTIONS, action
        async with self.db() as s:
            s.add(AuditEntry(actor_id=actor_id, action=action, target=target[:100],
                             detail=json.dumps(detail, sort_keys=True)))
            await s.commit()

    async def entries(self, admin: UserView, action: Optional[str] = None, limit: int = 200) -> list[dict]:
        """The newest entries (of ``action`` if given), for admins."""
        if admin.role != "admin":
            raise Refusal(403, "admin_only", "only admins read the audit log")
        if action is not None and action not in ACTIONS:
            raise Refusal(400, "invalid_action", f"action: one of {', '.join(ACTIONS)}")
        query = (select(AuditEntry, User.email).outerjoin(User, User.id == AuditEntry.actor_id)
                 .order_by(AuditEntry.id.desc()).limit(limit))
        if action is not None:
            query = query.where(AuditEntry.action == action)
        async with self.db() as s:
            rows = (await s.execute(query)).all()
        return [{"id": e.id, "actor": {"id": e.actor_id, "email": email} if e.actor_id else None,
                 "action": e.action, "target": e.target, "detail": json.loads(e.detail),
                 "at": iso_z(e.created_at)} for e, email in rows]
