"""Room broadcasts encoded once: the same WebSocket frame bytes go to every viewer.

python-socketio's ``AsyncManager.emit`` creates one asyncio task per recipient per
frame, and python-engineio hands each packet to a per-socket writer task that encodes
it again; at a thousand viewers that is thousands of tasks per danmaku frame. Here a
room emit (no ack callback, text payload) is encoded once into a finished WebSocket
frame and written with ``transport.write`` to every recipient whose writer is idle;
the Socket.IO and Engine.IO protocols are untouched (a stock socket.io-client 4 reads
the very bytes python-engineio would have sent).

The extension points used, all of python-socketio/python-engineio's own:

- ``FastEmit`` is a client manager (``client_manager=``); ``FastClusterManager`` is the
  cluster's pub/sub manager with the same emit, so frames from other processes fan out
  the same way.
- ``StagepassEngineIO`` overrides ``create_queue`` (to know when a socket's writer task
  is idle, so a direct write never overtakes a queued packet), ``send_packet`` (a packet
  for one socket, such as every danmaku's ack, is written the same way) and the aiohttp
  WebSocket driver of its async mode (to know each socket's transport and to choose
  permessage-deflate: off by default, as in Node's engine.io).

A recipient that is not a plain idle WebSocket (long-polling, upgrading, compressed,
or a slow reader whose transport buffer is filling) gets the packet through its
Engine.IO queue as before, without a task.
"""

from __future__ import annotations

import asyncio
import logging
import re
from json import dumps as _json_dumps
from typing import Any, Optional

import engineio
import socketio
from aiohttp import WSMsgType, web
from aiohttp.http import WebSocketWriter
from engineio import packet as eio_packet
from engineio.async_drivers import aiohttp as eio_aiohttp
from socketio import packet as sio_packet

from core.cluster import Cluster

from .socketio_manager import ClusterManager

__all__ = ["BroadcastStats", "FastClusterManager", "FastEmit", "StagepassEngineIO", "StagepassSocketIO",
           "client_manager", "encode_json", "event_packet", "websocket_frame"]

log = logging.getLogger("stagepass.interaction")

#: a socket whose transport holds more than this many unsent bytes gets its frames queued
SLOW_BUFFER = 256 * 1024
_PLAIN = re.compile(r"^[A-Za-z0-9:_.-]+$")  # an event name JSON encodes as itself between quotes


class BroadcastStats:
    """What the broadcast path did: frames encoded, written directly, queued."""

    __slots__ = ("frames", "direct", "queued")

    def __init__(self) -> None:
        self.frames = 0
        self.direct = 0
        self.queued = 0


class _Capture:
    """A transport that keeps what aiohttp's WebSocketWriter writes (to encode a frame once)."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.chunks.append(bytes(data))

    def is_closing(self) -> bool:
        return False


class _NoFlowControl:
    _paused = False


_capture = _Capture()
_frame_writer = WebSocketWriter(_NoFlowControl(), _capture, limit=1 << 62)  # type: ignore[arg-type]


def encode_json(data: Any) -> str:
    """JSON text as python-socketio encodes a packet's data (compact, ASCII)."""
    return _json_dumps(data, separators=(",", ":"))


def event_packet(namespace: str, event: str, data_json: str) -> str:
    """The Socket.IO EVENT packet ``event`` with one argument, given as JSON text: what
    ``socketio.packet.Packet(EVENT, namespace, [event, data]).encode()`` makes of it."""
    head = "2" if namespace == "/" else "2" + namespace + ","
    return head + '["' + event + '",' + data_json + "]" if _PLAIN.match(event) else \
        head + "[" + encode_json(event) + "," + data_json + "]"


def websocket_frame(text: str) -> bytes:
    """One unmasked, uncompressed WebSocket text frame (server to client), by aiohttp's writer."""
    _capture.chunks.clear()
    _frame_writer._write_websocket_frame(text.encode(), WSMsgType.TEXT, 0)
    frame = b"".join(_capture.chunks)
    _capture.chunks.clear()
    return frame


class _WatchedQueue(asyncio.Queue):
    """An Engine.IO socket's outgoing queue that knows whether its writer waits on it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.waiting = 0

    async def get(self) -> Any:
        self.waiting += 1
        try:
            return await super().get()
        finally:
            self.waiting -= 1


class _WebSocket(eio_aiohttp.WebSocket):
    """python-engineio's aiohttp WebSocket driver, with permessage-deflate chosen by the
    server (``compression``) and the socket's transport registered for direct writes."""

    async def __call__(self, environ: dict) -> web.StreamResponse:
        request: web.Request = environ["aiohttp.request"]
        server: StagepassEngineIO = self.server
        self._sock = web.WebSocketResponse(max_msg_size=server.max_http_buffer_size,
                                           compress=server.websocket_compression)
        await self._sock.prepare(request)
        self.environ = environ
        sid = getattr(self.handler, "__self__", None)
        sid = getattr(sid, "sid", None)
        transport = request.transport
        if sid is not None and transport is not None and not self._sock.compress:
            server.direct[sid] = transport
        try:
            await self.handler(self)
        finally:
            if sid is not None:
                server.direct.pop(sid, None)
        return self._sock


