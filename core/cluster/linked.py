"""The local bus: one node's processes sharing the control plane's ``LocalCluster``.

Without Redis, a node with interaction worker processes still needs one set of keys and
channels. ``ClusterHub`` serves the control plane's ``LocalCluster`` on a Unix socket;
each worker's ``LinkedCluster`` is a ``Cluster`` whose every call is one request on that
socket (one JSON object a line, answered in order), and whose subscriptions are pushed
back on it. ``HubView`` is the control plane's own side: the same ``LocalCluster``,
called directly, but ``shared`` (what it publishes reaches the workers). Beside the
cluster, the hub serves named objects (``provide``: e.g. the danmaku rate limits), which
``call`` reaches from any process, so a feature's shared state can live once, in the
control plane.
"""

from __future__ import annotations

import abc
import asyncio
import functools
import itertools
import json
import logging
from typing import Any, Callable, Optional

from .base import Cluster, MessageHandler, Subscription
from .local import LocalCluster

__all__ = ["ClusterHub", "HubView", "LinkedCluster"]

log = logging.getLogger("stagepass.cluster")
#: the ``Cluster`` methods that are plain calls (arguments and results are JSON)
CALLS = ("get", "set", "set_if_absent", "compare_and_set", "delete", "expire", "keys", "incr", "hash_incr",
         "hash_get_all", "ordered_add", "ordered_remove", "ordered_members", "ordered_pop_all", "publish")
LIMIT = 16 * 1024 * 1024  # longest line (a published Socket.IO frame)


class ClusterHub:
    """Serves ``cluster`` (and the ``provide``d objects) to the node's other processes."""

    def __init__(self, cluster: LocalCluster, path: str) -> None:
        self.cluster = cluster
        self.path = path
        self.targets: dict[str, Any] = {"cluster": cluster}
        self._server: Optional[asyncio.AbstractServer] = None
        self._connections: set[asyncio.Task] = set()
        self._calls: set[asyncio.Task] = set()  # provided objects' calls under way

    def provide(self, name: str, make: Callable[[], Any]) -> Any:
        """The object served as ``name``, made on first use."""
        if name not in self.targets:
            self.targets[name] = make()
        return self.targets[name]

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._serve, self.path, limit=LIMIT)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(asyncio.current_task())  # type: ignore[arg-type]
        subscriptions: dict[int, Subscription] = {}

        def push(sub_id: int) -> MessageHandler:
            async def forward(message: str) -> None:
                if not writer.is_closing():
                    writer.write(json.dumps({"s": sub_id, "m": message}).encode() + b"\n")

            return forward

        try:
            while line := await reader.readline():
                request = json.loads(line)
                answer: dict[str, Any] = {"i": request["i"]}
                try:
                    if request["f"] == "subscribe":
                        subscriptions[request["s"]] = await self.cluster.subscribe(request["a"][0], push(request["s"]))
                        answer["r"] = None
                    elif request["f"] == "unsubscribe":
                        sub = subscriptions.pop(request["s"], None)
                        if sub is not None:
                            await sub.close()
                        answer["r"] = None
                    else:
                        target = self.targets[request.get("t", "cluster")]
                        if target is not self.cluster:
                            if request["f"].startswith("_"):
                                raise ValueError(f"not a public method: {request['f']}")
                            # a provided object's call (a batch of rows to commit) may take a
                            # while: answered when done, not in turn, so the connection's
                            # cluster calls (the danmaku feed) never wait behind it
                            self._call(writer, answer, getattr(target, request["f"]), request)
                            continue
                        if request["f"] not in CALLS:
                            raise ValueError(f"not a cluster call: {request['f']}")
                        method = getattr(target, request["f"])
                        answer["r"] = await _maybe_await(method(*request["a"], **request.get("k", {})))
                except Exception as exc:
                    answer["e"] = f"{type(exc).__name__}: {exc}"
                writer.write(json.dumps(answer).encode() + b"\n")
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("local bus: a connection failed")
        finally:
            for sub in subscriptions.values():
                await sub.close()
            writer.close()
            self._connections.discard(asyncio.current_task())  # type: ignore[arg-type]

    def _call(self, writer: asyncio.StreamWriter, answer: dict[str, Any], method: Callable[..., Any],
              request: dict[str, Any]) -> None:
        """Run a provided object's method in a task of its own, and answer when it is done
        (if the asking process is still there). ``close`` waits for it: a batch of rows a
        worker handed over is written even if that worker is gone."""
        async def run() -> None:
            try:
                answer["r"] = await _maybe_await(method(*request["a"], **request.get("k", {})))
            except Exception as exc:
                answer["e"] = f"{type(exc).__name__}: {exc}"
            if not writer.is_closing():
                writer.write(json.dumps(answer).encode() + b"\n")

        task = asyncio.create_task(run(), name=f"local-bus-{request.get('t')}.{request['f']}")
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)

    async def close(self) -> None:
        if self._calls:  # rows handed over are written before the bus goes
            await asyncio.gather(*list(self._calls), return_exceptions=True)
        if self._server is not None:
            self._server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None


