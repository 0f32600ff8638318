"""``EventStore``: the behaviour-event sink, written in batches off the request path.

``record`` (the ``core.behaviour.BehaviourSink``) appends to an in-memory batch and
returns; one task writes the batch every ``flush_seconds`` (or as soon as it holds
``batch_size`` events) with one multi-row INSERT. Rooms named by slug are resolved then
(rooms outside the catalog are dropped). When the database fails, the batch is kept and
tried again, up to ``max_pending`` events; beyond that new events are counted as dropped
and logged, never allowed to grow memory without bound.

Also here, because they must see events not yet written: joining a visitor id to an
account (``link_visitor``) and a viewer's last replay position (``replay_position``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from typing import Any, Optional

from sqlalchemy import delete, select, update

from core.behaviour import EVENT_KINDS
from core.tasks import TaskOwner
from core.timeutil import utcnow
from paywall.db import Database
from paywall.models import Room
from paywall.table_writer import RowWriter, TableWriter

from .models import BehaviourEvent, VisitorLink

__all__ = ["EventStore"]

log = logging.getLogger("stagepass.insight")
_KINDS = frozenset(EVENT_KINDS)


class EventStore:
    def __init__(self, db: Database, flush_seconds: float = 1.0, batch_size: int = 500,
                 max_pending: int = 50_000, writer: Optional[RowWriter] = None) -> None:
        """``writer``: where batches are inserted (``paywall.table_writer``; default: into
        ``db`` from this process)."""
        self.db = db
        self.writer = writer or TableWriter(db, BehaviourEvent.__table__)
        self.flush_seconds = flush_seconds
        self.batch_size = batch_size
        self.max_pending = max_pending
        self.dropped = 0
        self.written = 0
        self._pending: list[dict[str, Any]] = []
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._room_ids: dict[str, int] = {}  # slugs found in the catalog (a slug never changes)
        self.tasks = TaskOwner(log)

    # ------------------------------------------------------------ the sink
    def record(self, kind: str, *, user_id: Optional[int] = None, visitor: Optional[str] = None,
               room_id: Optional[int] = None, room: Optional[str] = None, broadcast: Optional[str] = None,
               t_ms: Optional[int] = None, value: Optional[int] = None,
               data: Optional[dict[str, Any]] = None) -> None:
        if kind not in _KINDS:
            log.error("behaviour event of unknown kind %r dropped", kind)
            return
        if len(self._pending) >= self.max_pending:
            self.dropped += 1
            if self.dropped in (1, 100) or self.dropped % 10_000 == 0:
                log.warning("behaviour events: %d dropped (the database is not keeping up)", self.dropped)
            return
        self._pending.append({
            "at": utcnow(), "kind": kind, "user_id": user_id, "visitor": visitor, "room_id": room_id,
            "room": room, "broadcast": broadcast, "t_ms": t_ms, "value": value,
            "data": json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str) if data else "",
        })
        if len(self._pending) >= self.batch_size:
            self._wake.set()

    # ------------------------------------------------------------ writing
    async def start(self) -> None:
        self.tasks.spawn(self._run(), name="behaviour-events")

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.flush_seconds)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                log.exception("behaviour events: writing a batch failed; it is kept for the next round")

    async def flush(self) -> int:
        """Write what is pending now; the number of events written."""
        async with self._lock:
            batch, self._pending = self._pending, []
            if not batch:
                return 0
            try:
                rows = await self._resolve(batch)
                await self.writer.write(rows)
            except BaseException:
                self._pending[:0] = batch[: max(0, self.max_pending - len(self._pending))]
                raise
            self.written += len(rows)
            return len(rows)

    async def _resolve(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        unknown = {e["room"] for e in batch if e["room_id"] is None and e["room"] and e["room"] not in self._room_ids}
        if unknown:
            async with self.db() as s:
                found = dict((await s.execute(select(Room.slug, Room.id).where(Room.slug.in_(unknown)))).all())
            self._room_ids.update(found)
        rows = []
        for event in batch:  # the batch is left as it was: a failed write puts it back
            row = {k: v for k, v in event.items() if k != "room"}
            if row["room_id"] is None and event["room"]:
                row["room_id"] = self._room_ids.get(event["room"])
                if row["room_id"] is None:
                    continue  # an open room of the configuration: not in the catalog
            rows.append(row)
        return rows

    async def close(self) -> None:
        await self.tasks.close()
        try:
            await self.flush()
        except Exception:
            log.exception("behaviour events: the last batch could not be written (%d events lost)",
                          len(self._pending))

    # ------------------------------------------------------------ visitors and positions
    async def link_visitor(self, visitor: str, user_id: int) -> None:
        """Join an anonymous visitor's events to the account that just signed up or logged in
        (after any batch being written, so none of its events is missed)."""
        async with self._lock:
            for event in self._pending:
                if event["visitor"] == visitor and event["user_id"] is None:
                    event["user_id"] = user_id
            async with self.db() as s:
                if await s.get(VisitorLink, visitor) is None:
                    s.add(VisitorLink(visitor=visitor, user_id=user_id))
                await s.execute(update(BehaviourEvent).where(BehaviourEvent.visitor == visitor,
                                                             BehaviourEvent.user_id.is_(None)).values(user_id=user_id))
                await s.commit()

    async def replay_position(self, broadcast: str, user_id: Optional[int], visitor: Optional[str]) -> Optional[int]:
        """Where this viewer (account, else visitor id) last was in the replay of ``broadcast``."""
        if user_id is None and visitor is None:
            return None
        who = (lambda e: e["user_id"] == user_id) if user_id is not None else (lambda e: e["visitor"] == visitor)
        for event in reversed(self._pending):
            if event["kind"] == "replay_progress" and event["broadcast"] == broadcast and who(event):
                return event["t_ms"]
        column = BehaviourEvent.user_id == user_id if user_id is not None else BehaviourEvent.visitor == visitor
        async with self.db() as s:
            return (await s.execute(
                select(BehaviourEvent.t_ms)
                .where(column, BehaviourEvent.kind == "replay_progress", BehaviourEvent.broadcast == broadcast)
                .order_by(BehaviourEvent.at.desc(), BehaviourEvent.id.desc()).limit(1)
            )).scalar_one_or_none()

    async def purge(self, older_than: dt.datetime) -> int:
        """Delete raw events recorded before ``older_than`` (the retention period)."""
        async with self.db() as s:
            result = await s.execute(delete(BehaviourEvent).where(BehaviourEvent.at < older_than))
            await s.commit()
        return int(result.rowcount or 0)
