"""``Catalog``: rooms as products (prices, preview, devices, schedule) and their coupons."""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from typing import Any, Iterable, Optional

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.settings import ROOM_NAME_RE

from .accounts import UserView
from .db import Database
from core.access import Refusal
from .models import Coupon, Room
from .money import check_amount, check_currency
from .search import MAX_QUERY_CHARS, ranked_room_ids
from core.timeutil import as_utc, parse_instant

__all__ = ["Catalog", "RoomView", "lock_room", "room_view"]

_EDITABLE = {
    "title", "description", "tags", "starts_at", "currency", "ticket_price", "replay_price",
    "replay_included", "preview_seconds", "max_devices", "allow_downloads", "embed_origins",
    "question_min_price", "watermark",
}
#: an origin that may frame the embeddable player: scheme, host, optional port, nothing else
_ORIGIN_RE = re.compile(r"^https?://[a-z0-9.-]+(:[0-9]{1,5})?$")
MAX_EMBED_ORIGINS = 10


@dataclass(frozen=True)
class RoomView:
    id: int
    slug: str
    creator_id: int
    title: str
    description: str
    tags: list[str]
    starts_at: Optional[str]
    currency: str
    ticket_price: int
    replay_price: Optional[int]
    replay_included: bool
    preview_seconds: int
    max_devices: int
    allow_downloads: bool = False
    #: origins allowed to frame the embeddable player (``["*"]``: any; empty: none)
    embed_origins: tuple[str, ...] = ()
    #: ``listed``, ``pending`` (waits for review), ``rejected`` or ``taken_down`` (``paywall.trust``)
    listing: str = "listed"
    #: the least a paid question costs in this room (minor units; 0: any amount)
    question_min_price: int = 0
    #: players overlay each viewer's masked id when the room is paid (``paywall.watermark``)
    watermark: bool = True

    @property
    def free(self) -> bool:
        return self.ticket_price == 0

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["free"] = self.free
        d["embed_origins"] = list(self.embed_origins)
        return d


async def lock_room(session: AsyncSession, room_id: int) -> None:
    """Hold the room's row until the caller's transaction ends: serialises changes of one room
    across nodes on PostgreSQL (SQLite locks the whole database anyway)."""
    await session.execute(select(Room.id).where(Room.id == room_id).with_for_update())


def room_view(room: Room) -> RoomView:
    starts = as_utc(room.starts_at)
    return RoomView(
        room.id, room.slug, room.creator_id, room.title, room.description, json.loads(room.tags),
        starts.isoformat().replace("+00:00", "Z") if starts else None, room.currency,
        room.ticket_price, room.replay_price, room.replay_included, room.preview_seconds,
        room.max_devices, bool(room.allow_downloads), tuple((room.embed_origins or "").split()),
        room.listing or "listed", int(room.question_min_price or 0), room.watermark is not False,
    )


def _clean_fields(data: dict[str, Any], creating: bool) -> dict[str, Any]:
    unknown = set(data) - _EDITABLE - ({"slug"} if creating else set())
    if unknown:
        raise Refusal(400, "unknown_field", f"unknown field(s): {', '.join(sorted(unknown))}")
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key == "slug":
            if not isinstance(value, str) or not ROOM_NAME_RE.match(value):
                raise Refusal(400, "invalid_slug", "slug: a-z, 0-9, '-', '_', 1-64 characters")
        elif key == "title":
            if not isinstance(value, str) or not 1 <= len(value.strip()) <= 200:
                raise Refusal(400, "invalid_title", "title: 1 to 200 characters")
            value = value.strip()
        elif key == "description":
            if not isinstance(value, str) or len(value) > 10000:
                raise Refusal(400, "invalid_description", "description: text up to 10000 characters")
        elif key == "tags":
            if (not isinstance(value, list) or len(value) > 10
                    or not all(isinstance(t, str) and 1 <= len(t) <= 32 for t in value)):
                raise Refusal(400, "invalid_tags", "tags: up to 10 strings of 1-32 characters")
            value = json.dumps([t.strip().lower() for t in value])
        elif key == "starts_at":
            if value is not None:
                try:
                    value = parse_instant(value) if isinstance(value, str) else None
                except ValueError as exc:
                    raise Refusal(400, "invalid_time", f"starts_at: {exc}") from None
                if value is None:
                    raise Refusal(400, "invalid_time", "starts_at: an ISO 8601 string")
        elif key == "currency":
            value = check_currency(value)
        elif key == "question_min_price":
            value = check_amount(value, field=key, allow_zero=True)
        elif key in ("ticket_price", "replay_price"):
            if value is not None or key == "ticket_price":
                value = check_amount(value, field=key, allow_zero=True)
        elif key in ("replay_included", "allow_downloads", "watermark"):
            if not isinstance(value, bool):
                raise Refusal(400, "invalid_flag", f"{key}: true or false")
        elif key == "preview_seconds":
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 3600:
                raise Refusal(400, "invalid_preview", "preview_seconds: 0 to 3600")
        elif key == "embed_origins":
            value = _clean_origins(value)
        elif key == "max_devices":
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 10:
                raise Refusal(400, "invalid_devices", "max_devices: 1 to 10")
        out[key] = value
    return out


