"""The audience log: concurrent viewers of each broadcast of a catalog room over its timeline.

``AudienceLog`` is the storage side (tables ``broadcasts`` and ``audience_samples``);
``AudienceSampler`` reads this node's live rooms every ``interval`` seconds and at each
broadcast's end, and writes what it saw. Viewers are WHEP sessions (``Room.subscribers``);
time is the broadcast's media clock (``t_ms``), the one danmaku and recordings use.
Open rooms of ``STAGEPASS_ROOMS`` have no row in the catalog and are not logged.

Peak and average are computed once, when the broadcast ends (the average is weighted by
time: each sample holds until the next one). A broadcast still open (live, or cut short
by a crash) reports the numbers of its samples so far. Each broadcast records the node
that ran it: a node's next start ends every broadcast it left open (a crash, kill -9) at
its last sample, and any other whose samples stopped long ago.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional, Sequence

from sqlalchemy import func, select

from core.tasks import TaskOwner

from .db import Database
from .models import AudienceSample, BroadcastRecord, Room
from core.timeutil import as_utc

__all__ = ["AudienceLog", "AudienceSampler", "Sample", "SessionView", "summarize"]

log = logging.getLogger("stagepass.audience")


@dataclass(frozen=True)
class Sample:
    """What a room looked like at one instant of one broadcast."""

    room: str  # the room's slug
    broadcast: str
    started_at: float  # the broadcast's start, epoch seconds
    t_ms: int
    viewers: int


@dataclass(frozen=True)
class SessionView:
    id: str
    room_id: int
    started_at: dt.datetime
    ended_at: Optional[dt.datetime]
    duration_ms: int
    peak_viewers: int
    avg_viewers: float
    samples: int

    @property
    def live(self) -> bool:
        return self.ended_at is None

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "started_at": _iso(self.started_at),
            "ended_at": _iso(self.ended_at),
            "live": self.live,
            "duration_ms": self.duration_ms,
            "peak_viewers": self.peak_viewers,
            "avg_viewers": round(self.avg_viewers, 2),
            "samples": self.samples,
        }


def _iso(value: Optional[dt.datetime]) -> Optional[str]:
    return None if value is None else as_utc(value).isoformat(timespec="seconds").replace("+00:00", "Z")


def _instant(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, tz=dt.timezone.utc)


def summarize(samples: Sequence[tuple[int, int]]) -> tuple[int, float]:
    """(peak, time-weighted average) of ``[(t_ms, viewers), ...]`` sorted by time.

    Each sample holds until the next one; the last one (usually the end) has no weight
    unless it is the only point in time."""
    if not samples:
        return 0, 0.0
    peak = max(v for _, v in samples)
    span = samples[-1][0] - samples[0][0]
    if span <= 0:
        return peak, sum(v for _, v in samples) / len(samples)
    area = sum(v * (t_next - t) for (t, v), (t_next, _) in zip(samples, samples[1:]))
    return peak, area / span


class AudienceLog:
    """Broadcasts and their audience samples in the paywall's database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # ------------------------------------------------------------------ writing
    async def record(self, samples: Sequence[Sample], node: Optional[str] = None) -> int:
        """Store samples of catalog rooms (others are skipped); opens a broadcast's row on
        its first sample, run by ``node``. A sample of an ended broadcast, or not later than
        the newest one stored, is ignored. Returns how many were stored."""
        if not samples:
            return 0
        stored = 0
        async with self.db() as s:
            rooms = dict((await s.execute(
                select(Room.slug, Room.id).where(Room.slug.in_({x.room for x in samples}))
            )).all())
            for sample in samples:
                room_id = rooms.get(sample.room)
                if room_id is None:
                    continue
                row = await s.get(BroadcastRecord, sample.broadcast)
                if row is None:
                    row = BroadcastRecord(id=sample.broadcast, room_id=room_id,
                                          started_at=_instant(sample.started_at), node=node)
                    s.add(row)
                    await s.flush()
                elif row.ended_at is not None or row.room_id != room_id:
                    continue
                last = (await s.execute(select(func.max(AudienceSample.t_ms))
                                        .where(AudienceSample.broadcast_id == sample.broadcast))).scalar()
                if last is not None and sample.t_ms <= last:
                    continue
                s.add(AudienceSample(broadcast_id=sample.broadcast, t_ms=sample.t_ms, viewers=sample.viewers))
                stored += 1
            await s.commit()
        return stored

    async def end(self, final: Sample, node: Optional[str] = None) -> Optional[SessionView]:
        """The broadcast ended at ``final.t_ms`` with ``final.viewers`` watching: store that
        last sample, then its end, peak and average (once). None for an open room."""
        await self.record([final], node)
        async with self.db() as s:
            row = await s.get(BroadcastRecord, final.broadcast)
            if row is None:
                return None
            if row.ended_at is None:
                await self._finish(s, row, final.t_ms)
                await s.commit()
        return (await self.session(final.broadcast))[0]  # type: ignore[index]

    async def _finish(self, s: Any, row: BroadcastRecord, end_ms: int) -> None:
        points = await self._points(s, row.id)
        row.peak_viewers, row.avg_viewers = summarize(points)
        row.ended_at = as_utc(row.started_at) + dt.timedelta(milliseconds=end_ms)

    async def close_stale(self, older_than: float, now: Optional[float] = None,
                          node: Optional[str] = None) -> list[str]:
        """End the open broadcasts a stopped server left, at their newest sample: every one
        of ``node`` (the node starting now: none of its broadcasts can be live), and any
        other whose newest sample is more than ``older_than`` seconds old (a broadcast live
        on another node keeps sampling, so it is never this old). Returns their ids."""
        now = time.time() if now is None else now
        closed: list[str] = []
        async with self.db() as s:
            rows = (await s.execute(select(BroadcastRecord).where(BroadcastRecord.ended_at.is_(None)))).scalars().all()
            for row in rows:
                last = (await s.execute(select(func.max(AudienceSample.t_ms))
                                        .where(AudienceSample.broadcast_id == row.id))).scalar() or 0
                if ((node is not None and row.node == node)
                        or as_utc(row.started_at).timestamp() + last / 1000 < now - older_than):
                    await self._finish(s, row, last)
                    closed.append(row.id)
            await s.commit()
        return closed

    # ------------------------------------------------------------------ reading
    @staticmethod
    async def _points(s: Any, broadcast_id: str) -> list[tuple[int, int]]:
        rows = await s.execute(
            select(AudienceSample.t_ms, AudienceSample.viewers)
            .where(AudienceSample.broadcast_id == broadcast_id).order_by(AudienceSample.t_ms)
        )
        return [(int(t), int(v)) for t, v in rows]

    async def _view(self, s: Any, row: BroadcastRecord, count: Optional[int] = None) -> SessionView:
        """A session; an ended one needs only its sample count (``count`` when known),
        an open one its samples (its numbers so far)."""
        if row.ended_at is not None:
            if count is None:
                count = (await s.execute(select(func.count()).select_from(AudienceSample)
                                         .where(AudienceSample.broadcast_id == row.id))).scalar_one()
            peak, avg = row.peak_viewers or 0, row.avg_viewers or 0.0
            duration = int((as_utc(row.ended_at) - as_utc(row.started_at)).total_seconds() * 1000)
        else:
            points = await self._points(s, row.id)
            peak, avg = summarize(points)
            duration, count = (points[-1][0] if points else 0), len(points)
        return SessionView(row.id, row.room_id, as_utc(row.started_at), as_utc(row.ended_at),
                           duration, peak, avg, int(count))

    async def sessions(self, room_id: int, limit: int = 50) -> tuple[list[SessionView], int]:
        """The newest ``limit`` sessions of a room, newest first, and how many it has."""
        async with self.db() as s:
            total = (await s.execute(select(func.count()).select_from(BroadcastRecord)
                                     .where(BroadcastRecord.room_id == room_id))).scalar_one()
            rows = (await s.execute(
                select(BroadcastRecord).where(BroadcastRecord.room_id == room_id)
                .order_by(BroadcastRecord.started_at.desc()).limit(limit)
            )).scalars().all()
            counts = dict((await s.execute(
                select(AudienceSample.broadcast_id, func.count())
                .where(AudienceSample.broadcast_id.in_([r.id for r in rows]))
                .group_by(AudienceSample.broadcast_id)
            )).all()) if rows else {}
            return [await self._view(s, row, counts.get(row.id, 0)) for row in rows], int(total)

    async def session(self, broadcast_id: str) -> tuple[SessionView, list[tuple[int, int]]] | None:
        """One session and its samples ``[(t_ms, viewers), ...]``, or None."""
        async with self.db() as s:
            row = await s.get(BroadcastRecord, broadcast_id)
            if row is None:
                return None
            points = await self._points(s, broadcast_id)
            return await self._view(s, row, len(points)), points


