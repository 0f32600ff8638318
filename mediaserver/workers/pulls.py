"""Edge pulls in media workers: a node with workers pulls a room from its origin node once.

On an edge node (``signalling/edges.py``) the room's source is one WHEP connection to the
origin. With media workers that connection (an ``EdgeSource``) lives in one worker, the
room's host on this node, as a publisher would, and the node's other workers get the room
through the worker pipes like any relay. The worker makes the offer; the control plane,
which knows HTTP and the cluster, carries it to the origin: the worker asks it with an
``exchange`` request naming the pull, ``Exchanges`` finds the caller's ``Exchange`` and
answers with the origin's SDP answer. A failure there (the origin refused or cannot be
reached) is kept and raised again, unchanged, to whoever asked for the pull.

``WorkerPull`` is the control plane's handle on one such source: where it runs, which node
it pulls from, and its ``on_close`` listeners (the edge leaves the origin's session), told
once the worker says the source ended (``pull_closed``), or its worker died.

``Pulls`` places them: on the room's host worker while it runs, else on the worker with
the most viewers of the room (no pipe hop for them; after the host died, a survivor),
else on the least-loaded one. It lets go of a room's pull when the node's last viewer of
the room leaves; ``Edges``' keeper pulls again while viewers are here and the room is not
live (its source went silent: the origin moved, or the host worker died).
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from core.close_listeners import CloseListener, CloseListeners
from core.tasks import TaskOwner
from mediaserver.live.edge_source import Exchange
from mediaserver.live.errors import NegotiationFailed
from mediaserver.workers.channel import RemoteError, WorkerGone
from mediaserver.workers.links import Links
from mediaserver.workers.supervisor import WorkerPool

__all__ = ["Exchanges", "Pulls", "WorkerPull"]


@dataclass
class _Pending:
    exchange: Exchange
    error: Optional[BaseException] = None


@dataclass
class WorkerPull:
    """A room's pull from its origin node, running in media worker ``worker``."""

    worker: int
    source: str  #: the ``EdgeSource``'s id in that worker
    origin: str  #: the node it pulls from
    log: logging.Logger | logging.LoggerAdapter
    room_tasks: TaskOwner = field(repr=False)  #: runs a listener registered after the pull ended
    ended: bool = False
    _listeners: CloseListeners = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._listeners = CloseListeners(self.log, late=self.room_tasks, what="pull close listener")

    def on_close(self, listener: CloseListener) -> None:
        """Run ``listener`` once the pull ended (as ``PeerSession.on_close``)."""
        self._listeners.add(listener)

    async def closed(self) -> None:
        """The source ended in its worker (or the worker died): tell the listeners, once."""
        if self.ended:
            return
        self.ended = True
        self.log.info("pull from node %s (worker %d) ended", self.origin, self.worker)
        await self._listeners.run()


class Exchanges:
    """The pulls whose offer a worker may bring (``exchange`` requests), by number."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}

    def __len__(self) -> int:
        """Pulls asked of a worker and not answered yet."""
        return len(self._pending)

    def begin(self, exchange: Exchange) -> int:
        """A pull is asked of a worker: its number, for the worker's ``exchange`` request."""
        number = next(self._ids)
        self._pending[number] = _Pending(exchange)
        return number

    def end(self, number: int) -> Optional[BaseException]:
        """The worker answered the pull: what the exchange raised, if it did."""
        pending = self._pending.pop(number, None)
        return pending.error if pending is not None else None

    async def answer(self, number: int, offer: str) -> dict:
        """A worker's ``exchange`` request: ``{answer}``, or ``{error}`` (kept for ``end``)."""
        pending = self._pending.get(number)
        if pending is None:
            return {"error": f"pull {number} is not awaited (the control plane gave up on it)"}
        try:
            return {"answer": await pending.exchange(offer)}
        except Exception as exc:
            pending.error = exc
            return {"error": f"{type(exc).__name__}: {exc}"}


class Pulls:
    """The control plane's edge pulls, one per room at most, each in one worker."""

    def __init__(self, pool: WorkerPool, links: Links, least_loaded: Callable[[], int], tasks: TaskOwner) -> None:
        self._pool = pool
        self._links = links
        self._least_loaded = least_loaded
        self._tasks = tasks
        self.exchanges = Exchanges()

    def _worker_for(self, room: Any) -> int:
        alive = self._pool.alive()
        if room.host in alive:
            return room.host
        viewers = {w: room.viewers_on(w) for w in alive}
        if any(viewers.values()):
            return max(alive, key=lambda w: (viewers[w], -w))
        return self._least_loaded()

    async def pull(self, room: Any, origin: str, exchange: Exchange) -> WorkerPull:
        """``Room.pull`` for a ``WorkerRoom``: the room's pull from node ``origin``, made in a
        worker through ``exchange`` unless a live source is there already (its handle).
        Raises what ``exchange`` raised, ``NegotiationFailed`` (the origin's answer cannot be
        applied), ``WorkerGone`` (no worker, or it died meanwhile), or ``RuntimeError`` (the
        worker failed otherwise, logged there)."""
        worker = self._worker_for(room)
        number = self.exchanges.begin(exchange)
        try:
            result = await self._pool.request(worker, "pull", room=room.name, origin=origin, pull=number)
        except RemoteError as exc:
            error = self.exchanges.end(number)
            if error is not None:
                raise error from None
            raise NegotiationFailed(str(exc)) if exc.type == "NegotiationFailed" else RuntimeError(str(exc)) from None
        finally:
            self.exchanges.end(number)  # also when the worker died meanwhile (``WorkerGone``)
        current = room.edge
        if current is not None and current.worker == worker and current.source == result["source"]:
            return current
        handle = WorkerPull(worker, result["source"], origin, room.log, room.tasks)
        if not result["new"]:  # a live source was there (not ours to end): nothing to follow
            return handle
        room.edge = handle
        if current is not None:  # replaced in its worker, or its worker is gone
            self._tasks.spawn(current.closed(), name=f"pull-closed-{room.name}")
        if room.host != worker:
            room.host = worker
            room.log.info("pulled from node %s in media worker %d", origin, worker)
        await self._links.follow_host(room)
        return handle

    def let_go(self, room: Any) -> None:
        """The node's last viewer of ``room`` left: end its pull in its worker."""
        edge = room.edge
        if edge is None or room.subscribers:
            return
        room.log.info("last viewer left: letting go of origin %s", edge.origin)

        async def stop() -> None:
            try:
                await self._pool.request(edge.worker, "pull_stop", room=room.name, source=edge.source)
            except (WorkerGone, RemoteError) as exc:
                room.log.info("ending the pull in worker %d: %s", edge.worker, exc)
                await self.ended(room, edge.worker, edge.source)

        self._tasks.spawn(stop(), name=f"pull-stop-{room.name}")

    async def ended(self, room: Any, worker: int, source: str) -> None:
        """Worker ``worker`` says the pull ``source`` ended (or it died): forget it; its
        listeners are told in a task (the edge's leaving the origin may take seconds)."""
        edge = room.edge
        if edge is None or edge.worker != worker or edge.source != source:
            return
        room.edge = None
        if room.publisher is None and not room.subscribers:
            room.host = None  # the next pull or publisher may go to any worker
        self._tasks.spawn(edge.closed(), name=f"pull-closed-{room.name}")
