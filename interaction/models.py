"""Interaction tables: danmaku, questions, polls, moderation. Same database and
migrations as the paywall (``paywall/migrations``). ``t_ms`` is the media clock:
milliseconds since the broadcast started, the clock recordings use.
"""

from __future__ import annotations

import datetime as dt
from typing import Optional

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.timeutil import utcnow
from paywall.db import Base, TZDateTime

__all__ = [
    "BlockedWord", "Comment", "CommentReport", "Danmaku", "ModerationAction", "Poll", "PollVote", "Question",
    "QuestionVote", "RoomBan", "RoomModerator",
]



class Danmaku(Base):
    __tablename__ = "danmaku"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"))
    broadcast: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    text: Mapped[str] = mapped_column(Text)
    color: Mapped[str] = mapped_column(String(7))
    mode: Mapped[str] = mapped_column(String(8))
    t_ms: Mapped[int] = mapped_column(BigInteger)
    sent_at: Mapped[dt.datetime] = mapped_column(TZDateTime, default=utcnow)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    __table_args__ = (
        Index("ix_danmaku_room_time", "room_id", "broadcast", "t_ms"),
        CheckConstraint("mode in ('scroll','top','bottom')", name="ck_danmaku_mode"),
    )


class Question(Base):
    __tablename__ = "questions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"))
    broadcast: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    text: Mapped[str] = mapped_column(Text)
    order_id: Mapped[Optional[str]] = mapped_column(ForeignKey("orders.id"), nullable=True)
    paid_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[Optional[str]] = mapped_column(String(3), nullable=True)
    status: Mapped[str] = mapped_column(String(12), default="open")
    votes: Mapped[int] = mapped_column(Integer, default=0)
    pinned: Mapped[bool] = mapped_column(Boolean, default=False)
    t_ms: Mapped[int] = mapped_column(BigInteger)
    answered_t_ms: Mapped[Optional[int]] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(TZDateTime, default=utcnow)
    __table_args__ = (
        Index("ix_questions_room", "room_id", "broadcast"),
        CheckConstraint(
            "status in ('open','answered','dismissed','withdrawn','deleted','refunded')",
            name="ck_questions_status",
        ),
    )


class QuestionVote(Base):
    __tablename__ = "question_votes"
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)


class Poll(Base):
    __tablename__ = "polls"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"))
    broadcast: Mapped[str] = mapped_column(String(32))
    question: Mapped[str] = mapped_column(Text)
    options: Mapped[str] = mapped_column(Text)  # JSON list of strings
    open: Mapped[bool] = mapped_column(Boolean, default=True)
    opened_t_ms: Mapped[int] = mapped_column(BigInteger)
    closed_t_ms: Mapped[Optional[int]] = mapped_column(BigInteger, nullable=True)
    results: Mapped[Optional[str]] = mapped_column(Text, nullable=True)  # JSON counts when closed


class PollVote(Base):
    __tablename__ = "poll_votes"
    poll_id: Mapped[int] = mapped_column(ForeignKey("polls.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    option: Mapped[int] = mapped_column(Integer)


class RoomModerator(Base):
    __tablename__ = "room_moderators"
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)


class RoomBan(Base):
    """A ban (``until`` null) or a mute (``until`` set) of a user in a room."""

    __tablename__ = "room_bans"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(8))  # ban | mute
    until: Mapped[Optional[dt.datetime]] = mapped_column(TZDateTime, nullable=True)
    __table_args__ = (Index("ix_room_bans_lookup", "room_id", "user_id", "kind"),)


class BlockedWord(Base):
    __tablename__ = "blocked_words"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    room_id: Mapped[Optional[int]] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), nullable=True)
    word: Mapped[str] = mapped_column(String(64))
    __table_args__ = (UniqueConstraint("room_id", "word", name="uq_blocked_words"),)


class ModerationAction(Base):
    """The audit log: who did what to whom, when."""

    __tablename__ = "moderation_actions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), index=True)
    actor_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    target_user_id: Mapped[Optional[int]] = mapped_column(ForeignKey("users.id"), nullable=True)
    action: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(TZDateTime, default=utcnow)


class Comment(Base):
    """A comment in the discussion under a replay (``recording``) or a room (``recording``
    empty). ``parent_id`` makes it a reply to a top-level comment (one level only)."""

    __tablename__ = "comments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"))
    recording: Mapped[str] = mapped_column(String(32), default="")
    parent_id: Mapped[Optional[int]] = mapped_column(ForeignKey("comments.id", ondelete="CASCADE"), nullable=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(TZDateTime, default=utcnow)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    #: hidden from everyone but moderators once enough users reported it, until reviewed
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    reports: Mapped[int] = mapped_column(Integer, default=0)
    __table_args__ = (Index("ix_comments_thread", "room_id", "recording", "id"),)


class CommentReport(Base):
    __tablename__ = "comment_reports"
    comment_id: Mapped[int] = mapped_column(ForeignKey("comments.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    reason: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(TZDateTime, default=utcnow)
