"""``RoomFeed``: a room's danmaku, as encoded items, for every other process to batch.

With several interaction processes (``--interaction-workers``, or several nodes on
Redis), sending each process's danmaku frames through Socket.IO's pub/sub would make
every viewer get the frames of every process (twice as many frames with two: each write
to a socket is the main cost of a danmaku), and make each receiving process decode the
frame and encode it again. Instead every process publishes the items it accepted, as the
JSON texts it encoded once, on the cluster channel ``danmaku-feed``; every process adds
the items of the others to its own ``Batcher``, which gathers them with its own into the
frames it writes to its own sockets. A receiving process splits one header line off and
joins texts: it decodes and encodes nothing.

Publishing is one task: the items accepted while a publish is under way go together in
the next one, one message per room (under load, one per round trip to the cluster, not
one per danmaku). A message is ``origin\\nroom\\ncount\\nsenders\\nitems``, the
senders' user ids comma-separated, one per item, and one item a line (JSON text has no
raw line break); each process ignores its own. The senders let every process spend the
danmaku from its own rate-limit buckets (``danmaku_cluster``): limits shared with no
round trip of their own. Order: a process's items
are published in the order it accepted them, and the cluster delivers one publisher's
messages in order, so the items of one sender (one socket, on one process) reach every
viewer in order.

Without a shared cluster (one process) nothing is published.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Callable, Optional

from core.cluster import Cluster, Subscription
from core.tasks import TaskOwner

__all__ = ["RoomFeed"]

log = logging.getLogger("stagepass.interaction")

#: receives (room, items one a line, how many, their senders' user ids) from another process
Deliver = Callable[[str, str, int, list[int]], None]


class RoomFeed:
    def __init__(self, cluster: Cluster, deliver: Deliver, tasks: TaskOwner, channel: str = "danmaku-feed") -> None:
        self.cluster = cluster
        self.channel = channel
        self.origin = secrets.token_hex(6)
        self._deliver = deliver
        self._tasks = tasks
        self._pending: dict[str, tuple[list[str], list[str]]] = {}  # room -> (items, senders) not published yet
        self._wake = asyncio.Event()
        self._running = False
        self._subscription: Optional[Subscription] = None
        self.published = 0  #: messages published
        self.received = 0  #: items delivered from other processes

    @property
    def shared(self) -> bool:
        return self.cluster.shared

    async def start(self) -> None:
        if self.cluster.shared and self._subscription is None:
            self._subscription = await self.cluster.subscribe(self.channel, self._received)

    def publish(self, room: str, item: str, sender: int) -> None:
        """Queue one encoded item accepted on this process (from user ``sender``) for the
        other processes."""
        if self._subscription is None:
            return
        pending = self._pending.get(room)
        if pending is None:
            self._pending[room] = ([item], [str(sender)])
        else:
            pending[0].append(item)
            pending[1].append(str(sender))
        self._wake.set()
        if not self._running:
            self._running = self._tasks.spawn(self._publish(), name="danmaku-feed") is not None

    async def _publish(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                pending, self._pending = self._pending, {}
                for room, (items, senders) in pending.items():
                    message = f"{self.origin}\n{room}\n{len(items)}\n{','.join(senders)}\n" + "\n".join(items)
                    try:
                        await self.cluster.publish(self.channel, message)
                    except Exception as exc:  # this process's viewers have them; the others miss them
                        log.error("room %s: publishing %d danmaku to the other processes failed (%s: %s)",
                                  room, len(items), type(exc).__name__, exc)
                    self.published += 1
        finally:
            self._running = False

    async def _received(self, message: str) -> None:
        try:
            origin, room, count, senders, items = message.split("\n", 4)
            n = int(count)
            users = [int(u) for u in senders.split(",")]
            if len(users) != n:
                raise ValueError(senders)
        except ValueError:
            log.warning("ignoring a malformed danmaku feed message")
            return
        if origin == self.origin:
            return
        self.received += n
        self._deliver(room, items, n, users)

    async def close(self) -> None:
        if self._subscription is not None:
            await self._subscription.close()
            self._subscription = None
