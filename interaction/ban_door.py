"""``BanDoor``: the access door, refusing players to users banned from the room.

A ban lives with the room's moderation (``interaction.models.RoomBan``), above the paywall
that issues tickets; so the assembly wraps the paywall's door in this one, and WHEP
answers 403 ``banned`` as the chat's connect does. Edges pulling a room (relay grants)
have no user and pass.
"""

from __future__ import annotations

from typing import Optional

from core.access import Action, Door, Grant, Refusal, Target
from interaction.moderation import Moderation
from paywall.catalog import Catalog

__all__ = ["BanDoor"]


class BanDoor:
    def __init__(self, inner: Door, catalog: Catalog, moderation: Moderation) -> None:
        self.inner, self.catalog, self.moderation = inner, catalog, moderation

    async def room_exists(self, room: str) -> bool:
        return await self.inner.room_exists(room)

    async def authorize(self, token: Optional[str], action: Action, target: Target) -> Grant:
        grant = await self.inner.authorize(token, action, target)
        if action == "view" and grant.user_id is not None and not grant.relay:
            room = await self.catalog.get(target.room)
            if room is not None and await self.moderation.is_banned(room.id, grant.user_id):
                raise Refusal(403, "banned", "you are banned from this room")
        return grant
