"""``CreatorPages``: a creator's public page (bio, upcoming and past rooms, followers, rating) and
the bio the creator writes for it."""

from __future__ import annotations

from typing import Optional


from core.timeutil import as_utc, parse_instant, utcnow

from .accounts import UserView
from .catalog import Catalog
from .db import Database
from core.access import Refusal
from .follows import Follows
from .models import CreatorProfile
from .reviews import Reviews

__all__ = ["BIO_MAX_CHARS", "CreatorPages"]

BIO_MAX_CHARS = 2000


class CreatorPages:
    def __init__(self, db: Database, catalog: Catalog, follows: Follows, reviews: Reviews) -> None:
        self.db = db
        self.catalog = catalog
        self.follows = follows
        self.reviews = reviews

    async def page(self, creator_id: int, viewer: Optional[UserView] = None) -> dict:
        """The public page: ``upcoming`` rooms (soonest first) and ``past`` rooms (latest first);
        ``following`` tells a logged-in viewer whether they follow."""
        creator = await self.follows.require_creator(creator_id)
        async with self.db() as s:
            profile = await s.get(CreatorProfile, creator_id)
        now = utcnow()
        upcoming, past = [], []
        for room in await self.catalog.list(creator_id=creator_id):
            (upcoming if room.starts_at and parse_instant(room.starts_at) >= now else past).append(room)
        upcoming.sort(key=lambda r: r.starts_at or "")
        past.sort(key=lambda r: (r.starts_at or "", r.id), reverse=True)
        page = {
            "creator": {"id": creator.id, "display_name": creator.display_name,
                        "bio": profile.bio if profile else "",
                        "since": as_utc(creator.created_at).date().isoformat()},
            "followers": await self.follows.count(creator_id),
            "rating": await self.reviews.creator_rating(creator_id),
            "upcoming": [r.as_dict() for r in upcoming],
            "past": [r.as_dict() for r in past],
        }
        if viewer is not None:
            page["following"] = await self.follows.is_following(viewer.id, creator_id)
        return page

    async def set_bio(self, user: UserView, bio: object) -> str:
        if user.role not in ("creator", "admin"):
            raise Refusal(403, "not_a_creator", "only creators have a public page")
        if not isinstance(bio, str) or len(bio) > BIO_MAX_CHARS:
            raise Refusal(400, "invalid_bio", f"bio: a string of at most {BIO_MAX_CHARS} characters")
        async with self.db() as s:
            profile = await s.get(CreatorProfile, user.id)
            if profile is None:
                s.add(CreatorProfile(user_id=user.id, bio=bio))
            else:
                profile.bio = bio
            await s.commit()
        return bio
