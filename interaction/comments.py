"""``CommentService``: the discussion under each replay and each room, apart from the
time-stamped danmaku.

Threads are one level deep: a comment is top-level or a reply to a top-level comment.
Posting goes through the same moderation as danmaku (bans, mutes, the room's and the
server's blocked words) and a per-user rate limit. Any logged-in user may report a
comment once; at ``REPORTS_TO_HIDE`` reports it is hidden from everyone but moderators
(the creator, admins, appointed moderators) until one of them keeps or deletes it. Every
moderator decision is written to the moderation audit log. Who may read and write a
thread (a replay's is for those who own the replay) is decided by the HTTP edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from core.timeutil import as_utc
from paywall.accounts import public_names

from .models import Comment, CommentReport, ModerationAction
from .moderation import Moderation
from .ratelimit import UserBuckets

__all__ = ["CommentError", "CommentService", "MAX_CHARS", "REPORTS_TO_HIDE"]

MAX_CHARS = 1000
REPORTS_TO_HIDE = 3
MAX_REASON = 200


class CommentError(Exception):
    """A refused request: ``status``, ``code`` and a message for the user."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class _Poster:  # what ``UserBuckets`` keys on
    room: str
    user_id: int


class CommentService:
    def __init__(self, moderation: Moderation, rate: float = 0.2, burst: int = 3) -> None:
        self.moderation = moderation
        self.buckets = UserBuckets(rate, burst)  # 3 at once, then one every 5 s

    @property
    def db(self):
        return self.moderation.db

    async def thread(self, room_id: int, recording: str, viewer_id: Optional[int], moderator: bool) -> list[dict]:
        """Top-level comments newest first, each with its replies oldest first. Deleted
        comments with replies stay as placeholders; hidden ones only for moderators."""
        names = public_names()
        query = (select(Comment, names.c.display_name).join(names, names.c.user_id == Comment.user_id)
                 .where(Comment.room_id == room_id, Comment.recording == recording).order_by(Comment.id))
        async with self.db() as s:
            rows = (await s.execute(query)).all()
            reported = set()
            if viewer_id is not None and rows:
                reported = set((await s.execute(select(CommentReport.comment_id).where(
                    CommentReport.user_id == viewer_id,
                    CommentReport.comment_id.in_([c.id for c, _ in rows])))).scalars())
        tops: dict[int, dict] = {}
        for c, name in rows:
            if c.hidden and not moderator:
                continue
            item = self._item(c, name, viewer_id, moderator, c.id in reported)
            if c.parent_id is None:
                tops[c.id] = {**item, "replies": []}
            elif c.parent_id in tops and not c.deleted:
                tops[c.parent_id]["replies"].append(item)
        return [t for t in reversed(tops.values()) if not t["deleted"] or t["replies"]]

    @staticmethod
    def _item(c: Comment, name: str, viewer_id: Optional[int], moderator: bool, reported: bool) -> dict:
        item = {
            "id": c.id, "parent": c.parent_id, "deleted": c.deleted,
            "text": "" if c.deleted else c.text,
            "user": None if c.deleted else {"id": c.user_id, "name": name},
            "created_at": as_utc(c.created_at).isoformat(timespec="seconds"),
            "mine": viewer_id == c.user_id, "reported": reported,
        }
        if moderator:
            item.update(hidden=c.hidden, reports=c.reports)
        return item

    async def post(self, room_id: int, room_slug: str, recording: str, user_id: int, text: object,
                   parent: object = None) -> dict:
        if not isinstance(text, str) or not text.strip():
            raise CommentError(400, "invalid_comment", "text: the comment, not empty")
        text = text.strip()
        if len(text) > MAX_CHARS:
            raise CommentError(400, "invalid_comment", f"text: at most {MAX_CHARS} characters")
        if parent is not None and (not isinstance(parent, int) or isinstance(parent, bool)):
            raise CommentError(400, "invalid_parent", "parent: the id of a comment of this discussion")
        await self._check_author(room_id, user_id, text)
        async with self.db() as s:
            if parent is not None:
                top = await s.get(Comment, parent)
                if (top is None or top.room_id != room_id or top.recording != recording or top.deleted
                        or top.hidden):
                    raise CommentError(400, "invalid_parent", "parent: no such comment in this discussion")
                if top.parent_id is not None:
                    raise CommentError(400, "invalid_parent", "replies are one level deep: reply to the comment")
            if not self.buckets.take(_Poster(room_slug, user_id)):
                raise CommentError(429, "rate_limited", "too many comments: wait a few seconds")
            comment = Comment(room_id=room_id, recording=recording, parent_id=parent, user_id=user_id, text=text)
            s.add(comment)
            await s.commit()
            await s.refresh(comment)
        return {"id": comment.id, "parent": comment.parent_id, "text": comment.text}

    async def _check_author(self, room_id: int, user_id: int, text: str) -> None:
        moderation = self.moderation
        if await moderation.is_banned(room_id, user_id):
            raise CommentError(403, "banned", "you are banned from this room")
        until = await moderation.muted_until(room_id, user_id)
        if until is not None:
            raise CommentError(403, "muted", f"you are muted until {until.isoformat(timespec='seconds')}")
        lowered = text.lower()
        for word in await moderation.blocked_words(room_id):
            if word in lowered:
                raise CommentError(400, "blocked_word", f"the comment contains a blocked word ({word!r})")

    async def get(self, comment_id: int) -> Optional[Comment]:
        async with self.db() as s:
            return await s.get(Comment, comment_id)

    async def delete(self, comment: Comment, actor_id: int, moderator: bool) -> None:
        if comment.user_id != actor_id and not moderator:
            raise CommentError(403, "forbidden", "only its author and the room's moderators can delete a comment")
        async with self.db() as s:
            await s.execute(update(Comment).where(Comment.id == comment.id).values(deleted=True, hidden=False))
            if comment.user_id != actor_id:
                s.add(ModerationAction(room_id=comment.room_id, actor_id=actor_id, target_user_id=comment.user_id,
                                       action="delete_comment", detail=str(comment.id)))
            await s.commit()

    async def report(self, comment: Comment, user_id: int, reason: object) -> dict:
        if reason is None:
            reason = ""
        if not isinstance(reason, str) or len(reason) > MAX_REASON:
            raise CommentError(400, "invalid_report", f"reason: text of at most {MAX_REASON} characters")
        if comment.user_id == user_id:
            raise CommentError(400, "invalid_report", "you cannot report your own comment")
        if comment.deleted:
            raise CommentError(404, "comment_not_found", "no such comment")
        async with self.db() as s:
            s.add(CommentReport(comment_id=comment.id, user_id=user_id, reason=reason.strip()))
            try:
                await s.flush()
            except IntegrityError:
                raise CommentError(409, "already_reported", "you already reported this comment") from None
            current = await s.get(Comment, comment.id)
            assert current is not None
            current.reports += 1
            if current.reports >= REPORTS_TO_HIDE:
                current.hidden = True
            hidden = current.hidden
            await s.commit()
        return {"reported": comment.id, "hidden": hidden}

    async def review(self, comment: Comment, actor_id: int, action: object) -> None:
        """A moderator keeps a reported comment (visible again, reports cleared) or deletes it."""
        if action not in ("keep", "delete"):
            raise CommentError(400, "invalid_review", "action: 'keep' or 'delete'")
        values = {"hidden": False, "reports": 0} if action == "keep" else {"deleted": True, "hidden": False}
        async with self.db() as s:
            await s.execute(update(Comment).where(Comment.id == comment.id).values(**values))
            s.add(ModerationAction(room_id=comment.room_id, actor_id=actor_id, target_user_id=comment.user_id,
                                   action=f"{action}_comment", detail=str(comment.id)))
            await s.commit()
