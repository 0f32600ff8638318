"""``Notifications``: followers hear of a creator's rooms, in the in-app inbox and by email.

Four kinds: ``scheduled`` (a room got a start time), ``reminder`` (it starts within
``reminder_minutes``), ``live`` (its broadcast started) and ``replay`` (its replay is ready).
Each event has a key (``live:<room id>:<broadcast id>``); a user gets one inbox row per
key (a unique constraint, so two nodes or a restart never announce twice), and email goes
only to the users whose row this call inserted. Users turn off a kind per channel
(``inbox`` hides it, ``email`` stops the mail); every email carries a signed one-click
unsubscribe link for its kind (RFC 8058 ``List-Unsubscribe-Post``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any, Iterable, Optional
from urllib.parse import quote

import jwt
from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from core.i18n import SUPPORTED, translate
from core.mail import Mailer, MailError
from core.tasks import TaskOwner
from core.timeutil import as_utc, iso_z, parse_instant, utcnow

from .accounts import UserView
from .catalog import RoomView, room_view
from .db import Database
from core.access import Refusal
from .follows import Follower, Follows
from .models import NOTIFICATION_KINDS, Notification, NotificationOptOut, Room

__all__ = ["CHANNELS", "KINDS", "Notifications"]

log = logging.getLogger("stagepass.notifications")

KINDS = NOTIFICATION_KINDS
CHANNELS = ("inbox", "email")
INBOX_PAGE = 50
_UNSUBSCRIBE_AUDIENCE = "unsubscribe"


def _room_link(room: RoomView) -> str:
    return f"/static/room.html?room={quote(room.slug)}"


class Notifications:
    """``base_url``: where links in email point (the public URL); ``mailer`` None: inbox only."""

    def __init__(self, db: Database, follows: Follows, secret: str, base_url: str,
                 mailer: Optional[Mailer] = None, reminder_minutes: int = 15) -> None:
        self.db = db
        self.follows = follows
        self.secret = secret
        self.base_url = base_url.rstrip("/")
        self.mailer = mailer
        self.reminder = dt.timedelta(minutes=reminder_minutes)
        self.tasks = TaskOwner(log)
        self.sent = 0  # emails the SMTP server accepted
        self._mail_lock = asyncio.Lock()  # one SMTP conversation at a time per node

    # ------------------------------------------------------------------ triggers
    async def room_scheduled(self, room: RoomView) -> int:
        if room.starts_at is None:
            return 0
        when = parse_instant(room.starts_at).strftime("%Y-%m-%d %H:%M UTC")
        return await self._announce(room, "scheduled", f"scheduled:{room.id}:{room.starts_at}",
                                    f"{room.title} is scheduled for {when}")

    async def room_live(self, slug: str, broadcast_id: str) -> int:
        room = await self._room(slug)
        if room is None:  # an open room of the configuration: nobody follows it
            return 0
        return await self._announce(room, "live", f"live:{room.id}:{broadcast_id}", f"{room.title} is live now")

    async def replay_ready(self, slug: str, broadcast_id: str) -> int:
        room = await self._room(slug)
        if room is None:
            return 0
        return await self._announce(room, "replay", f"replay:{room.id}:{broadcast_id}",
                                    f"The replay of {room.title} is ready")

    async def send_reminders(self, now: Optional[dt.datetime] = None) -> int:
        """Remind the followers of every room starting within the reminder window (once per
        room and start time); the number of inbox rows written."""
        now = now or utcnow()
        query = select(Room).where(Room.starts_at > now, Room.starts_at <= now + self.reminder)
        async with self.db() as s:
            rooms = list((await s.execute(query)).scalars())
        written = 0
        for row in rooms:
            room = room_view(row)
            minutes = max(1, round((as_utc(row.starts_at) - now).total_seconds() / 60))
            written += await self._announce(room, "reminder", f"reminder:{room.id}:{room.starts_at}",
                                            f"{room.title} starts in {minutes} minutes")
        return written

    async def run_reminders(self, interval: float) -> None:
        """Look for due reminders every ``interval`` seconds (a task of ``self.tasks``)."""
        while True:
            try:
                await self.send_reminders()
            except Exception:
                log.exception("notifications: a reminder round failed; the next one goes on")
            await asyncio.sleep(interval)

    def start(self, interval: float) -> None:
        self.tasks.spawn(self.run_reminders(interval), name="notification-reminders")

    async def close(self) -> None:
        """Stop the reminders and wait for email in flight (cancelled)."""
        await self.tasks.close()

    # ------------------------------------------------------------------ inbox
    async def inbox(self, user: UserView, limit: int = INBOX_PAGE) -> dict:
        """The newest notifications of the kinds ``user`` keeps in the inbox, and the unread count."""
        hidden = await self._opted_out(user.id, "inbox")
        shown = Notification.user_id == user.id
        if hidden:
            shown = shown & Notification.kind.not_in(hidden)
        async with self.db() as s:
            rows = (await s.execute(select(Notification, Room.title).where(shown)
                                    .outerjoin(Room, Room.id == Notification.room_id)
                                    .order_by(Notification.id.desc()).limit(limit))).all()
            unread = await s.scalar(select(func.count()).select_from(Notification)
                                    .where(shown, Notification.read_at.is_(None)))
        return {"notifications": [_as_dict(n, title) for n, title in rows], "unread": int(unread or 0)}

    async def mark_read(self, user: UserView, ids: Any) -> int:
        """Mark ``ids`` (a list of notification ids) or ``"all"`` read; the count changed."""
        query = update(Notification).where(Notification.user_id == user.id, Notification.read_at.is_(None))
        if ids != "all":
            if not isinstance(ids, list) or not ids or len(ids) > 500 or \
                    not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
                raise Refusal(400, "invalid_ids", 'ids: "all" or a list of 1 to 500 notification ids')
            query = query.where(Notification.id.in_(ids))
        async with self.db() as s:
            result = await s.execute(query.values(read_at=utcnow()))
            await s.commit()
        return int(result.rowcount or 0)

    # ------------------------------------------------------------------ preferences
    async def preferences(self, user_id: int) -> dict[str, dict[str, bool]]:
        async with self.db() as s:
            off = set((await s.execute(select(NotificationOptOut.kind, NotificationOptOut.channel)
                                       .where(NotificationOptOut.user_id == user_id))).all())
        return {kind: {channel: (kind, channel) not in off for channel in CHANNELS} for kind in KINDS}

    async def set_preferences(self, user_id: int, changes: Any) -> dict[str, dict[str, bool]]:
        """``{"live": {"email": false}, ...}``: each kind and channel named is turned on or off;
        anything else is refused whole."""
        if not isinstance(changes, dict) or not changes:
            raise Refusal(400, "invalid_preferences", 'a JSON object like {"live": {"email": false}}')
        wanted: list[tuple[str, str, bool]] = []
        for kind, channels in changes.items():
            if kind not in KINDS:
                raise Refusal(400, "unknown_kind", f"{kind!r}: one of {', '.join(KINDS)}")
            if not isinstance(channels, dict) or not channels:
                raise Refusal(400, "invalid_preferences", f"{kind}: an object like {{\"email\": false}}")
            for channel, on in channels.items():
                if channel not in CHANNELS:
                    raise Refusal(400, "unknown_channel", f"{channel!r}: one of {', '.join(CHANNELS)}")
                if not isinstance(on, bool):
                    raise Refusal(400, "invalid_preferences", f"{kind}.{channel}: true or false")
                wanted.append((kind, channel, on))
        async with self.db() as s:
            for kind, channel, on in wanted:
                await s.execute(delete(NotificationOptOut).where(
                    NotificationOptOut.user_id == user_id, NotificationOptOut.kind == kind,
                    NotificationOptOut.channel == channel))
                if not on:
                    s.add(NotificationOptOut(user_id=user_id, kind=kind, channel=channel))
            await s.commit()
        return await self.preferences(user_id)

    async def _opted_out(self, user_id: int, channel: str) -> list[str]:
        """The kinds ``user_id`` turned off on ``channel``."""
        prefs = await self.preferences(user_id)
        return [kind for kind, channels in prefs.items() if not channels[channel]]

    def unsubscribe_token(self, user_id: int, kind: str) -> str:
        return jwt.encode({"sub": str(user_id), "kind": kind, "aud": _UNSUBSCRIBE_AUDIENCE}, self.secret,
                          algorithm="HS256")

    def read_unsubscribe_token(self, token: str) -> tuple[int, str]:
        """(user id, kind) of a link of ``unsubscribe_token``; 400 for anything else."""
        try:
            claims = jwt.decode(token, self.secret, algorithms=["HS256"], audience=_UNSUBSCRIBE_AUDIENCE)
            user_id, kind = int(claims["sub"]), claims["kind"]
        except (jwt.InvalidTokenError, KeyError, ValueError, TypeError):
            raise Refusal(400, "invalid_unsubscribe_link", "this unsubscribe link is not valid") from None
        if kind not in KINDS:
            raise Refusal(400, "invalid_unsubscribe_link", "this unsubscribe link is not valid")
        return user_id, kind

    async def unsubscribe(self, token: str) -> tuple[int, str]:
        """Turn off the email of the kind the link names; (user id, kind)."""
        user_id, kind = self.read_unsubscribe_token(token)
        await self.set_preferences(user_id, {kind: {"email": False}})
        return user_id, kind

    # ------------------------------------------------------------------ the one way out
    async def _room(self, slug: str) -> Optional[RoomView]:
        async with self.db() as s:
            row = (await s.execute(select(Room).where(Room.slug == slug))).scalar_one_or_none()
        return room_view(row) if row is not None else None

    async def _announce(self, room: RoomView, kind: str, key: str, text: str) -> int:
        if room.listing != "listed":  # waits for review or was taken down: nothing to announce
            return 0
        followers = await self.follows.followers(room.creator_id)
        if not followers:
            return 0
        link = _room_link(room)
        now = utcnow()
        rows = [{"user_id": f.id, "kind": kind, "key": key, "room_id": room.id, "text": text, "link": link,
                 "created_at": now} for f in followers]
        dialect = sqlite if self.db.is_sqlite else postgresql
        insert = dialect.insert(Notification).values(rows).on_conflict_do_nothing(
            index_elements=["user_id", "key"]).returning(Notification.user_id)
        async with self.db() as s:
            fresh = set((await s.execute(insert)).scalars())
            no_email = {uid for (uid,) in (await s.execute(select(NotificationOptOut.user_id).where(
                NotificationOptOut.kind == kind, NotificationOptOut.channel == "email",
                NotificationOptOut.user_id.in_(fresh))))} if fresh else set()
            await s.commit()
        log.info("room %s: %s notification %s for %d followers", room.slug, kind, key, len(fresh))
        mail_to = [f for f in followers if f.id in fresh and f.id not in no_email]
        if self.mailer is not None and mail_to:
            # a follower's language is not known: the email says it in English, then in Chinese
            starts = parse_instant(room.starts_at).strftime("%Y-%m-%d %H:%M UTC") if room.starts_at else ""
            chinese = translate("zh-CN", f"inbox.{kind}", title=room.title, time=starts)
            self.tasks.spawn(self._mail(mail_to, kind, text, chinese, link), name=f"mail-{key}")
        return len(fresh)

    async def _mail(self, recipients: Iterable[Follower], kind: str, text: str, chinese: str, link: str) -> None:
        assert self.mailer is not None
        async with self._mail_lock:
            for follower in recipients:
                unsubscribe = f"{self.base_url}/api/notifications/unsubscribe?token={self.unsubscribe_token(follower.id, kind)}"
                footers = [translate(lang, "mail.footer", kind=translate(lang, f"notifications.{kind}")) for lang in SUPPORTED]
                body = (f"{text}\n{chinese}\n\n{self.base_url}{link}\n\n"
                        + "\n".join(footers) + f"\n{unsubscribe}\n")
                try:
                    await self.mailer.send(follower.email, text, body, headers={
                        "List-Unsubscribe": f"<{unsubscribe}>",
                        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                    })
                except MailError as exc:
                    log.warning("notification email to user %d (%s) failed: %s", follower.id, kind, exc)
                else:
                    self.sent += 1


def _as_dict(n: Notification, room_title: Optional[str] = None) -> dict:
    """``text`` is the English sentence; ``room_title`` and (scheduled, reminder) ``starts_at``
    let the pages say it in the reader's language (``inbox.<kind>`` in the catalogues)."""
    starts_at = n.key.split(":", 2)[2] if n.kind in ("scheduled", "reminder") and n.key.count(":") >= 2 else None
    return {"id": n.id, "kind": n.kind, "text": n.text, "link": n.link, "created_at": iso_z(n.created_at),
            "read": n.read_at is not None, "room_title": room_title, "starts_at": starts_at}
