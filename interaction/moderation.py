"""``Moderation``: bans, mutes, slow mode, blocklists, moderators, deletions, audit log.

Everything a moderator does is recorded in ``moderation_actions`` (who, whom, what,
when). Bans and mutes live in the database, so they hold on every node and across
restarts; a ban also disconnects the user's sockets everywhere (``ClusterBus``). Slow
mode and blocklist changes travel on the bus so every node applies them at once.

``check_post`` is what questions call before accepting text; danmaku call ``check_text``
(mute and blocklist, answered from memory) and take slow mode from the cluster's limits.
A room's mutes and blocked words are read from the database once, when its first socket
connects on this process, and kept current by the bus (``mute``, ``unban``,
``blocklist``), so a mute issued on any process holds on every process at once.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any, Awaitable, Callable, Optional

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from paywall.db import Database
from core.timeutil import as_utc, utcnow

from .bus import ClusterBus
from .models import BlockedWord, Danmaku, ModerationAction, Question, RoomBan, RoomModerator
from core.access import Refusal

from .server import Client, InteractionServer

__all__ = ["Moderation"]

MAX_MUTE = 7 * 86400
MAX_SLOW = 600


def _int(data: Any, key: str, low: int, high: int) -> int:
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise Refusal(400, "invalid_payload", f"{key}: an integer from {low} to {high}")
    return value


class Moderation:
    def __init__(self, server: InteractionServer, bus: ClusterBus, global_words: tuple[str, ...] = ()) -> None:
        self.server = server
        self.bus = bus
        self.global_words = tuple(w.lower() for w in global_words if w)
        self._slow: dict[str, int] = {}  # room -> seconds between posts per user
        self._last_post: dict[tuple[str, int], float] = {}
        self._words: dict[int, tuple[str, ...]] = {}  # room id -> blocked words (cache)
        self._mutes: dict[int, dict[int, dt.datetime]] = {}  # room id -> user -> muted until (cache)
        #: awaited before a danmaku is deleted: writers of rows not in the database yet
        self.flushers: list[Callable[[], Awaitable[None]]] = []
        server.moderation = self  # the connect handler checks bans and moderators
        bus.subscribe("ban", self._on_ban)
        bus.subscribe("slow_mode", self._on_slow_mode)
        bus.subscribe("blocklist", self._on_blocklist)
        bus.subscribe("moderator", self._on_moderator)
        bus.subscribe("mute", self._on_mute)
        bus.subscribe("unban", self._on_unban)
        on = server.on
        on("mod:delete", self.delete, moderator=True)
        on("mod:mute", self.mute, moderator=True)
        on("mod:ban", self.ban, moderator=True)
        on("mod:unban", self.unban, moderator=True)
        on("mod:slow_mode", self.slow_mode, moderator=True)
        on("mod:blocklist", self.blocklist, moderator=True)
        on("mod:appoint", self.appoint, moderator=True)
        on("mod:audit", self.audit, moderator=True)
        server.on_connect(self._joined)

    @property
    def db(self) -> Database:
        return self.server.db

    # ------------------------------------------------------------ checks
    async def is_banned(self, room_id: int, user_id: int) -> bool:
        async with self.db() as s:
            return (await s.execute(select(RoomBan.id).where(
                RoomBan.room_id == room_id, RoomBan.user_id == user_id, RoomBan.kind == "ban"))).first() is not None

    async def is_moderator(self, room_id: int, user_id: int) -> bool:
        async with self.db() as s:
            return await s.get(RoomModerator, (room_id, user_id)) is not None

    async def muted_until(self, room_id: int, user_id: int) -> Optional[dt.datetime]:
        await self._load_mutes(room_id)
        return self._muted_until(room_id, user_id)

    def _muted_until(self, room_id: int, user_id: int) -> Optional[dt.datetime]:
        until = self._mutes.get(room_id, {}).get(user_id)
        return until if until is not None and until > utcnow() else None

    async def _load_mutes(self, room_id: int) -> None:
        if room_id in self._mutes:
            return
        mutes = self._mutes[room_id] = {}  # bus updates arriving meanwhile land here too
        async with self.db() as s:
            rows = (await s.execute(select(RoomBan.user_id, RoomBan.until).where(
                RoomBan.room_id == room_id, RoomBan.kind == "mute"))).all()
        for user_id, until in rows:
            if until is not None:
                mutes[user_id] = max(as_utc(until), mutes.get(user_id, as_utc(until)))

    async def blocked_words(self, room_id: int) -> tuple[str, ...]:
        words = self._words.get(room_id)
        if words is None:
            async with self.db() as s:
                rows = (await s.execute(select(BlockedWord.word).where(
                    (BlockedWord.room_id == room_id) | BlockedWord.room_id.is_(None)))).scalars().all()
            words = self._words[room_id] = tuple(rows) + self.global_words
        return words

    def slow_seconds(self, room: str) -> int:
        """The room's slow mode: seconds between two posts of a user (0: off)."""
        return self._slow.get(room, 0)

    def check_text(self, client: Client, text: str) -> None:
        """Refuse text from a muted user or with a blocked word, from memory (the room's
        mutes and words are loaded when its sockets connect)."""
        until = self._muted_until(client.room_id, client.user_id)
        if until is not None:
            raise Refusal(403, "muted", f"you are muted until {until.isoformat(timespec='seconds')}")
        lowered = text.lower()
        words = self._words.get(client.room_id, self.global_words)
        for word in words:
            if word in lowered:
                raise Refusal(403, "blocked_word", f"the message contains a blocked word ({word!r})")

    async def check_post(self, client: Client, text: str) -> None:
        """``check_text``, then slow mode on this process (moderators are exempt).
        Records the post time when accepted."""
        await self._load_mutes(client.room_id)
        await self.blocked_words(client.room_id)
        self.check_text(client, text)
        slow = self._slow.get(client.room, 0)
        key = (client.room, client.user_id)
        now = time.monotonic()
        if slow and not client.moderator:
            last = self._last_post.get(key)
            if last is not None and now - last < slow:
                raise Refusal(429, "slow_mode", f"slow mode: wait {slow - (now - last):.0f} s between messages")
        self._last_post[key] = now

    # ------------------------------------------------------------ actions
    async def _record(self, client: Client, action: str, target: Optional[int] = None, detail: str = "") -> None:
        await self._record_as(client.room_id, client.user_id, action, target, detail)

    async def _record_as(self, room_id: int, actor_id: int, action: str, target: Optional[int] = None,
                         detail: str = "") -> None:
        async with self.db() as s:
            s.add(ModerationAction(room_id=room_id, actor_id=actor_id, target_user_id=target, action=action,
                                   detail=detail))
            await s.commit()

    async def delete(self, client: Client, data: Any) -> dict:
        kind = data.get("kind") if isinstance(data, dict) else None
        item_id = _int(data, "id", 1, 2**31 - 1)
        model = {"danmaku": Danmaku, "question": Question}.get(kind)
        if model is None:
            raise Refusal(400, "invalid_payload", "kind: 'danmaku' or 'question'")
        values = {"deleted": True} if model is Danmaku else {"status": "deleted"}
        if model is Danmaku:
            for flush in self.flushers:  # danmaku rows still queued, on every process
                await flush()
        async with self.db() as s:
            item = await s.get(model, item_id)
            if item is None or item.room_id != client.room_id:
                raise Refusal(404, "not_found", f"no {kind} {item_id} in this room")
            await s.execute(update(model).where(model.id == item_id).values(**values)
                            .execution_options(synchronize_session=False))
            await s.commit()
            target = item.user_id
        await self._record(client, f"delete_{kind}", target, str(item_id))
        await self.server.emit_room(client.room, "deleted", {"kind": kind, "id": item_id})
        return {}

    async def mute(self, client: Client, data: Any) -> dict:
        target = await self._target(client, data)
        seconds = _int(data, "seconds", 1, MAX_MUTE)
        until = utcnow() + dt.timedelta(seconds=seconds)
        async with self.db() as s:
            s.add(RoomBan(room_id=client.room_id, user_id=target, kind="mute", until=until))
            await s.commit()
        await self._record(client, "mute", target, f"{seconds}s")
        await self.bus.publish("mute", room_id=client.room_id, user=target, until=until.isoformat())
        await self.server.emit_room(client.room, "muted", {"user": target, "until": until.isoformat(timespec="seconds")})
        return {"until": until.isoformat(timespec="seconds")}

    async def ban(self, client: Client, data: Any) -> dict:
        target = await self._target(client, data)
        async with self.db() as s:
            s.add(RoomBan(room_id=client.room_id, user_id=target, kind="ban"))
            await s.commit()
        await self._record(client, "ban", target)
        await self.bus.publish("ban", room=client.room, user=target)
        return {}

    async def unban(self, client: Client, data: Any) -> dict:
        target = await self._known_user(_int(data, "user_id", 1, 2**31 - 1))
        async with self.db() as s:
            await s.execute(delete(RoomBan).where(RoomBan.room_id == client.room_id, RoomBan.user_id == target))
            await s.commit()
        await self._record(client, "unban", target)
        await self.bus.publish("unban", room_id=client.room_id, user=target)
        return {}

    async def _on_mute(self, message: dict) -> None:
        mutes = self._mutes.get(int(message["room_id"]))
        if mutes is not None:
            until = dt.datetime.fromisoformat(message["until"])
            user = int(message["user"])
            mutes[user] = max(until, mutes.get(user, until))

    async def _on_unban(self, message: dict) -> None:
        mutes = self._mutes.get(int(message["room_id"]))
        if mutes is not None:
            mutes.pop(int(message["user"]), None)

    async def _target(self, client: Client, data: Any) -> int:
        target = _int(data, "user_id", 1, 2**31 - 1)
        if target == client.creator_id or target == client.user_id:
            raise Refusal(400, "invalid_target", "the creator and yourself cannot be muted or banned")
        return await self._known_user(target)

    async def _known_user(self, user_id: int) -> int:
        """``user_id`` if such a user exists; ``user_not_found`` otherwise (before anything
        is stored: the bans, moderators and audit log refer to users)."""
        if await self.server.paywall.accounts.get(user_id) is None:
            raise Refusal(404, "user_not_found", f"no user {user_id}")
        return user_id

    async def _on_ban(self, message: dict) -> None:
        """On every node: the banned user's chat connections and players in the room end."""
        for c in self.server.clients_in(message["room"]):
            if c.user_id == message["user"]:
                await self.server.kick(c.sid, "banned", "you are banned from this room")
        live = self.server.rooms.get(message["room"]) if self.server.rooms is not None else None
        # an interaction worker process holds only the rooms' clocks: its control plane ends the players
        end_sessions_of = getattr(live, "end_sessions_of", None)
        if end_sessions_of is not None:
            await end_sessions_of(int(message["user"]), f"user {message['user']} banned")

    async def slow_mode(self, client: Client, data: Any) -> dict:
        seconds = _int(data, "seconds", 0, MAX_SLOW)
        await self._record(client, "slow_mode", None, f"{seconds}s")
        await self.bus.publish("slow_mode", room=client.room, seconds=seconds)
        await self.server.emit_room(client.room, "slow_mode", {"seconds": seconds})
        return {}

    async def _joined(self, client: Client) -> None:
        """Load the room's mutes and blocked words (once per process); a newcomer learns the
        room's slow mode (it is otherwise only sent on changes)."""
        await self._load_mutes(client.room_id)
        await self.blocked_words(client.room_id)
        seconds = self._slow.get(client.room, 0)
        if seconds:
            await self.server.sio.emit("slow_mode", {"seconds": seconds}, to=client.sid)

    async def _on_slow_mode(self, message: dict) -> None:
        self._slow[message["room"]] = int(message["seconds"])

    async def blocklist(self, client: Client, data: Any) -> dict:
        if not isinstance(data, dict):
            raise Refusal(400, "invalid_payload", "send {add: [...], remove: [...]}")
        add, remove = data.get("add", []), data.get("remove", [])
        for words in (add, remove):
            if (not isinstance(words, list) or len(words) > 100
                    or not all(isinstance(w, str) and 1 <= len(w.strip()) <= 64 for w in words)):
                raise Refusal(400, "invalid_payload", "add/remove: lists of up to 100 words of 1-64 characters")
        if not add and not remove:  # a read: no change, no audit entry
            words = await self.blocked_words(client.room_id)
            return {"words": [w for w in words if w not in self.global_words]}
        async with self.db() as s:
            present = set((await s.execute(select(BlockedWord.word).where(
                BlockedWord.room_id == client.room_id))).scalars())
            for word in {w.strip().lower() for w in add} - present:
                s.add(BlockedWord(room_id=client.room_id, word=word))
            if remove:
                await s.execute(delete(BlockedWord).where(
                    BlockedWord.room_id == client.room_id,
                    BlockedWord.word.in_([w.strip().lower() for w in remove])))
            await s.commit()
        await self._record(client, "blocklist", None, f"+{len(add)} -{len(remove)}")
        await self.bus.publish("blocklist", room_id=client.room_id)
        words = await self.blocked_words(client.room_id)
        return {"words": [w for w in words if w not in self.global_words]}

    async def _on_blocklist(self, message: dict) -> None:
        self._words.pop(int(message["room_id"]), None)

    async def appoint(self, client: Client, data: Any) -> dict:
        if not client.creator:
            raise Refusal(403, "forbidden", "only the creator appoints moderators")
        target = await self._known_user(_int(data, "user_id", 1, 2**31 - 1))
        await self.set_moderator(client.room_id, client.room, client.user_id, target, not bool(data.get("remove")))
        return {}

    async def set_moderator(self, room_id: int, room: str, actor_id: int, target: int, on: bool) -> None:
        """Appoint (``on``) or dismiss a moderator of the room: stored, written to the room's
        moderation log, and in effect at once on the user's live sockets on every node."""
        async with self.db() as s:
            if on:
                s.add(RoomModerator(room_id=room_id, user_id=target))
            else:
                await s.execute(delete(RoomModerator).where(RoomModerator.room_id == room_id,
                                                            RoomModerator.user_id == target))
            try:
                await s.commit()
            except IntegrityError:
                await s.rollback()
        await self._record_as(room_id, actor_id, "appoint_moderator" if on else "dismiss_moderator", target)
        await self.bus.publish("moderator", room=room, user=target, on=on)

    async def moderators(self, room_id: int) -> list[int]:
        async with self.db() as s:
            return list((await s.execute(select(RoomModerator.user_id).where(RoomModerator.room_id == room_id)
                                         .order_by(RoomModerator.user_id))).scalars())

    async def _on_moderator(self, message: dict) -> None:
        """Appointments take effect at once on live sockets, on every node."""
        await self.server.set_moderator(message["room"], int(message["user"]), bool(message["on"]))

    async def audit(self, client: Client, data: Any) -> dict:
        async with self.db() as s:
            rows = (await s.execute(select(ModerationAction).where(ModerationAction.room_id == client.room_id)
                                    .order_by(ModerationAction.id.desc()).limit(100))).scalars().all()
        return {"actions": [{"actor": r.actor_id, "target": r.target_user_id, "action": r.action,
                             "detail": r.detail, "at": as_utc(r.created_at).isoformat(timespec="seconds")}
                            for r in rows]}
