"""Worker pipes: a room's packets cross from one media worker to another once.

The worker hosting a room's publisher (its *origin*) sends every source packet, after SRTP
unprotect and the fanout's de-duplication, as plain RTP to each other worker of the machine
that has viewers of the room (mediasoup's PipeTransport): one unix datagram per packet on
the receiving worker's ``PipeSocket``. There a ``PipeSource`` is the room's source, as an
edge source is on an edge node: it feeds the same fanouts, so the viewers there get the
same header rewrite. What flows back up: keyframe requests (PLI), and a NACK for each
packet the receiving worker's history cannot answer (the origin resends it from its own
history, or asks its publisher for a keyframe when it has not got it either). The
origin's sender reports cross too, carried forward to the moment they are sent, so
viewers on every worker keep lip sync.

One datagram::

    type (1 byte) kind (1) codec (1) generation & 0xff (1) channel (4) body

``channel`` names one link (a room, from one worker to another), given by the control
plane; bodies: RTP ``seq (2) timestamp (4) marker (1) payload``; sender report ``ntp (8)
rtp (4) clock rate (4)``; PLI nothing; NACK ``seq (2)`` each.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import secrets
import socket
import struct
import time
from pathlib import Path
from typing import Awaitable, Callable, Optional, Protocol

from aiortc.rtp import RtpPacket

from core.close_listeners import CloseListener, CloseListeners
from core.logs import context_logger
from core.tasks import TaskOwner
from mediaserver.sfu.batched_send import hold, release
from mediaserver.sfu.codecs import FORWARDED_CODECS
from mediaserver.sfu.fanout import Fanout

__all__ = ["PipeOut", "PipeSocket", "PipeSource", "socket_path"]

RTP, SENDER_REPORT, PLI, NACK = 1, 2, 3, 4
KINDS = ("video", "audio")
CODECS = tuple(codec for kind in KINDS for codec in FORWARDED_CODECS[kind])
_CODEC_IDS = {codec: i for i, codec in enumerate(CODECS)}
_HEADER = struct.Struct("!BBBBI")
_RTP = struct.Struct("!BBBBIHIB")
_SENDER_REPORT = struct.Struct("!BBBBIQII")
_SEQ = struct.Struct("!H")
_NTP_UNIT = float(1 << 32)
_BUFFER = 4 << 20  # socket buffers: a few hundred ms of a busy room
_BACKLOG = 4 << 20  # bytes held for workers whose queue is full (the same few hundred ms)
_RETRY_EVERY = 0.002  # seconds between tries to send what a busy worker could not take
_NACK_AGAIN = 0.05  # seconds before the same sequence number is asked again upstream
_SENDER_REPORT_EVERY = 1.0


def socket_path(directory: Path, worker: int) -> str:
    return str(directory / f"pipe-{worker}.sock")


class Endpoint(Protocol):
    def datagram(self, kind: int, kind_index: int, codec: int, generation: int, body: memoryview) -> None: ...


class PipeSocket:
    """The unix datagram socket a worker receives pipe traffic on (packets for its
    relays, feedback for its origins), and sends its own through."""

    def __init__(self, path: str, log: logging.Logger | logging.LoggerAdapter) -> None:
        self.path = path
        self.log = log
        self.endpoints: dict[int, Endpoint] = {}
        self.sent = self.send_failures = self.received = 0
        self._backlog: dict[str, collections.deque[bytes]] = {}  #: per worker, what it could not take yet
        self._backlog_bytes = 0
        self._retry: Optional[asyncio.TimerHandle] = None
        Path(path).unlink(missing_ok=True)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            self._sock.setsockopt(socket.SOL_SOCKET, option, _BUFFER)
        self._sock.bind(path)
        self._sock.setblocking(False)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._sock.fileno(), self._readable)

    def send(self, path: str, data: bytes) -> bool:
        """One datagram to the worker at ``path``. A worker's queue takes only
        ``net.unix.max_dgram_qlen`` datagrams (10 by default, whatever the buffer sizes) until
        it reads: while it is busy, what it cannot take yet waits here, in order, and goes
        when it can (``_BACKLOG`` bytes at most). False (counted) when the datagram is lost:
        the worker is gone, or has not read the backlog: a lost packet, NACKed if it matters."""
        if path in self._backlog:  # behind what already waits for that worker
            return self._hold(path, data)
        try:
            self._sock.sendto(data, path)
        except BlockingIOError:
            return self._hold(path, data)
        except OSError:
            self.send_failures += 1
            return False
        self.sent += 1
        return True

    def _hold(self, path: str, data: bytes) -> bool:
        if self._backlog_bytes + len(data) > _BACKLOG:
            self.send_failures += 1
            return False
        self._backlog.setdefault(path, collections.deque()).append(data)
        self._backlog_bytes += len(data)
        if self._retry is None:
            self._retry = self._loop.call_later(_RETRY_EVERY, self._send_backlog)
        return True

    def _send_backlog(self) -> None:
        self._retry = None
        for path, held in list(self._backlog.items()):
            while held:
                try:
                    self._sock.sendto(held[0], path)
                except BlockingIOError:
                    break
                except OSError:  # the worker is gone: what waited for it is lost
                    self.send_failures += len(held)
                    self._backlog_bytes -= sum(map(len, held))
                    held.clear()
                    break
                self._backlog_bytes -= len(held.popleft())
                self.sent += 1
            if not held:
                del self._backlog[path]
        if self._backlog:
            self._retry = self._loop.call_later(_RETRY_EVERY, self._send_backlog)

    def _readable(self) -> None:
        sock = self._sock
        endpoints = self.endpoints
        for _ in range(256):  # then let the loop run other callbacks
            try:
                data = sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.log.exception("pipe socket receive failed")
                return
            self.received += 1
            if len(data) < _HEADER.size:
                continue
            kind, kind_index, codec, generation, channel = _HEADER.unpack_from(data)
            endpoint = endpoints.get(channel)
            if endpoint is not None:
                try:
                    endpoint.datagram(kind, kind_index, codec, generation, memoryview(data)[_HEADER.size:])
                except Exception:
                    self.log.exception("pipe channel %d: a datagram failed", channel)

    def close(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        Path(self.path).unlink(missing_ok=True)


class PipeOut:
    """On the origin worker: sends a room's source packets to one other worker (a sink on
    the room's fanouts) and answers the feedback coming back up."""

    def __init__(self, sock: PipeSocket, channel: int, to_path: str, fanouts: dict[str, Fanout],
                 log: logging.LoggerAdapter) -> None:
        self.sock = sock
        self.channel = channel
        self.to_path = to_path
        self.fanouts = fanouts
        self.log = log
        self.resent = self.keyframes_asked = 0
        self.tasks = TaskOwner(log)
        self._sinks = {kind: self._sink_for(KINDS.index(kind)) for kind in fanouts}

    def start(self) -> None:
        self.sock.endpoints[self.channel] = self
        for kind, fanout in self.fanouts.items():
            fanout.add_sink(self._sinks[kind])
        self.tasks.spawn(self._sender_reports(), name=f"pipe-{self.channel}-sr")

    def _sink_for(self, kind_index: int):
        pack, send, channel, path, codec_ids = _RTP.pack, self.sock.send, self.channel, self.to_path, _CODEC_IDS

        def sink(packet: RtpPacket, codec: str, generation: int, keyframe: bool) -> None:
            send(path, pack(RTP, kind_index, codec_ids[codec], generation & 0xFF, channel,
                            packet.sequence_number, packet.timestamp, packet.marker) + packet.payload)

        return sink

    async def _sender_reports(self) -> None:
        """The origin's latest sender report of each kind, carried forward to now."""
        while True:
            await asyncio.sleep(_SENDER_REPORT_EVERY)
            for kind, fanout in self.fanouts.items():
                clock = fanout.source_clock
                if clock is None:
                    continue
                ntp, rtp, at, rate = clock
                elapsed = time.time() - at
                self.sock.send(self.to_path, _SENDER_REPORT.pack(
                    SENDER_REPORT, KINDS.index(kind), 0, fanout.generation & 0xFF, self.channel,
                    (ntp + int(elapsed * _NTP_UNIT)) & 0xFFFFFFFFFFFFFFFF, (rtp + int(elapsed * rate)) & 0xFFFFFFFF,
                    rate))

    def datagram(self, kind: int, kind_index: int, codec: int, generation: int, body: memoryview) -> None:
        fanout = self.fanouts.get(KINDS[kind_index]) if kind_index < len(KINDS) else None
        if fanout is None:
            return
        if kind == PLI:
            fanout.request_keyframe()
        elif kind == NACK:
            for (seq,) in _SEQ.iter_unpack(body[:len(body) - len(body) % 2]):
                self._resend(fanout, kind_index, seq)

    def _resend(self, fanout: Fanout, kind_index: int, seq: int) -> None:
        kept = fanout.kept(seq)
        if kept is None:  # not here either: the viewers there start again on a keyframe
            self.keyframes_asked += 1
            fanout.request_keyframe()
            return
        ts, marker, payload, codec = kept
        self.resent += 1
        self.sock.send(self.to_path, _RTP.pack(RTP, kind_index, _CODEC_IDS[codec], fanout.generation & 0xFF,
                                               self.channel, seq, ts, marker) + payload)

    async def close(self) -> None:
        self.sock.endpoints.pop(self.channel, None)
        for kind, fanout in self.fanouts.items():
            fanout.remove_sink(self._sinks[kind])
        await self.tasks.close()


