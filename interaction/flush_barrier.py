"""``FlushBarrier``: every process's write-behind queue written before a reader reads.

Each interaction process writes its danmaku rows behind (``WriteBehind``), so a row
accepted on another process in its last write interval is not in the database yet. A
reader that must see every acknowledged row (an export, a moderator's delete, a privacy
erase) calls ``flush_all``: it publishes a flush request on the cluster channel
``danmaku-flush``, writes its own queue, and waits until every other process listed
under ``danmaku:writer:<process>`` has written its queue and answered. Each process keeps
its own key alive while it runs (written at start, renewed every ``ttl / 3`` seconds and
on each request it answers, with a time to live of ``ttl``) and deletes it at close, so a
process killed without closing (kill -9, its queue lost anyway) is no longer listed, nor
waited for, ``ttl`` seconds later. One listed that does not answer within ``wait``
seconds is dropped, with a warning, and the reader goes on.

Releases before the per-process keys listed the writers in an ordered set without a
time to live, ``danmaku:writers``, which nothing reads now: each process deletes it at
start (``OLD_WRITERS``), so an install that ran one does not keep it for good.

Messages, one field a line: ``flush, requester, request id`` and ``done, requester,
request id, responder, ok|error``. Without a shared cluster (one process) ``flush_all``
writes this process's queue only.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Awaitable, Callable, Optional

from core.cluster import Cluster, Subscription
from core.tasks import TaskOwner

__all__ = ["FlushBarrier"]

log = logging.getLogger("stagepass.interaction")

WRITERS = "danmaku:writer:"  #: key prefix: one key per process that writes danmaku behind
WAIT = 3.0  #: seconds to wait for the other processes' answers
TTL = 15.0  #: seconds a process stays listed after its last renewal (a killed one, then gone)
OLD_WRITERS = "danmaku:writers"  #: the ordered set earlier releases kept: deleted at start


class _Request:
    __slots__ = ("missing", "failed", "done")

    def __init__(self, missing: set[str]) -> None:
        self.missing = missing  # processes that have not answered yet
        self.failed: list[str] = []  # processes whose write failed
        self.done = asyncio.Event()
        if not missing:
            self.done.set()


class FlushBarrier:
    def __init__(self, cluster: Cluster, flush: Callable[[], Awaitable[None]], tasks: TaskOwner,
                 channel: str = "danmaku-flush", wait: float = WAIT, ttl: float = TTL) -> None:
        """``flush``: writes this process's queue now."""
        self.cluster = cluster
        self.channel = channel
        self.wait = wait
        self.ttl = ttl
        self.process = secrets.token_hex(6)
        self._flush = flush
        self._tasks = tasks
        self._requests: dict[str, _Request] = {}
        self._subscription: Optional[Subscription] = None
        self._renewal: Optional[asyncio.Task] = None
        self.answered = 0  #: other processes' requests this process has answered

    async def start(self) -> None:
        if self.cluster.shared and self._subscription is None:
            self._subscription = await self.cluster.subscribe(self.channel, self._received)
            await self._enlist()
            await self.cluster.delete(OLD_WRITERS)
            self._renewal = self._tasks.spawn(self._renew(), name=f"danmaku-writer-{self.process}")

    async def _enlist(self) -> None:
        """List this process among the writers for ``ttl`` seconds more."""
        await self.cluster.set(WRITERS + self.process, "1", ttl=self.ttl)

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                await self._enlist()
            except Exception as exc:  # the store is down: the next renewal tries again
                log.warning("danmaku writer %s: renewing its listing failed (%s: %s)",
                            self.process, type(exc).__name__, exc)

    async def writers(self) -> set[str]:
        """The processes listed as writing danmaku behind (this one included)."""
        return {key[len(WRITERS):] for key in await self.cluster.keys(WRITERS)}

    async def close(self) -> None:
        if self._renewal is not None:
            self._renewal.cancel()
            await asyncio.gather(self._renewal, return_exceptions=True)
            self._renewal = None
        if self._subscription is not None:
            await self._subscription.close()
            self._subscription = None
            try:
                await self.cluster.delete(WRITERS + self.process)
            except Exception as exc:  # its listing expires after ``ttl``
                log.warning("leaving the danmaku writers failed (%s: %s)", type(exc).__name__, exc)

    async def flush_all(self) -> None:
        """Write this process's queue, and have every other process write its own, before
        returning (a process that does not answer within ``wait`` is dropped, logged)."""
        if self._subscription is None:
            await self._flush()
            return
        others = await self.writers() - {self.process}
        request_id = secrets.token_hex(6)
        request = self._requests[request_id] = _Request(others)
        try:
            if others:
                await self.cluster.publish(self.channel, f"flush\n{self.process}\n{request_id}")
            await self._flush()
            try:
                await asyncio.wait_for(request.done.wait(), self.wait)
            except asyncio.TimeoutError:
                silent = sorted(request.missing)
                log.warning("danmaku flush: %d process(es) did not answer within %.1f s (%s); dropped "
                            "from the writers", len(silent), self.wait, ", ".join(silent))
                for process in silent:
                    await self.cluster.delete(WRITERS + process)
            if request.failed:
                log.warning("danmaku flush: writing the queue failed on %s; their newest rows may be "
                            "missing until their next write", ", ".join(request.failed))
        finally:
            del self._requests[request_id]

    async def _received(self, message: str) -> None:
        fields = message.split("\n")
        if len(fields) == 3 and fields[0] == "flush":
            _, requester, request_id = fields
            if requester != self.process:
                self._tasks.spawn(self._answer(requester, request_id), name=f"danmaku-flush-{request_id}")
        elif len(fields) == 5 and fields[0] == "done":
            _, requester, request_id, responder, outcome = fields
            request = self._requests.get(request_id) if requester == self.process else None
            if request is not None and responder in request.missing:
                request.missing.discard(responder)
                if outcome != "ok":
                    request.failed.append(responder)
                if not request.missing:
                    request.done.set()
        else:
            log.warning("ignoring a malformed danmaku flush message")

    async def _answer(self, requester: str, request_id: str) -> None:
        outcome = "ok"
        try:
            await self._flush()
        except Exception as exc:
            outcome = "error"
            log.error("danmaku flush asked by process %s: writing this process's queue failed (%s: %s)",
                      requester, type(exc).__name__, exc)
        try:
            await self._enlist()  # back if dropped
            await self.cluster.publish(self.channel, f"done\n{requester}\n{request_id}\n{self.process}\n{outcome}")
        except Exception as exc:
            log.error("danmaku flush asked by process %s: answering failed (%s: %s)",
                      requester, type(exc).__name__, exc)
        self.answered += 1
