"""The media clock of live rooms, for interaction processes that hold no media.

Danmaku, questions, polls and tips are stamped with ``(broadcast id, t_ms)`` from the
room's ``Broadcast``. An interaction worker process (``--interaction-workers``) has no
``RoomRegistry``: the control plane writes each broadcast's id and start (wall time, the
same clock ``Broadcast.t_ms`` reads) to the cluster when it starts and removes it when it
ends (``publish_clocks``), and a worker's ``BroadcastClocks`` mirrors them: read once at
start, then kept current by the cluster channel. ``BroadcastClocks`` answers the part of
the ``RoomRegistry`` the interaction uses (``get(room).broadcast``); broadcast-end work
(refunds of unanswered paid questions) stays with the control plane's own services.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Optional

from core.cluster import Cluster, Subscription
from mediaserver.live.room import Broadcast

__all__ = ["BroadcastClocks", "publish_clocks"]

log = logging.getLogger("stagepass.interaction")


def _names(node: str) -> tuple[str, str]:
    """(key prefix, channel) of one node's clocks (with Redis, other nodes' rooms are theirs)."""
    return f"live:clock:{node}:", f"live-clock:{node}"


def publish_clocks(cluster: Cluster, rooms: Any, node: str) -> None:
    """Write every broadcast of ``rooms`` (the node's ``RoomRegistry``) to the cluster as it
    starts and ends (one already live when this is called is written at its next start)."""
    prefix, channel = _names(node)

    async def started(room: Any, broadcast: Broadcast) -> None:
        value = json.dumps({"room": room.name, "id": broadcast.id, "started_at": broadcast.started_at})
        await cluster.set(prefix + room.name, value)
        await cluster.publish(channel, value)

    async def ended(room: Any, broadcast: Broadcast) -> None:
        current = await cluster.get(prefix + room.name)
        if current is not None and json.loads(current).get("id") == broadcast.id:  # not a newer one
            await cluster.compare_and_set(prefix + room.name, current, None)
        await cluster.publish(channel, json.dumps({"room": room.name, "id": None}))

    rooms.broadcast_started.append(started)
    rooms.broadcast_ended.append(ended)


class _Mirror:
    __slots__ = ("broadcast",)

    def __init__(self, broadcast: Broadcast) -> None:
        self.broadcast = broadcast


class BroadcastClocks:
    """The live broadcasts of the node, as the control plane published them."""

    def __init__(self, cluster: Cluster, node: str) -> None:
        self._cluster = cluster
        self._prefix, self._channel = _names(node)
        self._rooms: dict[str, _Mirror] = {}
        self._subscription: Optional[Subscription] = None
        #: ``QuestionService.attach`` listens here; broadcast ends are acted on by the control plane
        self.broadcast_ended: list = []

    def get(self, room: str) -> Optional[_Mirror]:
        return self._rooms.get(room)

    async def start(self) -> None:
        self._subscription = await self._cluster.subscribe(self._channel, self._received)
        for key in await self._cluster.keys(self._prefix):
            value = await self._cluster.get(key)
            if value is not None:
                await self._received(value)

    async def _received(self, text: str) -> None:
        try:
            message = json.loads(text)
            room, broadcast_id = message["room"], message["id"]
            if broadcast_id is None:
                self._rooms.pop(room, None)
            else:
                self._rooms[room] = _Mirror(Broadcast(id=broadcast_id, started_at=float(message["started_at"])))
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed live clock message")

    async def close(self) -> None:
        if self._subscription is not None:
            await self._subscription.close()
            self._subscription = None
