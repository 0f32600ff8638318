"""CSV exports of a room's analytics, de-identified: people appear only as salted hashes
(HMAC-SHA256 of the account or visitor id under a key derived from the server's secret, so
the same person has the same pseudonym across exports and no one without the secret can
link it back); no emails, names or raw ids; the danmaku export keeps only the text, its
media time and the pseudonym."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
from typing import Any, Optional

from sqlalchemy import select

from core.cpu import off_loop
from paywall.accounts import UserView
from core.access import Refusal

from .models import BehaviourEvent
from .reports import DANMAKU, Reports, person

__all__ = ["EXPORTS", "Exporter", "pseudonym"]

EXPORTS = ("funnel", "revenue", "retention", "events", "danmaku")
MAX_ROWS = 200_000


def pseudonym(key: bytes, who: Optional[str]) -> str:
    """The export's stand-in for a person (``u<id>`` / ``v<visitor>``)."""
    if who is None:
        return ""
    return hmac.new(key, who.encode(), hashlib.sha256).hexdigest()[:20]


def _csv(header: list[str], rows: list[list[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


class Exporter:
    def __init__(self, reports: Reports, secret: str) -> None:
        self.reports = reports
        self.key = hashlib.sha256(b"stagepass insight export\0" + secret.encode()).digest()

    async def export(self, user: UserView, slug: str, report: str) -> str:
        if report not in EXPORTS:
            raise Refusal(404, "unknown_export", f"exports: {', '.join(EXPORTS)}")
        if report == "funnel":
            body = await self.reports.room(user, slug)
            return _csv(["step", "people", "rate", "of_first"],
                        [[r["step"], r["people"], r["rate"], r["of_first"]] for r in body["funnel"]])
        if report == "revenue":
            rev = (await self.reports.room(user, slug))["revenue"]
            fields = ["currency", "gross", "refunds", "fees", "net", "costs", "profit", "roi", "viewer_minutes",
                      "net_per_viewer_minute"]
            return _csv(fields, [[rev[f] for f in fields]])
        if report == "retention":
            body = await self.reports.room(user, slug)
            rows = []
            for session in body["sessions"]:
                one = await self.reports.session(user, slug, session["id"])
                live, replay = one["live"]["retention"], one["replay"]["retention"]
                for minute in range(max(len(live), len(replay))):
                    rows.append([session["id"], minute, live[minute] if minute < len(live) else "",
                                 replay[minute] if minute < len(replay) else ""])
            return _csv(["session", "minute", "live_share", "replay_share"], rows)
        room = await self.reports.room_of(user, slug)
        async with self.reports.db() as s:
            if report == "events":
                events = (await s.execute(select(BehaviourEvent).where(BehaviourEvent.room_id == room.id)
                                          .order_by(BehaviourEvent.at, BehaviourEvent.id).limit(MAX_ROWS))).scalars().all()
                return await off_loop(lambda: _csv(["at", "kind", "person", "session", "t_ms", "value", "detail"], [
                    [e.at.isoformat(), e.kind, pseudonym(self.key, person(e.user_id, e.visitor)), e.broadcast or "",
                     "" if e.t_ms is None else e.t_ms, "" if e.value is None else e.value, _detail(e.data)]
                    for e in events]))
            rows = (await s.execute(
                select(DANMAKU.c.broadcast, DANMAKU.c.t_ms, DANMAKU.c.user_id, DANMAKU.c.text)
                .where(DANMAKU.c.room_id == room.id, DANMAKU.c.deleted.is_(False))
                .order_by(DANMAKU.c.broadcast, DANMAKU.c.t_ms).limit(MAX_ROWS))).all()
        return await off_loop(lambda: _csv(["session", "t_ms", "person", "text"],
                                           [[b, t, pseudonym(self.key, person(u, None)), text] for b, t, u, text in rows]))


def _detail(data: str) -> str:
    """What an event's data may say in an export: the page or the product, never an order id."""
    if not data:
        return ""
    parsed = json.loads(data)
    return str(parsed.get("page") or parsed.get("product") or "")
