"""Presence (viewer counts), plus the pacing helpers the room signals share.

``presence {viewers}`` is the number of distinct users connected to the room's chat,
the creator and moderators included. It is sent to the room when that number changes,
at most once per ``interval`` (1 s): a class filling up sends one frame a second, not
one per arrival. A socket joining without changing the number (a second tab) gets the
current count to itself.

Per node: the count is of the users connected to *this* node. With ``REDIS_URL`` the
Socket.IO manager delivers every node's frames to every node's clients, so a client of
a multi-node deployment sees the counts of the different nodes in turn. A cluster-wide
count needs shared state (e.g. a Redis hash of node -> distinct users with a heartbeat
expiry); that is not built.
"""

from __future__ import annotations

import logging
from collections import Counter


from .server import Client, InteractionServer
from .throttle import Throttle

__all__ = ["PresenceService"]

log = logging.getLogger("stagepass.interaction")


class PresenceService:
    def __init__(self, server: InteractionServer, interval: float = 1.0) -> None:
        self.server = server
        self._users: dict[str, Counter[int]] = {}  # room -> user id -> sockets on this node
        self.throttle = Throttle(self._flush, server.tasks, interval, "presence")
        server.on_connect(self._joined)
        server.on_disconnect(self._left)

    def viewers(self, room: str) -> int:
        """Distinct users connected to the room on this node."""
        return len(self._users.get(room, ()))

    async def _joined(self, client: Client) -> None:
        users = self._users.setdefault(client.room, Counter())
        users[client.user_id] += 1
        if users[client.user_id] == 1:
            self.throttle.mark(client.room)
        else:  # same count: only the new socket needs it
            await self.server.sio.emit("presence", {"viewers": len(users)}, to=client.sid)

    async def _left(self, client: Client) -> None:
        users = self._users.get(client.room)
        if users is None or users[client.user_id] <= 0:
            return
        users[client.user_id] -= 1
        if users[client.user_id] == 0:
            del users[client.user_id]
            if not users:
                del self._users[client.room]
            self.throttle.mark(client.room)

    async def _flush(self, room: str) -> None:
        await self.server.emit_room(room, "presence", {"viewers": self.viewers(room)})
