"""``ReplayAccess``: who may watch (or download) a room's recordings, as ``replay:`` tokens.

A recording is sold through its room: the replay product (``replay`` or ``bundle``
orders), or a ticket when the room has ``replay_included``. The creator and admins
always may; a free room (no ticket price) whose replay is not sold separately is free.
Anyone else gets the room's free preview (``preview_seconds`` of the replay, as often as
they like: the preview playlist simply ends there) or ``402``.

Tokens are ``replay:<recording>`` JWTs from the ``TokenIssuer`` (short-lived; the player
renews them); claims ``preview_ms`` (absent = the whole replay) and ``dl`` (downloads).
Every request re-checks the entitlement, so a refund stops playback at the next segment.
Recordings of open rooms (``STAGEPASS_ROOMS``, not in the catalog) are free to everyone.
"""

from __future__ import annotations

from typing import Optional

from core.access import Grant, Refusal, Target, token_required

from .accounts import UserView
from .catalog import Catalog, RoomView
from .db import Database
from .models import RevokedToken, User
from .orders import OrderBook
from .tokens import TokenIssuer
from .watermark import watermark_for

__all__ = ["ReplayAccess", "ANONYMOUS"]

#: ``sub`` of tokens minted for visitors who are not logged in (open rooms only)
ANONYMOUS = 0


def _free(room: RoomView) -> bool:
    """A free room whose replay is not sold separately: its replays are free too."""
    return room.free and not room.replay_price


def _covers(held: set[str], room: RoomView) -> bool:
    """Do these entitlements include the room's replays?"""
    return "replay" in held or ("ticket" in held and room.replay_included)


class ReplayAccess:
    def __init__(self, db: Database, catalog: Catalog, orders: OrderBook, tokens: TokenIssuer) -> None:
        self.db = db
        self.catalog = catalog
        self.orders = orders
        self.tokens = tokens

    async def owns(self, user: Optional[UserView], room: Optional[RoomView]) -> bool:
        """May ``user`` watch all of ``room``'s replays?"""
        if room is None:
            return True
        if _free(room):
            return True
        if user is None:
            return False
        if user.id == room.creator_id or user.role == "admin":
            return True
        return await self._entitled(user.id, room)

    async def _entitled(self, user_id: int, room: RoomView) -> bool:
        return _covers(await self.orders.entitlements(user_id, room), room)

    async def offer(self, user: Optional[UserView], room: Optional[RoomView]) -> dict:
        """What the replay page shows before playing: owned, price, preview, downloads."""
        owned = await self.owns(user, room)
        if room is None:
            return {"owned": True, "price": None, "currency": None, "replay_included": False, "ticket_price": None,
                    "preview_seconds": 0, "downloads": False, "for_sale": False}
        return {
            "owned": owned,
            "price": room.replay_price,
            "currency": room.currency,
            "replay_included": room.replay_included,
            "ticket_price": room.ticket_price,
            "preview_seconds": room.preview_seconds,
            "downloads": owned and room.allow_downloads,
            "for_sale": room.replay_price is not None,
            "watermark": watermark_for(user, room),
        }

    async def mint(self, user: Optional[UserView], recording_id: str, room: Optional[RoomView]) -> dict:
        """A ``replay:<recording>`` token, full or preview; 401/402 when neither applies."""
        owned = await self.owns(user, room)
        extra: dict = {}
        if not owned:
            if user is None:
                raise Refusal(401, "login_required", "log in to watch this replay")
            assert room is not None
            if room.preview_seconds <= 0:
                raise Refusal(402, "replay_required", "this replay needs a purchase")
            extra["preview_ms"] = room.preview_seconds * 1000
        downloads = owned and room is not None and room.allow_downloads
        if downloads:
            extra["dl"] = True
        token, claims = self.tokens.mint(user.id if user else ANONYMOUS, f"replay:{recording_id}", **extra)
        return {"token": token, "scope": claims["scope"], "expires_at": claims["exp"],
                "preview_ms": extra.get("preview_ms"), "downloads": downloads}

    async def authorize(self, token: Optional[str], target: Target) -> Grant:
        """The grant of a valid, unrevoked ``replay:<recording>`` token still backed by the
        entitlement (the door's ``replay`` action).

        Called for every segment: the checks share one database session."""
        if not token:
            raise token_required("replay")
        claims = self.tokens.verify(token, (f"replay:{target.recording}",))
        user_id = int(claims["sub"])
        preview = claims.get("preview_ms")
        if preview is not None and (not isinstance(preview, int) or isinstance(preview, bool) or preview <= 0):
            raise Refusal(401, "invalid_token", "the access token is not valid")
        room = await self.catalog.get(target.room)
        if room is not None and room.listing == "taken_down":
            raise Refusal(410, "taken_down", "this replay was taken down by the platform")
        paid = room is not None and not _free(room)
        async with self.db() as s:
            if await s.get(RevokedToken, claims["jti"]) is not None:
                raise Refusal(401, "token_revoked", "this access token was revoked")
            if preview is not None:
                return Grant(user_id=user_id, preview_ms=preview)
            if paid and room is not None and user_id != room.creator_id:
                if user_id == ANONYMOUS:
                    raise Refusal(403, "replay_required", "this replay needs a purchase")
                held = await self.orders.entitlements(user_id, room, session=s)
                if not _covers(held, room):
                    user = await s.get(User, user_id)
                    if user is None or user.role != "admin":
                        raise Refusal(403, "replay_required",
                                      "no replay purchase for this room (refunded or never bought)")
        downloads = bool(claims.get("dl")) and room is not None and room.allow_downloads
        return Grant(user_id=user_id, downloads=downloads)
