"""Raised hands: a queue per room that the creator and moderators see.

``hand:raise`` / ``hand:lower`` (no payload, or ``{}``) put the sender's hand up or down;
raising twice keeps the first place in the queue, lowering a hand that is down is fine.
The sender gets an ack (``{raised}``) and nothing else. Moderators get the queue,
oldest first, ``hands {items: [{user: {id, name}, raised_at, t_ms}]}`` -- on connect,
and after every change (coalesced to at most one frame per ``interval``, 250 ms, so a
hundred hands going up at once make a few frames). A moderator may lower someone else's
hand with ``hand:lower {user_id}``; that user's sockets get ``hand {raised: false}``.
A user's hand goes down when their last socket in the room disconnects (banned and
kicked users included). Inviting a user on stage is future work.

Per node: the queue holds the hands raised through this node. With several nodes a
moderator sees each node's queue in turn (the Socket.IO Redis manager delivers every
node's frames); a shared queue would be a Redis sorted set per room.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from core.access import Refusal

from .presence import Throttle
from .server import Client, InteractionServer

__all__ = ["HandService"]


def _user_id(data: Any) -> int:
    value = data.get("user_id") if isinstance(data, dict) else None
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 2**62:
        raise Refusal(400, "invalid_payload", "send nothing, {} or (moderators) {user_id}")
    return value


class HandService:
    def __init__(self, server: InteractionServer, interval: float = 0.25) -> None:
        self.server = server
        self._queues: dict[str, dict[int, dict]] = {}  # room -> user id -> item, in raise order
        self.throttle = Throttle(self._flush, server.tasks, interval, "hands")
        server.on("hand:raise", self.raise_hand)
        server.on("hand:lower", self.lower_hand)
        server.on_connect(self._send_queue)
        server.on_disconnect(self._left)

    def queue(self, room: str) -> list[dict]:
        return list(self._queues.get(room, {}).values())

    async def raise_hand(self, client: Client, data: Any) -> dict:
        if data is not None and data != {}:
            raise Refusal(400, "invalid_payload", "hand:raise takes no payload")
        queue = self._queues.setdefault(client.room, {})
        if client.user_id not in queue:
            _, t_ms = self.server.t_ms(client.room)
            queue[client.user_id] = {
                "user": client.public(), "t_ms": t_ms,
                "raised_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"),
            }
            self.throttle.mark(client.room)
        return {"raised": True}

    async def lower_hand(self, client: Client, data: Any) -> dict:
        target = client.user_id
        if data is not None and data != {}:
            if not isinstance(data, dict) or set(data) != {"user_id"}:
                raise Refusal(400, "invalid_payload", "send nothing, {} or (moderators) {user_id}")
            target = _user_id(data)
            if target != client.user_id and not client.moderator:
                raise Refusal(403, "forbidden", "only the creator and moderators lower other hands")
        if self._drop(client.room, target) and target != client.user_id:
            for other in self.server.clients_in(client.room):
                if other.user_id == target:
                    await self.server.sio.emit("hand", {"raised": False}, to=other.sid)
        return {"raised": False} if target == client.user_id else {"user_id": target, "raised": False}

    def _drop(self, room: str, user_id: int) -> bool:
        queue = self._queues.get(room)
        if queue is None or user_id not in queue:
            return False
        del queue[user_id]
        if not queue:
            del self._queues[room]
        self.throttle.mark(room)
        return True

    async def _left(self, client: Client) -> None:
        queue = self._queues.get(client.room)
        if queue is None or client.user_id not in queue:
            return
        if any(c.user_id == client.user_id for c in self.server.clients_in(client.room)):
            return  # another tab of theirs is still here
        self._drop(client.room, client.user_id)

    async def _send_queue(self, client: Client) -> None:
        if client.moderator:
            await self.server.sio.emit("hands", {"items": self.queue(client.room)}, to=client.sid)

    async def _flush(self, room: str) -> None:
        await self.server.emit_mods(room, "hands", {"items": self.queue(room)})
