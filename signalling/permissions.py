"""Who may publish to or view a room: one small interface, replaceable.

``StreamKeyPermissions`` (this issue) is backed by configuration: a per-room stream key
authorizes publishing, viewing is open. The paywall replaces it with ticket-backed
access tokens behind the same ``Permissions`` protocol.
"""

from __future__ import annotations

import hmac
from typing import Literal, Optional, Protocol

__all__ = ["AccessDenied", "Action", "Permissions", "StreamKeyPermissions"]

Action = Literal["publish", "view"]


class AccessDenied(Exception):
    """``status`` is 401 (no or unusable credentials) or 403 (valid request, not allowed)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Permissions(Protocol):
    async def room_exists(self, room: str) -> bool: ...

    async def authorize(self, action: Action, room: str, token: Optional[str]) -> None:
        """Return if allowed; raise ``AccessDenied`` otherwise."""
        ...


class StreamKeyPermissions:
    def __init__(self, stream_keys: dict[str, str]) -> None:
        self._keys = dict(stream_keys)

    async def room_exists(self, room: str) -> bool:
        return room in self._keys

    async def authorize(self, action: Action, room: str, token: Optional[str]) -> None:
        if action == "view":
            return
        if not token:
            raise AccessDenied(401, "publishing needs 'Authorization: Bearer <stream key>'")
        expected = self._keys.get(room, "")
        if not hmac.compare_digest(token.encode(), expected.encode()):
            raise AccessDenied(403, f"this stream key does not allow publishing to {room!r}")