async def _maybe_await(value: Any) -> Any:
    return await value if asyncio.iscoroutine(value) else value


class HubView(Cluster):
    """The control plane's cluster for the features its workers share: ``LocalCluster``
    itself, seen as shared."""

    kind = "local"
    shared = True

    def __init__(self, hub: ClusterHub) -> None:
        self.hub = hub

    def provide(self, name: str, make: Callable[[], Any]) -> None:
        self.hub.provide(name, make)

    async def call(self, target: str, method: str, *args: Any) -> Any:
        return await _maybe_await(getattr(self.hub.targets[target], method)(*args))

    async def subscribe(self, channel: str, handler: MessageHandler) -> Subscription:
        return await self.hub.cluster.subscribe(channel, handler)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        """Nothing: the ``LocalCluster`` is the node's, closed by its owner."""


class _LinkedSubscription(Subscription):
    def __init__(self, cluster: "LinkedCluster", sub_id: int, channel: str) -> None:
        self.id, self.channel, self._cluster = sub_id, channel, cluster

    async def close(self) -> None:
        if self._cluster._handlers.pop(self.id, None) is not None:
            try:
                await self._cluster._request({"f": "unsubscribe", "s": self.id, "a": []})
            except ConnectionError:  # the bus is gone, and the subscription with it
                pass


class LinkedCluster(Cluster):
    """A worker's cluster: every call answered by the control plane's ``ClusterHub``."""

    kind = "local"
    shared = True

    def __init__(self, path: str) -> None:
        self.path = path
        self._writer: Optional[asyncio.StreamWriter] = None
        self._reading: Optional[asyncio.Task] = None
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future] = {}
        self._handlers: dict[int, MessageHandler] = {}
        self._messages: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
        self._handling: Optional[asyncio.Task] = None
        self._lost = False  # the control plane closed the bus

    async def _cluster_call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return await self._request({"t": "cluster", "f": name, "a": list(args), "k": kwargs})

    async def start(self) -> None:
        reader, self._writer = await asyncio.open_unix_connection(self.path, limit=LIMIT)
        self._reading = asyncio.create_task(self._read(reader), name="local-bus")
        self._handling = asyncio.create_task(self._handle(), name="local-bus-messages")

    async def _handle(self) -> None:
        """Messages to the handlers in order, apart from the reader (a handler may call the bus)."""
        while True:
            sub_id, text = await self._messages.get()
            handler = self._handlers.get(sub_id)
            if handler is not None:
                try:
                    await handler(text)
                except Exception:
                    log.exception("handling a message from the local bus failed")

    async def _request(self, request: dict) -> Any:
        if self._writer is None or self._lost:
            raise ConnectionError("the local bus is not connected")
        request["i"] = next(self._ids)
        future = self._waiting[request["i"]] = asyncio.get_running_loop().create_future()
        self._writer.write(json.dumps(request).encode() + b"\n")
        answer = await future
        if "e" in answer:
            raise RuntimeError(f"local bus: {answer['e']}")
        return answer["r"]

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while line := await reader.readline():
                message = json.loads(line)
                if "s" in message:
                    self._messages.put_nowait((message["s"], message["m"]))
                else:
                    future = self._waiting.pop(message["i"], None)
                    if future is not None and not future.done():
                        future.set_result(message)
        finally:
            self._lost = True
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(ConnectionError("the local bus closed"))
            self._waiting.clear()

    def provide(self, name: str, make: Callable[[], Any]) -> None:
        """Nothing: the control plane's ``HubView`` made it."""

    async def call(self, target: str, method: str, *args: Any) -> Any:
        return await self._request({"t": target, "f": method, "a": list(args)})

    async def subscribe(self, channel: str, handler: MessageHandler) -> Subscription:
        sub_id = next(self._ids)
        self._handlers[sub_id] = handler
        await self._request({"f": "subscribe", "s": sub_id, "a": [channel]})
        return _LinkedSubscription(self, sub_id, channel)

    async def ping(self) -> None:
        if self._writer is None or self._lost or self._writer.is_closing():
            raise ConnectionError("the local bus is not connected")

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        for task in (self._reading, self._handling):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._reading = self._handling = None


def _forwarding(cls: type, call: Callable[[Any, str], Callable]) -> type:
    """Give ``cls`` every plain ``Cluster`` call (``CALLS``), each made by ``call(self, name)``."""
    for name in CALLS:
        def method(self: Any, *args: Any, _name: str = name, **kwargs: Any) -> Any:
            return call(self, _name)(*args, **kwargs)

        method.__name__ = name
        setattr(cls, name, method)
    abc.update_abstractmethods(cls)
    return cls


_forwarding(HubView, lambda self, name: getattr(self.hub.cluster, name))
_forwarding(LinkedCluster, lambda self, name: functools.partial(self._cluster_call, name))
