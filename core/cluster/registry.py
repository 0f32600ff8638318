"""``NodeRegistry``: which nodes are up, and which node hosts each live room.

Each node keeps a key ``nodes:<id>`` alive with a heartbeat (``interval``; the key
expires after three missed beats), holding what it says about itself and the rooms it
hosts. A hosted room is claimed under ``rooms:<room>:node``: the first node to claim it
holds it, renews it at every beat and releases it when the broadcast ends or the node
stops; a node that dies loses its claims when they expire. The database's
``broadcasts.node`` is the history; this is the live view the scale-out (routing a
viewer to the node that has the room) reads.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional

from core.tasks import TaskOwner

from .base import Cluster

__all__ = ["NodeInfo", "NodeRegistry"]

log = logging.getLogger("stagepass.cluster")


@dataclass
class NodeInfo:
    id: str
    rooms: list[str] = field(default_factory=list)
    info: dict = field(default_factory=dict)  # what the node says about itself (its URL...)
    seen_at: float = 0.0  # wall clock of its last heartbeat


class NodeRegistry:
    def __init__(self, cluster: Cluster, node_id: str, hosted_rooms: Callable[[], Iterable[str]] = tuple,
                 info: Optional[dict] = None, interval: float = 5.0) -> None:
        self.cluster = cluster
        self.node_id = node_id
        self.interval = interval
        self.ttl = 3 * interval
        self._hosted_rooms = hosted_rooms
        self._info = dict(info or {})
        self._claimed: set[str] = set()
        self.tasks = TaskOwner(log)

    @staticmethod
    def _room_key(room: str) -> str:
        return f"rooms:{room}:node"

    async def start(self) -> None:
        """Register now (so the node is listed when this returns), then beat."""
        await self.heartbeat()
        self.tasks.spawn(self._beat(), name="node-heartbeat")

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.heartbeat()
            except Exception as exc:  # the shared store is down: try again next beat
                log.warning("node %s: heartbeat failed (%s: %s)", self.node_id, type(exc).__name__, exc)

    async def heartbeat(self) -> None:
        """Renew this node's entry and its room claims; claim newly hosted rooms and
        release those it no longer hosts."""
        hosted = set(self._hosted_rooms())
        for room in self._claimed - hosted:
            await self.release_room(room)
        for room in hosted:
            await self.claim_room(room)
        entry = {"rooms": sorted(self._claimed), "info": self._info, "seen_at": time.time()}
        await self.cluster.set(f"nodes:{self.node_id}", json.dumps(entry), ttl=self.ttl)

    async def nodes(self) -> list[NodeInfo]:
        """The live nodes, by id."""
        found = []
        for key in await self.cluster.keys("nodes:"):
            raw = await self.cluster.get(key)
            if raw is None:  # expired since listed
                continue
            entry = json.loads(raw)
            found.append(NodeInfo(key.split(":", 1)[1], entry.get("rooms", []), entry.get("info", {}),
                                  entry.get("seen_at", 0.0)))
        return sorted(found, key=lambda n: n.id)

    async def claim_room(self, room: str) -> bool:
        """Host ``room`` here unless a live node already does; True if this node holds it."""
        key = self._room_key(room)
        held = (await self.cluster.set_if_absent(key, self.node_id, ttl=self.ttl)
                or await self.cluster.compare_and_set(key, self.node_id, self.node_id, ttl=self.ttl))
        if held:
            self._claimed.add(room)
        else:
            self._claimed.discard(room)
            log.warning("room %s: hosted here but claimed by node %s", room, await self.host_of(room))
        return held

    async def release_room(self, room: str) -> None:
        """Give up ``room`` if this node holds it (another node's claim is left alone)."""
        self._claimed.discard(room)
        await self.cluster.compare_and_set(self._room_key(room), self.node_id, None)

    async def host_of(self, room: str) -> Optional[str]:
        """The id of the node hosting ``room`` now, ``None`` if none does."""
        return await self.cluster.get(self._room_key(room))

    async def close(self) -> None:
        """Stop beating and leave: release the rooms and the node entry (a store that is
        down lets them expire instead)."""
        await self.tasks.close()
        try:
            for room in list(self._claimed):
                await self.release_room(room)
            await self.cluster.delete(f"nodes:{self.node_id}")
        except Exception as exc:
            log.warning("node %s: leaving the registry failed (%s); its entries will expire", self.node_id, exc)
