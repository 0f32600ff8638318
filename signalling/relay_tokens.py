"""Service tokens with which one node pulls a room from another over WHEP.

An edge node plays a room on its origin like any viewer, with a bearer token that only
nodes of the deployment can make: signed (HMAC-SHA256) with the shared
``STAGEPASS_SECRET``, naming the room and the pulling node, valid ``RELAY_TOKEN_SECONDS``.
``RelayDoor`` puts this door in front of the ordinary one: a valid relay token
grants viewing one room with no seat (the origin sees one viewer per edge node); a
forged, expired or other room's token is refused; any other token goes to the
ordinary permissions unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Optional

from core.access import Action, Door, Grant, Refusal, Target

__all__ = ["RELAY_PREFIX", "RELAY_TOKEN_SECONDS", "RelayDoor", "RelayTokens"]

RELAY_PREFIX = "relay."
#: long enough for one WHEP exchange; a token is made for each pull
RELAY_TOKEN_SECONDS = 60.0


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class RelayTokens:
    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"stagepass relay\0" + secret.encode()).digest()

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())

    def issue(self, room: str, node: str, ttl: float = RELAY_TOKEN_SECONDS, now: Optional[float] = None) -> str:
        body = _b64(json.dumps({"room": room, "node": node,
                                "exp": (time.time() if now is None else now) + ttl}).encode())
        return f"{RELAY_PREFIX}{body}.{self._sign(body)}"

    def verify(self, token: str, room: str, now: Optional[float] = None) -> str:
        """The pulling node's id; ``Refusal`` (401/403) for a bad, expired or other room's token."""
        body, _, signature = token[len(RELAY_PREFIX):].partition(".")
        if not hmac.compare_digest(signature.encode(), self._sign(body).encode()):
            raise Refusal(401, "bad_relay_token", "this relay token is not signed by this deployment")
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        if claims["exp"] < (time.time() if now is None else now):
            raise Refusal(401, "relay_token_expired", "this relay token has expired")
        if claims["room"] != room:
            raise Refusal(403, "wrong_room", f"this relay token is for room {claims['room']!r}, not {room!r}")
        return claims["node"]


class RelayDoor:
    """A ``Door`` that also lets the deployment's nodes pull rooms (see the module doc)."""

    def __init__(self, inner: Door, tokens: RelayTokens) -> None:
        self.inner = inner
        self.tokens = tokens

    async def room_exists(self, room: str) -> bool:
        return await self.inner.room_exists(room)

    async def authorize(self, token: Optional[str], action: Action, target: Target) -> Grant:
        if token is None or not token.startswith(RELAY_PREFIX):
            return await self.inner.authorize(token, action, target)
        if action != "view":
            raise Refusal(403, "relay_views_only", "a relay token only allows viewing")
        if not await self.inner.room_exists(target.room):
            raise Refusal(404, "room_not_found", f"no room named {target.room!r}")
        self.tokens.verify(token, target.room)
        return Grant(relay=True)
