"""The one door for access: its vocabulary, shared by every edge and by the paywall.

Every door (WHIP, WHEP, Socket.IO, the replay files) asks one ``Door.authorize(token,
action, target)`` and gets a ``Grant`` or a ``Refusal``. The refusal keeps the status,
code and message of the place that refused all the way to the client: HTTP answers
``{"error": {"code", "message"}}`` with ``status`` (``core.access_http``), Socket.IO acks
``{"ok": false, "error": {"code", "message"}}`` and refuses a connection with
``{"code", "message"}`` as its ``connect_error`` data.

The paywall's door (``paywall.access.PaywallAccess``) checks tickets, tokens, previews and
seats; without the paywall, ``StreamKeyAccess`` (configured open rooms: a stream key to
publish, viewing open) implements the same ``Door``.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Literal, Mapping, Optional, Protocol

__all__ = ["Action", "Door", "Grant", "Refusal", "StreamKeyAccess", "Target", "bearer_token", "token_required"]

#: publish (WHIP), view (WHEP), chat (Socket.IO, with a view or publish token), replay (HLS files)
Action = Literal["publish", "view", "chat", "replay"]


class Refusal(Exception):
    """A refused request: HTTP ``status``, a stable ``code`` and a readable ``message``.

    Raised where the decision is taken and passed through unchanged to the client."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def error(self) -> dict:
        """``{"code", "message"}``: the error object of every envelope."""
        return {"code": self.code, "message": self.message}

    def envelope(self) -> dict:
        """The HTTP body: ``{"error": {"code", "message"}}``."""
        return {"error": self.error()}

    def ack(self) -> dict:
        """The Socket.IO ack: ``{"ok": false, "error": {"code", "message"}}``."""
        return {"ok": False, "error": self.error()}

    def __repr__(self) -> str:
        return f"Refusal({self.status}, {self.code!r}, {self.message!r})"


@dataclass(frozen=True)
class Target:
    """What an action is on: a room, and for ``replay`` one of its recordings."""

    room: str
    recording: Optional[str] = None


@dataclass(frozen=True)
class Grant:
    """What an allowed request may do, beyond starting.

    ``seat_key``/``seat_limit``: sessions sharing a key (one ticket) are limited, the
    oldest evicted. ``ends_in``: seconds until a live session must end (a free preview).
    ``preview_ms``: a replay is watchable up to there (None: all of it); ``downloads``:
    the whole replay may be downloaded. ``relay``: another node's edge pulling the room
    (a relay token: no ticket, no seat, not counted as a viewer).
    """

    user_id: Optional[int] = None
    seat_key: Optional[str] = None
    seat_limit: int = 1
    ends_in: Optional[float] = None
    preview_ms: Optional[int] = None
    downloads: bool = False
    relay: bool = False

    def allows(self, t_ms: int) -> bool:
        """May the replay be watched at ``t_ms``?"""
        return self.preview_ms is None or t_ms < self.preview_ms


class Door(Protocol):
    async def room_exists(self, room: str) -> bool: ...

    async def authorize(self, token: Optional[str], action: Action, target: Target) -> Grant:
        """The grant if allowed; raise ``Refusal`` otherwise (and change nothing)."""
        ...


class _Headers(Protocol):
    headers: Mapping[str, str]


def bearer_token(request: _Headers) -> Optional[str]:
    """The credential of an ``Authorization: Bearer <token>`` header, if there is one."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def token_required(action: Action) -> Refusal:
    """The refusal of a request that brought no credential at all."""
    if action == "replay":
        return Refusal(401, "token_required", "replay files need ?token=<replay token> (or 'Authorization: Bearer')")
    if action == "chat":
        return Refusal(401, "token_required", "connect to the chat with auth {room, token: <access token>}")
    what = "publishing" if action == "publish" else "watching"
    return Refusal(401, "token_required", f"{what} needs 'Authorization: Bearer <access token>'")


class StreamKeyAccess:
    """The door of the configured open rooms (``STAGEPASS_ROOMS``): a room's stream key
    publishes, anyone views. Used alone without the paywall, and by the paywall's door for
    these rooms."""

    def __init__(self, stream_keys: Mapping[str, str]) -> None:
        self._keys = dict(stream_keys)

    async def room_exists(self, room: str) -> bool:
        return room in self._keys

    async def authorize(self, token: Optional[str], action: Action, target: Target) -> Grant:
        if target.room not in self._keys:
            raise Refusal(404, "room_not_found", f"no room named {target.room!r}")
        if action == "view":
            return Grant()
        if action != "publish":
            raise Refusal(404, "not_found", f"the open room {target.room!r} has no {action}")
        if not token:
            raise token_required(action)
        if not hmac.compare_digest(token.encode(), self._keys[target.room].encode()):
            raise Refusal(403, "wrong_stream_key", f"this stream key does not allow publishing to {target.room!r}")
        return Grant()
