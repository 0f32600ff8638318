"""Presence (viewer counts), plus the pacing helpers the room signals share.

``presence {viewers}`` is the number of distinct users connected to the room's chat,
the creator and moderators included, on every node. It is sent to the room when this
node's part of it changes, at most once per ``interval`` (1 s): a class filling up sends
one frame a second, not one per arrival. A socket joining without changing the number (a
second tab) gets the current count to itself.

Each process counts its own sockets per user in a ``Cluster`` hash
(``presence:<room>:<process>``), renewed while it has users there and expiring
``TTL`` seconds after the process dies; ``presence:<room>:nodes`` lists the processes
that reported. A frame carries the distinct users of all of them, read when it is sent
(with Redis the Socket.IO manager delivers every node's frames to every client, and each
frame is the cluster's count). While the cluster is unreachable, a node counts its own.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import Counter

from core.cluster import Cluster

from .server import Client, InteractionServer
from .throttle import Throttle

__all__ = ["PresenceService"]

log = logging.getLogger("stagepass.interaction")
TTL = 30.0  # seconds a process's counts outlive its last renewal


class PresenceService:
    def __init__(self, server: InteractionServer, cluster: Cluster, interval: float = 1.0) -> None:
        self.server = server
        self.cluster = cluster
        self.process = secrets.token_hex(6)
        self._users: dict[str, Counter[int]] = {}  # room -> user id -> sockets on this node
        self.throttle = Throttle(self._flush, server.tasks, interval, "presence")
        self._renewing = False
        server.on_connect(self._joined)
        server.on_disconnect(self._left)

    def _key(self, room: str) -> str:
        return f"presence:{room}:{self.process}"

    def local_viewers(self, room: str) -> int:
        """Distinct users connected to the room on this node."""
        return len(self._users.get(room, ()))

    async def _sockets(self, room: str) -> dict[str, int]:
        """User id (text) -> sockets in the room, summed over every node's report (this
        node's own count while the cluster is unreachable)."""
        users: Counter[str] = Counter()
        try:
            for process in await self.cluster.ordered_members(f"presence:{room}:nodes"):
                for user, sockets in (await self.cluster.hash_get_all(f"presence:{room}:{process}")).items():
                    users[user] += int(sockets)
        except Exception as exc:
            log.warning("room %s: reading presence from the cluster failed (%s); counting this node's",
                        room, exc)
            return {str(user): n for user, n in self._users.get(room, Counter()).items()}
        return users

    async def viewers(self, room: str) -> int:
        """Distinct users connected to the room on every node."""
        return len(await self._sockets(room))

    async def sockets_of(self, room: str, user_id: int) -> int:
        """The user's sockets in the room on every node."""
        return (await self._sockets(room)).get(str(user_id), 0)

    async def _report(self, room: str, user_id: int, change: int) -> None:
        try:
            await self.cluster.hash_incr(self._key(room), str(user_id), change, ttl=TTL)
            if change > 0:
                await self.cluster.ordered_add(f"presence:{room}:nodes", self.process, ttl=TTL, keep_place=True)
        except Exception as exc:
            log.warning("room %s: reporting user %d's presence to the cluster failed (%s)", room, user_id, exc)
        if not self._renewing:
            self._renewing = True
            self.server.tasks.spawn(self._renew(), name="presence-renew")

    async def _renew(self) -> None:
        """Keep this process's counts alive while it has users anywhere."""
        try:
            while self._users:
                await asyncio.sleep(TTL / 3)
                for room in list(self._users):
                    try:
                        await self.cluster.expire(self._key(room), TTL)
                        await self.cluster.ordered_add(f"presence:{room}:nodes", self.process, ttl=TTL,
                                                       keep_place=True)
                    except Exception as exc:
                        log.warning("room %s: renewing presence failed (%s)", room, exc)
        finally:
            self._renewing = False

    async def _joined(self, client: Client) -> None:
        users = self._users.setdefault(client.room, Counter())
        users[client.user_id] += 1
        first = users[client.user_id] == 1
        await self._report(client.room, client.user_id, 1)
        if first:
            self.throttle.mark(client.room)
        else:  # same count: only the new socket needs it
            await self.server.sio.emit("presence", {"viewers": await self.viewers(client.room)}, to=client.sid)

    async def _left(self, client: Client) -> None:
        users = self._users.get(client.room)
        if users is None or users[client.user_id] <= 0:
            return
        users[client.user_id] -= 1
        last = users[client.user_id] == 0
        if last:
            del users[client.user_id]
            if not users:
                del self._users[client.room]
        await self._report(client.room, client.user_id, -1)
        if last:
            self.throttle.mark(client.room)

    async def _flush(self, room: str) -> None:
        await self.server.emit_room(room, "presence", {"viewers": await self.viewers(room)})
