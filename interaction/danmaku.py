"""Danmaku (bullet comments): send, rate limits, persistence, live batches, exports.

A danmaku is ``{text, color, mode}`` from the client; the server stamps ``id``, ``user``,
``sent_at`` (wall time) and ``t_ms`` on the broadcast's media clock, stores it, and
broadcasts it in batches. A client joining gets the last ``RECENT`` of the broadcast.
Exports: JSON, and Bilibili's XML (``<d p="time,mode,size,color,sendTs,pool,uid,id">``)
so existing danmaku tools read them.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any, Optional
from xml.sax.saxutils import escape

from sqlalchemy import func, select

from paywall.accounts import public_names
from paywall.db import Database
from paywall.table_writer import table_writer
from core.settings import InteractionSettings
from core.timeutil import as_utc, utcnow

from .batcher import Batcher
from .broadcast import encode_json
from .danmaku_cluster import DanmakuCluster, LocalDanmakuCluster
from .flush_barrier import FlushBarrier
from .models import Danmaku
from .moderation import Moderation
from core.access import Refusal

from .room_feed import RoomFeed
from .server import Client, InteractionServer
from .write_behind import WriteBehind, WriteBehindFull

__all__ = ["DanmakuService", "to_bilibili_xml"]

COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")
MODES = ("scroll", "top", "bottom")
BILIBILI_MODE = {"scroll": 1, "bottom": 4, "top": 5}
RECENT = 50
BUSY = "danmaku cannot be stored right now; try again"
REFUSALS = {
    "room_busy": "the room is receiving too many messages; try again",
    "rate_limited": "too many messages; slow down",
}


def _item(d: Danmaku, name: str) -> dict:
    return {
        "id": d.id, "text": d.text, "color": d.color, "mode": d.mode, "t_ms": d.t_ms,
        "broadcast": d.broadcast, "user": {"id": d.user_id, "name": name},
        "sent_at": as_utc(d.sent_at).isoformat(timespec="milliseconds"),
    }


class DanmakuService:
    """Send path: validate, mute/blocklist (memory), limits (memory, kept shared through the
    feed: ``danmaku_cluster``), broadcast, ack;
    the row is written behind (``WriteBehind``). A danmaku is encoded to JSON once, here;
    this process's ``batcher`` gathers it, with the ones other processes accepted (from
    the ``feed``), into the frames it writes to its own sockets."""

    def __init__(self, server: InteractionServer, moderation: Moderation, limits: InteractionSettings,
                 cluster: Optional[DanmakuCluster] = None) -> None:
        """``limits``: the length, rate, batching and write settings (their defaults live in
        ``core.settings``); ``cluster``: where rate limits and row ids are shared (default:
        this process only). Items travel between processes on the server's ``Cluster``."""
        self.server = server
        self.moderation = moderation
        self.max_chars = limits.danmaku_max_chars
        self.cluster: DanmakuCluster = cluster or LocalDanmakuCluster(
            limits.danmaku_user_rate, limits.danmaku_user_burst, limits.danmaku_room_rate)
        self.batcher = Batcher(self._write, server.tasks, interval=limits.danmaku_batch_ms / 1000,
                               processes=limits.interaction_workers)
        self.feed = RoomFeed(server.cluster, self._from_others, server.tasks)
        self.barrier = FlushBarrier(server.cluster, self.flush_local, server.tasks)
        self.write_interval = limits.danmaku_write_ms / 1000
        self.rows: Optional[WriteBehind] = None  # once the database is open (``start``)
        self._floor = 0  # the database's largest danmaku id at start
        self._locks: dict[str, asyncio.Lock] = {}  # per socket: its danmaku keep their order
        moderation.flushers.append(self.flush)
        server.on("danmaku:send", self.send)
        server.on_connect(self._send_recent)
        server.on_disconnect(self._forget)

    @property
    def db(self) -> Database:
        return self.server.db

    def _write(self, room: str, items_json: str) -> None:
        self.server.write_room(room, "danmaku", '{"items":' + items_json + "}")

    def _from_others(self, room: str, items: str, count: int, senders: list[int]) -> None:
        """Items another process accepted (one a line, from ``senders``), for this process's
        sockets; spent from this process's rate limits too (``danmaku_cluster``)."""
        if not self.server.has_local(room):  # no one here can send to (or see) the room
            return
        self.cluster.spent(room, senders, self.moderation.slow_seconds(room) > 0)
        if self.batcher.interval <= 0:  # no batching: one frame per danmaku, as on one process
            for item in items.split("\n"):
                self.batcher.add(room, item)
        else:
            self.batcher.add(room, items.replace("\n", ","), count)

    async def start(self) -> None:
        await self.feed.start()
        await self.barrier.start()
        async with self.db() as s:
            self._floor = int((await s.execute(select(func.max(Danmaku.id)))).scalar() or 0)
        writer = table_writer(self.server.cluster, self.db, Danmaku.__table__)
        self.rows = WriteBehind(writer, interval=self.write_interval, name="danmaku")
        self.rows.start(self.server.tasks)

    async def close(self) -> None:
        """Write what is queued (after the server's tasks are closed)."""
        await self.feed.close()
        await self.barrier.close()
        if self.rows is not None:
            await self.rows.close()

    def _validate(self, data: Any) -> tuple[str, str, str]:
        if not isinstance(data, dict):
            raise Refusal(400, "invalid_payload", "send {text, color, mode}")
        text, color, mode = data.get("text"), data.get("color", "#FFFFFF"), data.get("mode", "scroll")
        if not isinstance(text, str) or not text.strip():
            raise Refusal(400, "invalid_text", "text: 1 or more characters")
        if len(text) > self.max_chars:
            raise Refusal(400, "text_too_long", f"text: at most {self.max_chars} characters")
        if not isinstance(color, str) or not COLOR_RE.match(color):
            raise Refusal(400, "invalid_color", "color: #RRGGBB")
        if mode not in MODES:
            raise Refusal(400, "invalid_mode", "mode: scroll, top or bottom")
        return text, color.upper(), mode

    async def send(self, client: Client, data: Any) -> dict:
        text, color, mode = self._validate(data)
        self.moderation.check_text(client, text)
        lock = self._locks.get(client.sid)
        if lock is None:
            lock = self._locks[client.sid] = asyncio.Lock()
        async with lock:  # a socket's danmaku are broadcast in the order they came
            if self.rows is None or len(self.rows) >= self.rows.capacity:  # before a token is taken
                raise Refusal(503, "busy", BUSY)
            slow = 0 if client.moderator else self.moderation.slow_seconds(client.room)
            refusal = await self.cluster.take(client.room, client.user_id, slow)
            if refusal is not None:
                code, wait_ms = refusal
                if code == "slow_mode":
                    raise Refusal(429, code, f"slow mode: wait {max(1, round(wait_ms / 1000))} s between messages")
                raise Refusal(429, code, REFUSALS[code])
            broadcast, t_ms = self.server.t_ms(client.room)
            accepted = time.time()
            row = {"id": await self.cluster.next_id(self._floor), "room_id": client.room_id,
                   "broadcast": broadcast, "user_id": client.user_id, "text": text, "color": color,
                   "mode": mode, "t_ms": t_ms, "sent_at": utcnow(), "deleted": False}
            try:
                self.rows.add(row)
            except WriteBehindFull:
                raise Refusal(503, "busy", BUSY) from None
            item = {"id": row["id"], "text": text, "color": color, "mode": mode, "t_ms": t_ms,
                    "broadcast": broadcast, "user": client.public(),
                    "sent_at": row["sent_at"].isoformat(timespec="milliseconds")}
            encoded = encode_json(item)
            self.batcher.add(client.room, encoded, stamp=accepted)
            self.feed.publish(client.room, encoded, client.user_id)
        return {"danmaku": item}

    async def _forget(self, client: Client) -> None:
        self._locks.pop(client.sid, None)
        self.cluster.forget(client.room, client.user_id)

    async def flush(self) -> None:
        """Write the rows queued on every process now (readers that must see every
        acknowledged danmaku: exports, deletes, erasures; ``FlushBarrier``)."""
        await self.barrier.flush_all()

    async def flush_local(self) -> None:
        """Write this process's queued rows now."""
        if self.rows is not None:
            await self.rows.flush()

    async def _send_recent(self, client: Client) -> None:
        broadcast, _ = self.server.t_ms(client.room)
        # a newcomer's recent danmaku: this process's queue only, so no cluster round trip per
        # join; the rows other processes accepted in their last write interval may be missing
        # from this list (they were broadcast before the newcomer joined)
        items = await self.history(client.room_id, broadcast, limit=RECENT, everywhere=False)
        await self.server.sio.emit("danmaku:recent", {"items": items}, to=client.sid)

    async def history(self, room_id: int, broadcast: Optional[str], limit: Optional[int] = None,
                      from_ms: Optional[int] = None, to_ms: Optional[int] = None,
                      everywhere: bool = True) -> list[dict]:
        """Danmaku of a broadcast in media-time order (the last ``limit`` if given); the rows
        queued on every process (``everywhere``), or on this one only, are written first."""
        await (self.flush() if everywhere else self.flush_local())
        names = public_names()
        query = (select(Danmaku, names.c.display_name).join(names, names.c.user_id == Danmaku.user_id)
                 .where(Danmaku.room_id == room_id, Danmaku.deleted.is_(False)))
        if broadcast is not None:
            query = query.where(Danmaku.broadcast == broadcast)
        if from_ms is not None:
            query = query.where(Danmaku.t_ms >= from_ms)
        if to_ms is not None:
            query = query.where(Danmaku.t_ms < to_ms)
        if limit is not None:
            query = query.order_by(Danmaku.id.desc()).limit(limit)
        else:
            query = query.order_by(Danmaku.t_ms, Danmaku.id)
        async with self.db() as s:
            rows = (await s.execute(query)).all()
        items = [_item(d, name) for d, name in rows]
        return list(reversed(items)) if limit is not None else items


def to_bilibili_xml(items: list[dict], chat_id: str = "0") -> str:
    """Bilibili's danmaku XML; ``uid`` is the Stagepass user id (not a hash: it is ours)."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', "<i>",
             f"<chatid>{escape(chat_id)}</chatid>", f"<maxlimit>{len(items)}</maxlimit>"]
    for it in items:
        from datetime import datetime

        send_ts = int(datetime.fromisoformat(it["sent_at"]).timestamp())
        p = ",".join(str(v) for v in (
            f"{it['t_ms'] / 1000:.3f}", BILIBILI_MODE[it["mode"]], 25, int(it["color"][1:], 16),
            send_ts, 0, it["user"]["id"], it["id"],
        ))
        lines.append(f'<d p="{p}">{escape(it["text"])}</d>')
    lines.append("</i>")
    return "\n".join(lines) + "\n"