class StagepassEngineIO(engineio.AsyncServer):
    """python-engineio's server with watched queues and our WebSocket driver."""

    def __init__(self, *args: Any, websocket_compression: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.websocket_compression = websocket_compression
        #: Engine.IO sid -> transport of a WebSocket that can take frames directly
        self.direct: dict[str, asyncio.Transport] = {}
        self._async = {**self._async, "websocket": _WebSocket}

    def create_queue(self, *args: Any, **kwargs: Any) -> asyncio.Queue:
        return _WatchedQueue(*args, **kwargs)

    def idle_transport(self, eio_sid: str, sock: Any) -> Optional[asyncio.Transport]:
        """The transport of ``sock`` when a frame may be written to it now, past its queue: a
        plain WebSocket whose writer task waits on an empty queue (so nothing is overtaken)
        and whose transport is not filling up (a slow reader keeps the queue's backpressure)."""
        transport = self.direct.get(eio_sid)
        queue = sock.queue
        if (transport is not None and sock.upgraded and not sock.closing and queue.waiting
                and queue.empty() and not transport.is_closing()
                and transport.get_write_buffer_size() < SLOW_BUFFER):
            return transport
        return None

    async def send_packet(self, sid: str, pkt: eio_packet.Packet) -> None:
        """One packet to one socket (a danmaku's ack, an emit to a sid): written at once when
        its WebSocket is idle (``idle_transport``), which spares the writer task's wake-up,
        its ``wait_for`` timer and a second encoding; through its queue otherwise."""
        sock = self.sockets.get(sid)
        if sock is not None and not sock.closed:
            transport = self.idle_transport(sid, sock)
            if transport is not None:
                encoded = pkt.encode()
                if isinstance(encoded, str):  # text; binary packets take the queue
                    if await sock.check_ping_timeout():  # as ``AsyncSocket.send``: a gone client is closed
                        transport.write(websocket_frame(encoded))
                    return
        await super().send_packet(sid, pkt)


class StagepassSocketIO(socketio.AsyncServer):
    """python-socketio's server on ``StagepassEngineIO``."""

    def __init__(self, *args: Any, websocket_compression: bool = False, **kwargs: Any) -> None:
        self._websocket_compression = websocket_compression
        super().__init__(*args, **kwargs)

    def _engineio_server_class(self):  # noqa: ANN202 - python-socketio's extension point
        compression = self._websocket_compression

        class _Server(StagepassEngineIO):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, websocket_compression=compression, **kwargs)

        return _Server


class FastEmit(socketio.AsyncManager):
    """A client manager whose room emits encode once and write without tasks."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stats = BroadcastStats()

    async def emit(self, event: str, data: Any, namespace: Optional[str], room: Any = None,
                   skip_sid: Any = None, callback: Any = None, to: Any = None, **kwargs: Any) -> None:
        room = to or room
        eio = getattr(self.server, "eio", None)
        if callback is not None or not isinstance(eio, StagepassEngineIO) or namespace not in self.rooms:
            return await super().emit(event, data, namespace, room=room, skip_sid=skip_sid,
                                      callback=callback, **kwargs)
        if isinstance(data, tuple):
            args = list(data)
        elif data is not None:
            args = [data]
        else:
            args = []
        encoded = self.server.packet_class(sio_packet.EVENT, namespace=namespace, data=[event] + args).encode()
        if not isinstance(encoded, str):  # binary attachments: several packets, python-socketio's path
            return await super().emit(event, data, namespace, room=room, skip_sid=skip_sid, **kwargs)
        self.write(eio, namespace, room, skip_sid, encoded)

    def write_local(self, namespace: str, room: str, event: str, data_json: str) -> None:
        """Send ``event`` with data already encoded as JSON to the participants of ``room``
        on this process only (never through the cluster: each process sends its own)."""
        self.write(self.server.eio, namespace, room, None, event_packet(namespace, event, data_json))

    def write(self, eio: StagepassEngineIO, namespace: str, room: Any, skip_sid: Any, encoded: str) -> None:
        """Send one encoded Socket.IO packet to every participant of ``room`` on this process."""
        if not isinstance(skip_sid, list):
            skip_sid = [skip_sid] if skip_sid is not None else []
        pkt = eio_packet.Packet(eio_packet.MESSAGE, encoded)
        frame: Optional[bytes] = None
        stats = self.stats
        stats.frames += 1
        sockets, idle = eio.sockets, eio.idle_transport
        for sid, eio_sid in self.get_participants(namespace, room):
            if skip_sid and sid in skip_sid:
                continue
            sock = sockets.get(eio_sid)
            if sock is None or sock.closed:
                continue
            transport = idle(eio_sid, sock)
            if transport is not None:
                if frame is None:
                    frame = websocket_frame(pkt.encode())
                transport.write(frame)
                stats.direct += 1
            else:
                sock.queue.put_nowait(pkt)
                stats.queued += 1


class FastClusterManager(ClusterManager, FastEmit):
    """The cluster's pub/sub manager (every process's emits reach every process's clients)
    whose local fan-out is ``FastEmit``'s."""


def client_manager(cluster: Cluster) -> FastEmit:
    """Socket.IO's client manager: through the cluster when it is shared, in-process otherwise."""
    return FastClusterManager(cluster) if cluster.shared else FastEmit()
