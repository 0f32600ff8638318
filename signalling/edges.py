"""``Edges``: this node in a cluster of nodes that share rooms (the scale-out over WHEP).

A room's origin is the node its publisher is on (claimed in the ``NodeRegistry``). A
viewer who plays the room on another node makes that node an edge: it pulls the room
from the origin over WHEP with a relay token (``relay_tokens``), fans it out to its own
viewers through the same fanouts, and lets go when its last viewer leaves (``Room``).
While the room has viewers here, a keeper re-pulls whenever the source is gone: the
origin died and the creator reconnected on another node, or the creator had not started
yet. Publishing here while the room is live on another node is refused with 409 (not a
307: WHIP clients drop the bearer token on a cross-origin redirect), naming the origin.
``live()`` is ``/api/live`` for the whole cluster: the rooms their origins report, with
the viewers of every node; ``audience_of(room)`` is the same count for one room, read
from the registry at every heartbeat (the dashboard's audience samples use it).

``rooms`` is a ``RoomRegistry`` (media in this process) or, on a node with media workers,
the ``WorkerRooms`` standing in its place: there ``room.pull`` runs the pull in one worker
(``mediaserver/workers/pulls.py``), which asks this process to carry its offer (the
``exchange`` below), and the node's other workers get the room through worker pipes; the
cluster logic stays here either way.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Optional

import aiohttp

from core.cluster import NodeInfo, NodeRegistry
from core.tasks import TaskOwner
from mediaserver.live.room import Room, RoomRegistry

from .relay_tokens import RelayTokens

__all__ = ["Edges", "PullFailed"]

log = logging.getLogger("stagepass.edges")

#: seconds an edge waits for the origin's WHEP answer
PULL_TIMEOUT = 15.0


class PullFailed(Exception):
    """The origin could not be reached or refused the pull."""


class Edges:
    def __init__(self, registry: NodeRegistry, rooms: RoomRegistry, tokens: RelayTokens,
                 retry_seconds: float = 1.0) -> None:
        self.registry = registry
        self.rooms = rooms
        self.tokens = tokens
        self.retry_seconds = retry_seconds
        self.tasks = TaskOwner(log)
        self._keepers: dict[str, asyncio.Task] = {}
        self._http: Optional[aiohttp.ClientSession] = None
        #: room -> viewers on the other nodes, as of their last heartbeats
        self._elsewhere: dict[str, int] = {}

    @property
    def node_id(self) -> str:
        return self.registry.node_id

    async def start(self) -> None:
        """Read the other nodes' audiences now and at every heartbeat."""
        await self._read_elsewhere()
        self.tasks.spawn(self._refresh(), name="edge-audiences")

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(self.registry.interval)
            try:
                await self._read_elsewhere()
            except Exception as exc:  # the shared store is down: keep the last figures
                log.warning("reading the other nodes' audiences failed (%s: %s)", type(exc).__name__, exc)

    async def _read_elsewhere(self) -> None:
        counts: dict[str, int] = {}
        for node in await self.registry.nodes():
            if node.id != self.node_id:
                for room, n in node.load.get("audience", {}).items():
                    counts[room] = counts.get(room, 0) + n
        self._elsewhere = counts

    def audience_of(self, room: Room) -> int:
        """Viewers of ``room`` on every node (the others' as of their last heartbeat)."""
        return room.viewer_count() + self._elsewhere.get(room.name, 0)

    async def origin_elsewhere(self, room: str) -> Optional[NodeInfo]:
        """The live node other than this one that originates ``room``, if any."""
        host = await self.registry.host_of(room)
        if host is None or host == self.node_id:
            return None
        return await self.registry.node(host)

    async def claim(self, room: str) -> bool:
        """Become ``room``'s origin now (a publisher was accepted here); False if another
        node claimed it first."""
        return await self.registry.claim_room(room)

    async def ensure_pull(self, room: Room) -> None:
        """Pull ``room`` from its origin unless it has a live source here or no origin;
        ``PullFailed`` if the origin cannot be reached or refuses."""
        if room.live:
            return
        origin = await self.origin_elsewhere(room.name)
        if origin is None or not origin.info.get("url"):
            return
        url = origin.info["url"].rstrip("/")
        session_url: list[str] = []

        async def exchange(offer: str) -> str:
            token = self.tokens.issue(room.name, self.node_id)
            headers = {"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"}
            try:
                async with self._client().post(f"{url}/whep/{room.name}", data=offer, headers=headers,
                                               timeout=aiohttp.ClientTimeout(total=PULL_TIMEOUT)) as r:
                    body = await r.text()
                    if r.status != 201:
                        raise PullFailed(f"origin {origin.id} answered {r.status}: {body[:200]}")
                    session_url.append(url + r.headers["Location"])
                    return body
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                raise PullFailed(f"origin {origin.id} at {url} unreachable: {type(exc).__name__} {exc}") from exc

        source = await room.pull(origin.id, exchange)
        if session_url:  # this call made the pull (a concurrent one may have made it instead)

            async def leave_origin() -> None:
                try:
                    async with self._client().delete(session_url[0], timeout=aiohttp.ClientTimeout(total=5)):
                        pass
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:  # origin gone: its side times out
                    log.info("room %s: leaving origin %s failed (%s)", room.name, origin.id, type(exc).__name__)

            source.on_close(leave_origin)

    def keep(self, room: Room) -> None:
        """Keep ``room`` pulled while it has viewers here (idempotent)."""
        task = self._keepers.get(room.name)
        if task is None or task.done():
            task = self.tasks.spawn(self._keep(room), name=f"edge-keeper-{room.name}")
            if task is not None:
                self._keepers[room.name] = task

    async def _keep(self, room: Room) -> None:
        try:
            while room.subscribers:
                if not room.live:
                    try:
                        await self.ensure_pull(room)
                    except Exception as exc:
                        log.warning("room %s: pulling from the origin failed (%s: %s)", room.name,
                                    type(exc).__name__, exc)
                await asyncio.sleep(self.retry_seconds)
        finally:
            self._keepers.pop(room.name, None)

    async def live(self) -> list[dict]:
        """Every node's rooms on air (as each origin reports them), viewers summed over
        every node; this node's own figures are read now, the others' at their last beat."""
        here = {"live": self.rooms.on_air(), "audience": self.rooms.audience()}
        loads = [n.load for n in await self.registry.nodes() if n.id != self.node_id] + [here]
        rooms: dict[str, dict] = {}
        for load in loads:
            for entry in load.get("live", []):
                rooms.setdefault(entry["room"], dict(entry))
        for entry in rooms.values():
            entry["viewers"] = sum(load.get("audience", {}).get(entry["room"], 0) for load in loads)
        return sorted(rooms.values(), key=lambda r: (-r["viewers"], r["room"]))

    def _client(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession()
        return self._http

    async def close(self) -> None:
        await self.tasks.close()
        if self._http is not None:
            await self._http.close()