def _clean_origins(value: Any) -> str:
    """``["https://blog.example.org"]`` or ``["*"]`` or ``[]`` -> the stored, space-separated form."""
    if (not isinstance(value, list) or len(value) > MAX_EMBED_ORIGINS
            or not all(isinstance(o, str) for o in value)):
        raise Refusal(400, "invalid_embed_origins",
                           f"embed_origins: a list of up to {MAX_EMBED_ORIGINS} origins, or [\"*\"]")
    origins = [o.strip().lower().rstrip("/") for o in value]
    if origins == ["*"]:
        return "*"
    for origin in origins:
        if not _ORIGIN_RE.match(origin):
            raise Refusal(400, "invalid_embed_origins",
                               f"embed_origins: {origin!r} is not an origin such as https://blog.example.org")
    return " ".join(dict.fromkeys(origins))


class Catalog:
    """``reserved``: the names of the configuration's open rooms (``STAGEPASS_ROOMS``), which
    share one namespace with the catalog's rooms and so are never created here."""

    def __init__(self, db: Database, reserved: Iterable[str] = ()) -> None:
        self.db = db
        self.reserved = frozenset(reserved)

    async def create_room(self, creator: UserView, data: dict[str, Any], listing: str = "listed") -> tuple[RoomView, str]:
        """A new room of ``creator``; ``listing`` ``pending`` keeps it out of the catalog until an
        admin approves it (``paywall.trust``)."""
        if creator.role not in ("creator", "admin"):
            raise Refusal(403, "not_a_creator", "only creators can create rooms")
        fields = _clean_fields(data, creating=True)
        for required in ("slug", "title", "currency"):
            if required not in fields:
                raise Refusal(400, "missing_field", f"{required} is required")
        if fields["slug"] in self.reserved:
            raise Refusal(409, "slug_reserved",
                               f"{fields['slug']!r} is an open room of this server's configuration; choose another name")
        fields.setdefault("ticket_price", 0)
        key = secrets.token_urlsafe(24)
        room = Room(creator_id=creator.id, stream_key=key, listing=listing, **fields)
        async with self.db() as s:
            s.add(room)
            try:
                await s.commit()
            except IntegrityError:
                raise Refusal(409, "slug_taken", f"a room named {fields['slug']!r} exists") from None
        return room_view(room), key

    async def edit_room(self, user: UserView, slug: str, data: dict[str, Any]) -> RoomView:
        fields = _clean_fields(data, creating=False)
        async with self.db() as s:
            room = await self._owned(s, user, slug)
            for key, value in fields.items():
                setattr(room, key, value)
            await s.commit()
            return room_view(room)

    async def rotate_stream_key(self, user: UserView, slug: str) -> str:
        async with self.db() as s:
            room = await self._owned(s, user, slug)
            room.stream_key = secrets.token_urlsafe(24)
            await s.commit()
            return room.stream_key

    async def stream_key(self, user: UserView, slug: str) -> str:
        async with self.db() as s:
            return (await self._owned(s, user, slug)).stream_key

    async def stream_key_matches(self, slug: str, key: str) -> bool:
        async with self.db() as s:
            room = (await s.execute(select(Room).where(Room.slug == slug))).scalar_one_or_none()
        return room is not None and secrets.compare_digest(room.stream_key.encode(), key.encode())

    async def room_for_stream_key(self, key: str) -> Optional[str]:
        """The slug of the room whose stream key this is (RTMP encoders send only the key)."""
        async with self.db() as s:
            room = (await s.execute(select(Room).where(Room.stream_key == key))).scalar_one_or_none()
        return room.slug if room is not None and secrets.compare_digest(room.stream_key.encode(), key.encode()) else None

    async def get(self, slug: str) -> Optional[RoomView]:
        async with self.db() as s:
            room = (await s.execute(select(Room).where(Room.slug == slug))).scalar_one_or_none()
        return room_view(room) if room else None

    async def by_id(self, room_id: int) -> Optional[RoomView]:
        async with self.db() as s:
            room = await s.get(Room, room_id)
        return room_view(room) if room else None

    async def require(self, slug: str) -> RoomView:
        room = await self.get(slug)
        if room is None:
            raise Refusal(404, "room_not_found", f"no room named {slug!r}")
        return room

    async def named(self, slugs: Iterable[str]) -> list[RoomView]:
        """The catalog's rooms among ``slugs`` (names the configuration also uses, at start)."""
        async with self.db() as s:
            rows = (await s.execute(select(Room).where(Room.slug.in_(set(slugs))).order_by(Room.slug))).scalars()
            return [room_view(r) for r in rows]

    async def list(self, creator_id: Optional[int] = None, listed_only: bool = True) -> list[RoomView]:
        """Rooms (of ``creator_id``), only the listed ones unless ``listed_only`` is False."""
        query = select(Room).order_by(Room.id)
        if creator_id is not None:
            query = query.where(Room.creator_id == creator_id)
        if listed_only:
            query = query.where(Room.listing == "listed")
        async with self.db() as s:
            return [room_view(r) for r in (await s.execute(query)).scalars()]

    async def search(self, query: str) -> list[RoomView]:
        """Rooms matching every word of ``query`` (slug, title, tags, description), best
        first, ranked by the database's full-text search (``paywall.search``)."""
        if len(query) > MAX_QUERY_CHARS:
            raise Refusal(400, "invalid_query", f"q: at most {MAX_QUERY_CHARS} characters")
        async with self.db() as s:
            ids = await ranked_room_ids(s, query)
            rooms = {r.id: r for r in (await s.execute(
                select(Room).where(Room.id.in_(ids), Room.listing == "listed"))).scalars()} if ids else {}
        return [room_view(rooms[i]) for i in ids if i in rooms]

    async def rooms_of(self, user: UserView) -> list[RoomView]:
        """The rooms ``user`` created (the studio's "my rooms"); only creators and admins have any."""
        if user.role not in ("creator", "admin"):
            raise Refusal(403, "not_a_creator", "only creators have rooms")
        return await self.list(creator_id=user.id, listed_only=False)

    async def _owned(self, s, user: UserView, slug: str) -> Room:
        room = (await s.execute(select(Room).where(Room.slug == slug))).scalar_one_or_none()
        if room is None:
            raise Refusal(404, "room_not_found", f"no room named {slug!r}")
        if room.creator_id != user.id and user.role != "admin":
            raise Refusal(403, "not_your_room", "only the room's creator can do this")
        return room

    async def add_coupon(self, user: UserView, slug: str, data: dict[str, Any]) -> dict:
        code = data.get("code")
        kind = data.get("kind")
        value = data.get("value")
        if not isinstance(code, str) or not 3 <= len(code) <= 32 or not code.replace("-", "").isalnum():
            raise Refusal(400, "invalid_code", "code: 3-32 letters, digits or '-'")
        if kind not in ("percent", "fixed"):
            raise Refusal(400, "invalid_kind", "kind: 'percent' or 'fixed'")
        if kind == "percent" and (not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 100):
            raise Refusal(400, "invalid_value", "a percent coupon takes 1 to 100")
        if kind == "fixed":
            value = check_amount(value, field="value")
        max_uses = data.get("max_uses")
        if max_uses is not None and (not isinstance(max_uses, int) or isinstance(max_uses, bool) or max_uses < 1):
            raise Refusal(400, "invalid_max_uses", "max_uses: a positive integer or null")
        expires = data.get("expires_at")
        try:
            expires = parse_instant(expires) if expires is not None else None
        except (ValueError, AttributeError):
            raise Refusal(400, "invalid_time", "expires_at: ISO 8601 with a zone") from None
        async with self.db() as s:
            room = await self._owned(s, user, slug)
            coupon = Coupon(room_id=room.id, code=code.upper(), kind=kind, value=value,
                            expires_at=expires, max_uses=max_uses)
            s.add(coupon)
            try:
                await s.commit()
            except IntegrityError:
                raise Refusal(409, "coupon_exists", f"coupon {code!r} exists in this room") from None
        return _coupon_dict(coupon)

    async def coupons(self, user: UserView, slug: str) -> list[dict]:
        """The room's coupons, newest first (its creator or an admin)."""
        async with self.db() as s:
            room = await self._owned(s, user, slug)
            rows = (await s.execute(select(Coupon).where(Coupon.room_id == room.id).order_by(Coupon.id.desc()))).scalars()
            return [_coupon_dict(c) for c in rows]

    async def set_coupon_active(self, user: UserView, slug: str, code: str, data: dict[str, Any]) -> dict:
        """``{active: false}`` disables a coupon (new orders are refused it), ``true`` enables it again."""
        if set(data) != {"active"} or not isinstance(data["active"], bool):
            raise Refusal(400, "invalid_active", "send {\"active\": true|false}")
        async with self.db() as s:
            room = await self._owned(s, user, slug)
            coupon = (await s.execute(select(Coupon).where(Coupon.room_id == room.id, Coupon.code == code.upper()))
                      ).scalar_one_or_none()
            if coupon is None:
                raise Refusal(404, "coupon_not_found", f"no coupon {code!r} for this room")
            coupon.active = data["active"]
            await s.commit()
            return _coupon_dict(coupon)


def _coupon_dict(coupon: Coupon) -> dict:
    expires = as_utc(coupon.expires_at)
    return {"code": coupon.code, "kind": coupon.kind, "value": coupon.value, "max_uses": coupon.max_uses,
            "uses": coupon.uses or 0, "active": coupon.active is not False,
            "expires_at": expires.isoformat().replace("+00:00", "Z") if expires else None}
