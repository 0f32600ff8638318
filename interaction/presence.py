"""Presence (viewer counts), plus the pacing helpers the room signals share.

``presence {viewers}`` is the number of distinct users connected to the room's chat,
the creator and moderators included. It is sent to the room when that number changes,
at most once per ``interval`` (1 s): a class filling up sends one frame a second, not
one per arrival. A socket joining without changing the number (a second tab) gets the
current count to itself.

Without Redis the count is of this process's users. With ``REDIS_URL`` it is exact
across processes and nodes: each process keeps a Redis hash of its users of the room
(``stagepass:presence:<room>:<process>``, user -> 1) in a set of the room's processes,
refreshed every ``heartbeat`` seconds and expiring after three missed beats (a process
killed with -9 stops counting within ~30 s); a frame carries the number of distinct users
over all live processes, counted by one Lua script. Every process sends the frames of its
own changes, and the Socket.IO manager delivers them to every process's clients.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from typing import Any, Optional


from .server import Client, InteractionServer
from .throttle import Throttle

__all__ = ["PresenceService"]

log = logging.getLogger("stagepass.interaction")


# Distinct users over the room's live processes; forgets processes whose hash expired.
_COUNT = """
local n, seen = 0, {}
for _, process in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = KEYS[1] .. ':' .. process
  if redis.call('EXISTS', key) == 0 then
    redis.call('SREM', KEYS[1], process)
  else
    for _, user in ipairs(redis.call('HKEYS', key)) do
      if not seen[user] then seen[user] = true; n = n + 1 end
    end
  end
end
return n
"""


class PresenceService:
    def __init__(self, server: InteractionServer, interval: float = 1.0, redis: Optional[Any] = None,
                 heartbeat: float = 10.0) -> None:
        self.server = server
        self.redis = redis
        self.heartbeat = heartbeat
        self.process = uuid.uuid4().hex[:12]
        self._users: dict[str, Counter[int]] = {}  # room -> user id -> sockets on this process
        self._count = redis.register_script(_COUNT) if redis is not None else None
        self.throttle = Throttle(self._flush, server.tasks, interval, "presence")
        server.on_connect(self._joined)
        server.on_disconnect(self._left)

    def start(self) -> None:
        if self.redis is not None:
            self.server.tasks.spawn(self._beat(), name="presence-heartbeat")

    def _key(self, room: str) -> str:
        return f"stagepass:presence:{room}"

    async def _publish(self, room: str, user_id: int, present: bool) -> None:
        """This process's share of the room in Redis (first socket in, last socket out)."""
        key = self._key(room)
        async with self.redis.pipeline(transaction=True) as pipe:
            if present:
                pipe.hset(f"{key}:{self.process}", str(user_id), 1)
            else:
                pipe.hdel(f"{key}:{self.process}", str(user_id))
            pipe.sadd(key, self.process)
            pipe.expire(f"{key}:{self.process}", int(3 * self.heartbeat))
            pipe.expire(key, int(3 * self.heartbeat))
            await pipe.execute()

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            for room in list(self._users):
                try:
                    async with self.redis.pipeline(transaction=False) as pipe:
                        pipe.sadd(self._key(room), self.process)
                        pipe.expire(f"{self._key(room)}:{self.process}", int(3 * self.heartbeat))
                        pipe.expire(self._key(room), int(3 * self.heartbeat))
                        await pipe.execute()
                except Exception as exc:
                    log.warning("presence heartbeat of room %s failed (%s)", room, exc)

    async def count(self, room: str) -> int:
        """Distinct users of the room: over every process with Redis, else on this one."""
        if self._count is None:
            return self.viewers(room)
        try:
            return int(await self._count(keys=[self._key(room)]))
        except Exception as exc:  # Redis trouble: what this process knows
            log.warning("counting the presence of room %s in Redis failed (%s)", room, exc)
            return self.viewers(room)

    def viewers(self, room: str) -> int:
        """Distinct users connected to the room on this process."""
        return len(self._users.get(room, ()))

    async def _joined(self, client: Client) -> None:
        users = self._users.setdefault(client.room, Counter())
        users[client.user_id] += 1
        if users[client.user_id] == 1:
            if self.redis is not None:
                await self._publish(client.room, client.user_id, True)
            self.throttle.mark(client.room)
        else:  # same count: only the new socket needs it
            await self.server.sio.emit("presence", {"viewers": await self.count(client.room)}, to=client.sid)

    async def _left(self, client: Client) -> None:
        users = self._users.get(client.room)
        if users is None or users[client.user_id] <= 0:
            return
        users[client.user_id] -= 1
        if users[client.user_id] == 0:
            del users[client.user_id]
            if not users:
                del self._users[client.room]
            if self.redis is not None:
                try:
                    await self._publish(client.room, client.user_id, False)
                except Exception as exc:  # the hash expires by itself
                    log.warning("presence of user %d leaving room %s not removed from Redis (%s)",
                                client.user_id, client.room, exc)
            self.throttle.mark(client.room)

    async def _flush(self, room: str) -> None:
        await self.server.emit_room(room, "presence", {"viewers": await self.count(room)})
