"""``Follows``: who follows which creator (followers are notified of the creator's rooms)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from .accounts import UserView
from .db import Database
from core.access import Refusal
from .models import Follow, User

__all__ = ["Follower", "Follows"]


@dataclass(frozen=True)
class Follower:
    id: int
    email: str


class Follows:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def require_creator(self, creator_id: int) -> User:
        """The creator's row, or 404 ``creator_not_found`` (viewers have no creator page)."""
        async with self.db() as s:
            user = await s.get(User, creator_id)
        if user is None or user.role not in ("creator", "admin"):
            raise Refusal(404, "creator_not_found", f"no creator with id {creator_id}")
        return user

    async def follow(self, user: UserView, creator_id: int) -> int:
        """Follow ``creator_id`` (idempotent); the creator's follower count after it."""
        if user.id == creator_id:
            raise Refusal(400, "cannot_follow_self", "you cannot follow yourself")
        await self.require_creator(creator_id)
        async with self.db() as s:
            if await s.get(Follow, (user.id, creator_id)) is None:
                s.add(Follow(follower_id=user.id, creator_id=creator_id))
                try:
                    await s.commit()
                except IntegrityError:  # a second request of the same user won the race
                    await s.rollback()
        return await self.count(creator_id)

    async def unfollow(self, user: UserView, creator_id: int) -> int:
        """Stop following (idempotent); the creator's follower count after it."""
        await self.require_creator(creator_id)
        async with self.db() as s:
            await s.execute(delete(Follow).where(Follow.follower_id == user.id, Follow.creator_id == creator_id))
            await s.commit()
        return await self.count(creator_id)

    async def count(self, creator_id: int) -> int:
        async with self.db() as s:
            return int(await s.scalar(select(func.count()).select_from(Follow).where(Follow.creator_id == creator_id)))

    async def is_following(self, user_id: int, creator_id: int) -> bool:
        async with self.db() as s:
            return await s.get(Follow, (user_id, creator_id)) is not None

    async def followers(self, creator_id: int) -> list[Follower]:
        """Everyone who follows ``creator_id`` with their email (for notifications only)."""
        query = (select(User.id, User.email).join(Follow, Follow.follower_id == User.id)
                 .where(Follow.creator_id == creator_id).order_by(User.id))
        async with self.db() as s:
            return [Follower(uid, email) for uid, email in (await s.execute(query)).all()]

    async def following(self, user: UserView) -> list[dict]:
        """The creators ``user`` follows: ``[{"id", "display_name"}]``."""
        query = (select(User.id, User.display_name).join(Follow, Follow.creator_id == User.id)
                 .where(Follow.follower_id == user.id).order_by(User.display_name))
        async with self.db() as s:
            return [{"id": uid, "display_name": name} for uid, name in (await s.execute(query)).all()]