class PipeSource:
    """On a worker with viewers of a room hosted elsewhere: the room's source (a
    ``LivePublisher``), fed by the origin worker's ``PipeOut`` through ``channel``."""

    role = "relay"

    def __init__(self, room_name: str, sock: PipeSocket, channel: int, origin_path: str,
                 fanouts: dict[str, Fanout], on_closed: Callable[["PipeSource"], Awaitable[None]],
                 room_tasks: TaskOwner, stale_after: float) -> None:
        self.id = secrets.token_urlsafe(16)
        self.room_name = room_name
        self.sock = sock
        self.channel = channel
        self.origin_path = origin_path
        self.codecs: dict[str, str] = {}
        self.log = context_logger("stagepass.relay", room_name, self.id[:8])
        self._fanouts = fanouts
        self._on_closed = on_closed
        self._stale_after = stale_after
        self._generations: dict[int, int] = {}
        self._asked: dict[tuple[int, int], float] = {}
        self._last: Optional[float] = None
        self._bytes = 0
        self._closed = False
        #: a listener registered after the close runs on the room's tasks
        self._close_listeners = CloseListeners(self.log, late=room_tasks)

    @property
    def closed(self) -> bool:
        return self._closed

    def attach(self) -> None:
        for kind, fanout in self._fanouts.items():
            fanout.attach_source(self._pli)
            fanout.source_recovering = self._recovering_for(KINDS.index(kind))
        self.sock.endpoints[self.channel] = self

    def datagram(self, kind: int, kind_index: int, codec: int, generation: int, body: memoryview) -> None:
        if kind_index >= len(KINDS) or codec >= len(CODECS):
            return
        fanout = self._fanouts[KINDS[kind_index]]
        previous = self._generations.get(kind_index)
        if previous != generation:
            self._generations[kind_index] = generation
            if previous is not None:  # the origin's publisher changed: viewers resume on a keyframe
                fanout.attach_source(self._pli)
        if kind == RTP:
            seq, ts, marker = struct.unpack_from("!HIB", body)
            packet = RtpPacket(marker=marker, sequence_number=seq, timestamp=ts, payload=bytes(body[7:]))
            self._last = now = time.perf_counter()
            self._bytes += len(body)
            name = CODECS[codec]
            self.codecs[KINDS[kind_index]] = name
            hold()  # its copies leave when the fanout returns (as the publisher's tap does)
            try:
                fanout.on_packet(packet, name, now)
            finally:
                release()
        elif kind == SENDER_REPORT:
            ntp, rtp, rate = struct.unpack_from("!QII", body)
            fanout.on_sender_report(ntp, rtp, rate)

    async def _pli(self) -> None:
        self.sock.send(self.origin_path, _HEADER.pack(PLI, 0, 0, 0, self.channel))

    def _recovering_for(self, kind_index: int) -> Callable[[int], bool]:
        def recovering(seq: int) -> bool:
            """A viewer here NACKed a packet this worker never got: ask the origin for it
            (once per ``_NACK_AGAIN``); the viewer waits for it."""
            now = time.monotonic()
            key = (kind_index, seq)
            if now - self._asked.get(key, 0.0) >= _NACK_AGAIN:
                self._asked[key] = now
                if len(self._asked) > 4096:
                    self._asked = {k: t for k, t in self._asked.items() if now - t < 1.0}
                self.sock.send(self.origin_path, _HEADER.pack(NACK, kind_index, 0, 0, self.channel) + _SEQ.pack(seq))
            return True

        return recovering

    def last_media(self) -> Optional[float]:
        return self._last

    def is_stale(self) -> bool:
        return self._closed or (self._last is not None and time.perf_counter() - self._last > self._stale_after)

    async def bytes_received(self) -> Optional[int]:
        return self._bytes

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.sock.endpoints.get(self.channel) is self:
            del self.sock.endpoints[self.channel]
        for fanout in self._fanouts.values():
            fanout.detach_source(self._pli)
        self.log.info("relay closed")
        await self._on_closed(self)  # type: ignore[arg-type]
        await self._close_listeners.run()

    def on_close(self, listener: CloseListener) -> None:
        """Run ``listener`` once this relay closed; at once if it already has."""
        self._close_listeners.add(listener)
