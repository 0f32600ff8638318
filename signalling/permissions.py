"""Who may publish to or view a room: one small interface, replaceable.

``StreamKeyPermissions`` (this issue) is backed by configuration: a per-room stream key
authorizes publishing, viewing is open. The paywall replaces it with ticket-backed
access tokens behind the same ``Permissions`` protocol.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Optional, Protocol

if TYPE_CHECKING:
    from aiohttp import web

__all__ = ["AccessDenied", "Action", "FirstMatch", "Grant", "Permissions", "StreamKeyPermissions", "bearer_token"]

Action = Literal["publish", "view"]


def bearer_token(request: "web.Request") -> Optional[str]:
    """The credential of an ``Authorization: Bearer <token>`` header, if there is one."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class AccessDenied(Exception):
    """``status`` is 401 (no or unusable credentials) or 403 (valid request, not allowed)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Grant:
    """What an allowed request may do, beyond starting.

    ``seat_key``/``seat_limit``: sessions sharing a key (one ticket) are limited, the oldest
    evicted. ``ends_in``: seconds until the session must end (a free preview). ``relay``:
    another node's edge pulling the room (a service token; not counted as a viewer).
    """

    user_id: Optional[int] = None
    seat_key: Optional[str] = None
    seat_limit: int = 1
    ends_in: Optional[float] = None
    relay: bool = False


class Permissions(Protocol):
    async def room_exists(self, room: str) -> bool: ...

    async def authorize(self, action: Action, room: str, token: Optional[str]) -> Grant:
        """Return the grant if allowed; raise ``AccessDenied`` otherwise."""
        ...


class StreamKeyPermissions:
    def __init__(self, stream_keys: dict[str, str]) -> None:
        self._keys = dict(stream_keys)

    async def room_exists(self, room: str) -> bool:
        return room in self._keys

    async def authorize(self, action: Action, room: str, token: Optional[str]) -> Grant:
        if action == "view":
            return Grant()
        if not token:
            raise AccessDenied(401, "publishing needs 'Authorization: Bearer <stream key>'")
        expected = self._keys.get(room, "")
        if not hmac.compare_digest(token.encode(), expected.encode()):
            raise AccessDenied(403, f"this stream key does not allow publishing to {room!r}")
        return Grant()


class FirstMatch:
    """Several permission sources; a room is decided by the first one that knows it
    (config-defined open rooms first, then the paywall's rooms)."""

    def __init__(self, *sources: Permissions) -> None:
        self.sources = sources

    async def room_exists(self, room: str) -> bool:
        return await self._source(room) is not None

    async def _source(self, room: str) -> Optional[Permissions]:
        for source in self.sources:
            if await source.room_exists(room):
                return source
        return None

    async def authorize(self, action: Action, room: str, token: Optional[str]) -> Grant:
        source = await self._source(room)
        if source is None:
            raise AccessDenied(403, "no such room")
        return await source.authorize(action, room, token)