class AudienceSampler:
    """Samples the live rooms of this node into an ``AudienceLog``.

    ``rooms`` is the ``RoomRegistry`` (iterable of rooms with ``name``, ``broadcast`` and
    ``subscribers``). Samples and ends are serialised by a lock, so a broadcast's last
    periodic sample is stored before its end is computed. ``count`` says how many watch a
    room (by default its WHEP subscribers here; with several nodes, every node's viewers)."""

    def __init__(self, audience: AudienceLog, rooms: Iterable[Any], interval: float,
                 node: Optional[str] = None, count: Callable[[Any], int] = lambda room: len(room.subscribers)) -> None:
        self.audience = audience
        self.count = count
        self.rooms = rooms
        self.interval = interval
        self.node = node  #: recorded with each broadcast; its broadcasts left open end at start
        self.tasks = TaskOwner(log)
        self.ticks = 0  #: completed sampling rounds (tests wait on it)
        self._lock = asyncio.Lock()
        self._open: dict[str, Sample] = {}  # broadcast id -> its newest sample seen here

    def attach(self, registry: Any) -> None:
        """Listen to broadcast ends of the ``RoomRegistry``."""
        if self.broadcast_ended not in registry.broadcast_ended:
            registry.broadcast_ended.append(self.broadcast_ended)

    async def start(self) -> None:
        try:
            closed = await self.audience.close_stale(older_than=max(60.0, 3 * self.interval), node=self.node)
        except Exception:
            log.exception("audience: closing unfinished broadcasts failed")
        else:
            if closed:
                log.info("audience: closed %d broadcasts left open by a previous run: %s",
                         len(closed), ", ".join(closed))
        self.tasks.spawn(self._run(), name="audience-sampler")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.sample_once()
            except Exception:  # sample_once logs storage errors; anything else lands here
                log.exception("audience: a sampling round failed; the next one goes on")

    def _snapshot(self, now: float) -> list[Sample]:
        """A sample of each room whose broadcast is confirmed (its first media came): one
        still waiting for it may be discarded, and then there was no broadcast to log."""
        return [
            Sample(room.name, room.broadcast.id, room.broadcast.started_at,
                   room.broadcast.t_ms(now), self.count(room))
            for room in list(self.rooms) if room.broadcast is not None and room.broadcast.confirmed
        ]

    async def sample_once(self, now: Optional[float] = None) -> int:
        """One round: a sample of every room with a confirmed broadcast (its first media
        came). Errors are logged with the rooms' names and the next round goes on.
        Returns how many samples were stored."""
        async with self._lock:
            samples = self._snapshot(time.time() if now is None else now)
            try:
                stored = await self.audience.record(samples, self.node)
            except Exception:
                log.exception("audience: sampling rooms %s failed", ", ".join(s.room for s in samples) or "-")
                return 0
            finally:
                self.ticks += 1
            for sample in samples:
                self._open[sample.broadcast] = sample
            return stored

    async def broadcast_ended(self, room: Any, broadcast: Any, now: Optional[float] = None) -> None:
        """``RoomRegistry.broadcast_ended`` listener: the last sample, then peak/avg. A
        discarded broadcast (no media ever came) is recorded only if it was sampled."""
        final = Sample(room.name, broadcast.id, broadcast.started_at,
                       broadcast.t_ms(time.time() if now is None else now), self.count(room))
        async with self._lock:
            if self._open.pop(broadcast.id, None) is None and getattr(broadcast, "discarded", False):
                return
            try:
                session = await self.audience.end(final, self.node)
            except Exception:
                log.exception("audience: ending broadcast %s of room %s failed", broadcast.id, room.name)
                return
        if session is not None:
            log.info("audience: room %s broadcast %s ended: peak %d, average %.2f viewers over %d s",
                     room.name, broadcast.id, session.peak_viewers, session.avg_viewers,
                     session.duration_ms // 1000)

    async def close(self) -> None:
        """Stop sampling; broadcasts still open here end at their newest sample (the
        server is going away, and so are their viewers)."""
        await self.tasks.close()
        async with self._lock:
            open_, self._open = list(self._open.values()), {}
            for sample in open_:
                try:
                    await self.audience.end(sample, self.node)
                except Exception:
                    log.exception("audience: ending broadcast %s of room %s at shutdown failed",
                                  sample.broadcast, sample.room)
