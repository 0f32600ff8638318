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

The queue is the room's across nodes: an ordered set of user ids in the ``Cluster``
(``hands:<room>``) beside one item per hand; a node that changes it sends the queue to the
moderators (the Socket.IO manager reaches those of every node), a moderator's lowering is
told to the user's sockets on every node (the bus), and "their last socket" counts every
node's (``PresenceService``).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from core.access import Refusal
from core.cluster import Cluster

from .bus import ClusterBus
from .presence import PresenceService
from .server import Client, InteractionServer
from .throttle import Throttle

__all__ = ["HandService"]

TTL = 86400.0  # a queue nobody touches for a day is forgotten


def _user_id(data: Any) -> int:
    value = data.get("user_id") if isinstance(data, dict) else None
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 2**62:
        raise Refusal(400, "invalid_payload", "send nothing, {} or (moderators) {user_id}")
    return value


class HandService:
    def __init__(self, server: InteractionServer, cluster: Cluster, bus: ClusterBus, presence: PresenceService,
                 interval: float = 0.25) -> None:
        self.server = server
        self.cluster = cluster
        self.bus = bus
        self.presence = presence  # its disconnect hook must run first (built first)
        self.throttle = Throttle(self._flush, server.tasks, interval, "hands")
        server.on("hand:raise", self.raise_hand)
        server.on("hand:lower", self.lower_hand)
        server.on_connect(self._send_queue)
        server.on_disconnect(self._left)
        bus.subscribe("hand_lowered", self._on_lowered)

    @staticmethod
    def _key(room: str) -> str:
        return f"hands:{room}"

    @staticmethod
    def _item_key(room: str, user_id: int) -> str:
        return f"hands:{room}:item:{user_id}"

    async def queue(self, room: str) -> list[dict]:
        """The raised hands, oldest first."""
        items = []
        for member in await self.cluster.ordered_members(self._key(room)):
            raw = await self.cluster.get(self._item_key(room, int(member)))
            if raw is not None:
                items.append(json.loads(raw))
        return items

    async def raise_hand(self, client: Client, data: Any) -> dict:
        if data is not None and data != {}:
            raise Refusal(400, "invalid_payload", "hand:raise takes no payload")
        _, t_ms = self.server.t_ms(client.room)
        item = {
            "user": client.public(), "t_ms": t_ms,
            "raised_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"),
        }
        if await self.cluster.set_if_absent(self._item_key(client.room, client.user_id), json.dumps(item), ttl=TTL):
            await self.cluster.ordered_add(self._key(client.room), str(client.user_id), ttl=TTL, keep_place=True)
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
        if await self._drop(client.room, target) and target != client.user_id:
            await self.bus.publish("hand_lowered", room=client.room, user=target)
        return {"raised": False} if target == client.user_id else {"user_id": target, "raised": False}

    async def _on_lowered(self, message: dict) -> None:
        """A moderator lowered a hand (on any node): tell that user's sockets here."""
        for other in self.server.clients_in(message["room"]):
            if other.user_id == message["user"]:
                await self.server.sio.emit("hand", {"raised": False}, to=other.sid)

    async def _drop(self, room: str, user_id: int) -> bool:
        if not await self.cluster.ordered_remove(self._key(room), str(user_id)):
            return False
        await self.cluster.delete(self._item_key(room, user_id))
        self.throttle.mark(room)
        return True

    async def _left(self, client: Client) -> None:
        if await self.cluster.get(self._item_key(client.room, client.user_id)) is None:
            return  # no hand up (the common case: one read, not the room's presence)
        if await self.presence.sockets_of(client.room, client.user_id):
            return  # another tab of theirs is still here (on some node)
        await self._drop(client.room, client.user_id)

    async def _send_queue(self, client: Client) -> None:
        if client.moderator:
            await self.server.sio.emit("hands", {"items": await self.queue(client.room)}, to=client.sid)

    async def _flush(self, room: str) -> None:
        await self.server.emit_mods(room, "hands", {"items": await self.queue(room)})
