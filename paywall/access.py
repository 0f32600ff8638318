"""``PaywallAccess``: the paywall's door (``core.access.Door``), from tickets and tokens.

* publish: the room's stream key (OBS) or a ``publish:<room>`` token minted for its creator;
* view: a ``view:<room>`` token, still backed by an active ticket (a refund revokes at
  once), a free room, the creator, or a free-preview window that ends the session;
* chat: a ``view:<room>`` or ``publish:<room>`` token, checked as that action;
* replay: a ``replay:<recording>`` token (``ReplayAccess``).

The configured open rooms (``STAGEPASS_ROOMS``) are published and viewed through their
``StreamKeyAccess``; their replays through ``replay:`` tokens, free to everyone.

``mint`` is the endpoint's logic: it checks the entitlement before signing anything.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from typing import Optional

from sqlalchemy.exc import IntegrityError

from core.access import Action, Grant, Refusal, StreamKeyAccess, Target, token_required
from core.timeutil import as_utc, utcnow

from .accounts import UserView
from .catalog import Catalog, RoomView
from .db import Database
from .models import PreviewUse, RevokedToken
from .orders import OrderBook
from .replays import ReplayAccess
from .tokens import TokenIssuer

__all__ = ["PaywallAccess"]


class PaywallAccess:
    def __init__(self, db: Database, catalog: Catalog, orders: OrderBook, tokens: TokenIssuer,
                 replays: ReplayAccess, open_rooms: Optional[StreamKeyAccess] = None) -> None:
        self.db = db
        self.catalog = catalog
        self.orders = orders
        self.tokens = tokens
        self.replays = replays
        self.open_rooms = open_rooms or StreamKeyAccess({})

    # ------------------------------------------------------------------ minting
    async def mint(self, user: UserView, slug: str, action: str) -> dict:
        room = await self.catalog.require(slug)
        if room.listing == "taken_down":
            raise Refusal(410, "taken_down", "this room was taken down by the platform")
        if room.listing != "listed" and user.id != room.creator_id and user.role != "admin":
            raise Refusal(403, "room_not_listed", "this room waits for the platform's review")
        if action == "publish":
            if user.id != room.creator_id and user.role != "admin":
                raise Refusal(403, "not_your_room", "only the room's creator can publish")
            token, claims = self.tokens.mint(user.id, f"publish:{slug}")
            return {"token": token, "scope": claims["scope"], "expires_at": claims["exp"]}
        if action != "view":
            raise Refusal(400, "invalid_scope", "scope: 'view' or 'publish'")
        extra: dict = {}
        if not await self._may_watch(user, room):
            extra["preview_until"] = await self._preview_window(user, room)
        token, claims = self.tokens.mint(user.id, f"view:{slug}", **extra)
        return {"token": token, "scope": claims["scope"], "expires_at": claims["exp"],
                "preview_until": extra.get("preview_until")}

    async def _may_watch(self, user: UserView, room: RoomView) -> bool:
        return (room.free or user.id == room.creator_id or user.role == "admin"
                or "ticket" in await self.orders.entitlements(user.id, room))

    async def _preview_window(self, user: UserView, room: RoomView) -> int:
        """Unix time the user's one free preview of this room ends (starting it if new)."""
        if room.preview_seconds <= 0:
            raise Refusal(402, "ticket_required", "this room needs a ticket")
        async with self.db() as s:
            s.add(PreviewUse(user_id=user.id, room_id=room.id))
            try:
                await s.commit()
            except IntegrityError:
                await s.rollback()
        async with self.db() as s:
            use = await s.get(PreviewUse, (user.id, room.id))
        until = as_utc(use.started_at) + dt.timedelta(seconds=room.preview_seconds)
        if until <= utcnow():
            raise Refusal(402, "preview_used", "your free preview of this room is over; buy a ticket")
        return math.ceil(until.timestamp())

    async def revoke(self, token: str) -> None:
        """Revoke a token before it expires (its ``jti`` is refused from now on)."""
        scope = TokenIssuer.scope_of(token)
        if not scope:
            raise Refusal(401, "invalid_token", "the access token is not valid")
        claims = self.tokens.verify(token, (scope,))
        async with self.db() as s:
            s.add(RevokedToken(jti=claims["jti"], expires_at=dt.datetime.fromtimestamp(claims["exp"], dt.timezone.utc)))
            try:
                await s.commit()
            except IntegrityError:
                await s.rollback()

    # ------------------------------------------------------------------ checking
    async def room_exists(self, room: str) -> bool:
        return await self.open_rooms.room_exists(room) or await self.catalog.get(room) is not None

    async def authorize(self, token: Optional[str], action: Action, target: Target) -> Grant:
        if action == "replay":
            return await self.replays.authorize(token, target)
        if action != "chat" and await self.open_rooms.room_exists(target.room):
            return await self.open_rooms.authorize(token, action, target)
        slug = target.room
        room = await self.catalog.get(slug)
        if room is None:
            raise Refusal(404, "room_not_found", f"no room named {slug!r}")
        if not token:
            raise token_required(action)
        if action == "publish" and token.count(".") != 2:
            if await self.catalog.stream_key_matches(slug, token):
                return Grant(user_id=room.creator_id)
            raise Refusal(403, "wrong_stream_key", f"this stream key does not allow publishing to {slug!r}")
        scopes = (f"view:{slug}", f"publish:{slug}") if action == "chat" else (f"{action}:{slug}",)
        claims = self.tokens.verify(token, scopes)
        async with self.db() as s:
            if await s.get(RevokedToken, claims["jti"]) is not None:
                raise Refusal(401, "token_revoked", "this access token was revoked")
        user_id = int(claims["sub"])
        scope = claims["scope"].partition(":")[0]
        if scope == "publish" or user_id == room.creator_id or room.free:
            return Grant(user_id=user_id)
        if "ticket" in await self.orders.entitlements(user_id, room):
            return Grant(user_id=user_id, seat_key=f"{slug}:{user_id}", seat_limit=room.max_devices)
        preview_until = claims.get("preview_until")
        if isinstance(preview_until, int) and not isinstance(preview_until, bool):
            left = preview_until - time.time()
            if left > 0:
                return Grant(user_id=user_id, seat_key=f"{slug}:{user_id}", seat_limit=1, ends_in=left)
            raise Refusal(403, "preview_over", "the free preview is over; buy a ticket")
        raise Refusal(403, "ticket_required", "no valid ticket for this room (refunded or never bought)")
