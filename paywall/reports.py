"""``Reports``: anyone with an account reports a room, a replay, a danmaku or a user; admins
read the open reports and resolve them (the resolution goes to the audit log)."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from core.timeutil import iso_z, utcnow

from .accounts import UserView
from .audit import AuditLog
from .db import Database
from core.access import Refusal
from .models import Report, Room, User

__all__ = ["REPORT_KINDS", "Reports"]

REPORT_KINDS = ("room", "replay", "danmaku", "user")
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class Reports:
    def __init__(self, db: Database, audit: AuditLog) -> None:
        self.db = db
        self.audit = audit

    async def file(self, reporter: UserView, body: dict) -> dict:
        """``{"kind", "target", "reason"}``: ``target`` is a room's slug, a replay's or a
        danmaku's id, or a user's id. One report per reporter and target."""
        unknown = set(body) - {"kind", "target", "reason"}
        if unknown:
            raise Refusal(400, "unknown_field", f"unknown field(s): {', '.join(sorted(unknown))}")
        kind, target, reason = body.get("kind"), body.get("target"), body.get("reason")
        if kind not in REPORT_KINDS:
            raise Refusal(400, "invalid_kind", f"kind: one of {', '.join(REPORT_KINDS)}")
        if isinstance(target, int) and not isinstance(target, bool):
            target = str(target)
        if not isinstance(target, str) or not _ID.match(target):
            raise Refusal(400, "invalid_target", "target: the slug or id of what you report")
        if not isinstance(reason, str) or not reason.strip() or len(reason) > 1000:
            raise Refusal(400, "invalid_reason", "reason: what is wrong, in up to 1000 characters")
        async with self.db() as s:
            if kind == "room" and await s.scalar(select(Room.id).where(Room.slug == target)) is None:
                raise Refusal(404, "room_not_found", f"no room named {target!r}")
            if kind == "user" and (not target.isdigit() or await s.get(User, int(target)) is None):
                raise Refusal(404, "user_not_found", f"no user {target!r}")
            report = Report(reporter_id=reporter.id, kind=kind, target=target, reason=reason.strip())
            s.add(report)
            try:
                await s.commit()
            except IntegrityError:
                raise Refusal(409, "already_reported", "you have already reported this") from None
            return _as_dict(report)

    async def open_reports(self, admin: UserView, status: str = "open") -> list[dict]:
        if admin.role != "admin":
            raise Refusal(403, "admin_only", "only admins read reports")
        if status not in ("open", "resolved"):
            raise Refusal(400, "invalid_status", "status: open or resolved")
        async with self.db() as s:
            rows = (await s.execute(select(Report).where(Report.status == status).order_by(Report.id))).scalars()
            return [_as_dict(r) for r in rows]

    async def resolve(self, admin: UserView, report_id: int, body: dict) -> dict:
        if admin.role != "admin":
            raise Refusal(403, "admin_only", "only admins resolve reports")
        note: Any = body.get("note", "")
        if not isinstance(note, str) or len(note) > 1000:
            raise Refusal(400, "invalid_note", "note: up to 1000 characters")
        async with self.db() as s:
            report = await s.get(Report, report_id)
            if report is None:
                raise Refusal(404, "report_not_found", f"no report {report_id}")
            if report.status == "resolved":
                raise Refusal(409, "already_resolved", "this report is resolved")
            report.status, report.resolved_by, report.resolved_at = "resolved", admin.id, utcnow()
            await s.commit()
            out = _as_dict(report)
        await self.audit.record(admin.id, "report", f"report:{report_id}", kind=out["kind"], reported=out["target"],
                                note=note)
        return out


def _as_dict(r: Report) -> dict:
    return {"id": r.id, "reporter_id": r.reporter_id, "kind": r.kind, "target": r.target, "reason": r.reason,
            "status": r.status, "created_at": iso_z(r.created_at)}
