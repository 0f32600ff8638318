"""``RtmpIngest``: ``rtmp://HOST:PORT/live/<stream key>``, as OBS, FFmpeg and hardware
encoders publish.

The protocol (handshake, chunk stream, AMF commands) is pyrtmp's; this module decides:
the application must be ``live``; the stream name is a room's stream key, which
``resolve_key`` turns into the room (a wrong key is refused with
``NetStream.Publish.BadName`` and logged without the key); the room then applies the same
publisher policy as WHIP (``RoomBusy`` -> ``NetStream.Publish.BadName`` too: the name is
taken). ``deleteStream``/``closeStream`` is the encoder's "stop streaming", which ends the
broadcast like a WHIP ``DELETE``; a connection that just drops leaves the broadcast open
for the encoder to come back, like a WebRTC publisher that drops.

With media workers (``--workers N``) the listener stays in the control plane, which owns
the keys (the paywall's catalog), and the room's publisher must be on the room's host
worker, where its broadcast is recorded. Two ways were open: convert RTMP to RTP here and
send every packet to the host over a pipe, or hand the encoder's TCP connection itself to
the host. The second is done (``hand_off``): no second copy of every packet through this
process, no AAC -> Opus encoder on the control plane's loop, and the publisher is the same
``RtmpPublisher`` as in one process, so the busy and stale policies, the reconnecting
encoder and the recording are the host's room's own. The control plane reads the
connection up to ``publish`` (handshake, ``connect``, ``createStream``: no room is known
before the stream key), resolves the key, and passes the socket with the protocol state
(``RtmpHandover``) to the worker the placement rules choose; the worker answers the
``publish`` (``Publish.Start``, or the busy refusal) and reads the media from then on
(``RtmpIngest.adopt``).

Several nodes: ``may_publish`` refuses an encoder while another node originates the room,
and ``claim`` makes this node the room's origin once its publisher is accepted (as WHIP
does): two nodes that took an encoder at the same instant cannot both originate the room;
the one whose claim fails refuses its encoder (``NetStream.Publish.BadName``) and closes
its publisher. The claim comes after the busy check and before ``Publish.Start``, which
encoders take for success (OBS shows "live"), so a refused encoder is never told it is on
air: in one process the ingest claims; with media workers the claim stays the control
plane's (it holds the node registry) and travels with the hand-over (``HandOff``), and the
worker asks for it (``adopt``'s ``claim``) before it answers.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
from typing import Any, Awaitable, Callable, Optional, Protocol

from bitstring import BitStream

from mediaserver.live.errors import RoomBusy
from core.logs import context_logger
from core.tasks import TaskOwner
from mediaserver.live.room import Room
from .flv import FlvError
from .rtmp_publisher import RtmpPublisher

# pyrtmp configures the root logger when imported (basicConfig at DEBUG) and sets its own logger to
# DEBUG: undone, level included (a root at DEBUG made aiortc build a log record for every packet)
_root_handlers = list(logging.getLogger().handlers)
_root_level = logging.getLogger().level
from pyrtmp import StreamClosedException  # noqa: E402
from pyrtmp.amf.serializers import AMF0Serializer  # noqa: E402
from pyrtmp.messages import Chunk  # noqa: E402
from pyrtmp.messages.audio import AudioMessage  # noqa: E402
from pyrtmp.messages.command import NCConnect, NCCreateStream, NSCloseStream, NSDeleteStream, NSPublish  # noqa: E402
from pyrtmp.messages.factory import MessageFactory  # noqa: E402
from pyrtmp.messages.protocol_control import SetChunkSize  # noqa: E402
from pyrtmp.messages.user_control import StreamBegin  # noqa: E402
from pyrtmp.messages.video import VideoMessage  # noqa: E402
from pyrtmp.rtmp import SimpleRTMPController  # noqa: E402
from pyrtmp.session_manager import SessionManager  # noqa: E402

from .rtmp_handover import RtmpHandover, restore_session  # noqa: E402

logging.getLogger().handlers[:] = _root_handlers
logging.getLogger().setLevel(_root_level)
for _name in ("pyrtmp.rtmp", "pyrtmp.messages", "pyrtmp.messages.command", "pyrtmp.messages.data",
              "pyrtmp.messages.user_control"):
    logging.getLogger(_name).setLevel(logging.NOTSET)
logging.getLogger("pyrtmp").setLevel(logging.ERROR)  # "unknown command FCPublish" and the like

__all__ = ["APP_NAME", "HandOff", "KeyResolver", "PublishCheck", "PublishClaim", "PublishRefused", "Rooms",
           "RtmpHandover", "RtmpIngest"]

APP_NAME = "live"
#: stream key -> room name, or None for a key no room has
KeyResolver = Callable[[str], Awaitable[Optional[str]]]


#: room -> why this node may not take its publisher (several nodes: it is live on another),
#: or None
PublishCheck = Callable[[str], Awaitable[Optional[str]]]
#: room -> why this node may not originate it after all (another node claimed it first), or
#: None once this node is its origin; called after its publisher was accepted, before the
#: encoder is told ``Publish.Start``
PublishClaim = Callable[[str], Awaitable[Optional[str]]]
#: passes a connection on to the process that hosts its room (media workers), with the claim
#: that process must have confirmed before it answers the encoder (None: no claim), and
#: returns the publisher it became there; it must hand the transport over before its first
#: await. ``RoomBusy`` and the like once it is handed over: the encoder was answered there.
HandOff = Callable[[RtmpHandover, Optional[PublishClaim]], Awaitable[object]]


class Rooms(Protocol):
    """Where the publishers go: a ``RoomRegistry`` (this process's rooms)."""

    def open(self, name: str) -> Room: ...

    def get(self, name: str) -> Optional[Room]: ...

logger = logging.getLogger("stagepass.rtmp")


def _on_status(stream_id: int, level: str, code: str, description: str) -> Chunk:
    """An ``onStatus`` command (RTMP 7.2.2) on the stream the encoder publishes to."""
    data = BitStream()
    for value in ("onStatus", 0, None, {"level": level, "code": code, "description": description}):
        AMF0Serializer.create_object(data, value)
    return Chunk(chunk_type=0, chunk_id=5, timestamp=0, msg_length=len(data.bytes), msg_type_id=0x14,
                 msg_stream_id=stream_id, payload=data.bytes)


class PublishRefused(Exception):
    """The encoder was told why it may not publish (an ``onStatus`` error) and is disconnected."""


class _HandedOver(Exception):
    """The connection is another process's now: this one neither reads nor closes it."""


class _Controller(SimpleRTMPController):
    """One instance per server; the per-connection state lives in ``session.state``.
    pyrtmp's ``SimpleRTMPController`` answers connect and createStream."""

    def __init__(self, ingest: "RtmpIngest") -> None:
        super().__init__()
        self.ingest = ingest

    async def client_callback(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One encoder connection, from the handshake."""
        session = SessionManager(reader=reader, writer=writer)
        session.state = {"publisher": None, "log": context_logger("stagepass.rtmp")}
        await self.serve(session, handshake=True)

    async def serve(self, session: SessionManager, handshake: bool) -> None:
        """pyrtmp's read loop, with refusals and drops logged in one line each (the
        library's own loop logs every error as a traceback)."""
        task = asyncio.current_task()
        assert task is not None
        self.ingest._connections.add(task)
        handed = False
        try:
            if handshake:
                await session.handshake()
            async for chunk in session.read_chunks_from_stream():
                await self._dispatch(session, MessageFactory.from_chunk(chunk))
        except _HandedOver:
            handed = True
        except (StreamClosedException, asyncio.IncompleteReadError, ConnectionError, PublishRefused):
            pass
        except Exception:
            session.state["log"].exception("RTMP connection from %s failed", session.peername)
        finally:
            self.ingest._connections.discard(task)
            if not handed:
                await self.cleanup(session)
                session.writer.close()

    async def _dispatch(self, session: SessionManager, message: Chunk) -> None:
        if isinstance(message, NCConnect):
            await self.on_nc_connect(session, message)
        elif isinstance(message, NCCreateStream):
            await self.on_nc_create_stream(session, message)
        elif isinstance(message, NSPublish):
            await self.on_ns_publish(session, message)
        elif isinstance(message, SetChunkSize):
            await self.on_set_chunk_size(session, message)
        elif isinstance(message, VideoMessage):
            await self.on_video_message(session, message)
        elif isinstance(message, AudioMessage):
            await self.on_audio_message(session, message)
        elif isinstance(message, (NSCloseStream, NSDeleteStream)):
            await self._stopped(session)
        # acknowledgements, metadata, FCPublish/releaseStream and the like need no answer

    async def on_nc_connect(self, session: SessionManager, message: NCConnect) -> None:
        app = str((message.command_object or {}).get("app", "")).strip("/")
        if app != APP_NAME:
            session.state["log"].warning("%s connected to application %r: refused (use /%s)",
                                         session.peername, app, APP_NAME)
            session.writer.close()
            raise StreamClosedException()
        await super().on_nc_connect(session, message)

    async def on_ns_publish(self, session: SessionManager, message: NSPublish) -> None:
        log = session.state["log"]
        if session.state["publisher"] is not None:
            return  # publishing already
        key = str(message.publishing_name or "").partition("?")[0]
        room_name = await self.ingest.resolve_key(key) if key and self.ingest.resolve_key else None
        stream_id = message.msg_stream_id
        if room_name is None:
            log.warning("%s: publishing refused, no room has this stream key", session.peername)
            await self._refuse(session, stream_id, "NetStream.Publish.BadName", "unknown stream key")
        elsewhere = await self.ingest.may_publish(room_name) if self.ingest.may_publish else None
        if elsewhere is not None:
            context_logger("stagepass.rtmp", room_name).warning("%s: publishing refused: %s", session.peername,
                                                               elsewhere)
            await self._refuse(session, stream_id, "NetStream.Publish.BadName", elsewhere)
        hand_off = self.ingest.hand_off
        if hand_off is None:
            try:
                await self.publish(session, room_name, stream_id, self.ingest.claim)
            except RoomBusy as exc:
                raise PublishRefused(str(exc)) from None
            return
        handover = RtmpHandover.take(session, room_name, stream_id)
        try:
            await hand_off(handover, self.ingest.claim)  # hands the connection over before its first await
        except Exception as exc:
            room_log = context_logger("stagepass.rtmp", room_name)
            if not session.writer.transport.is_closing():  # not handed over: still ours
                room_log.warning("%s: publishing refused: no media worker can take it (%s)", session.peername, exc)
                await self._refuse(session, stream_id, "NetStream.Publish.Failed", "no media worker can take it")
            # answered by the worker (a busy room or a lost claim: logged there), or the worker died meanwhile
            room_log.info("%s: not publishing: %s", session.peername, exc)
            raise _HandedOver() from None
        raise _HandedOver()

    async def publish(self, session: SessionManager, room_name: str, stream_id: int,
                      claim: Optional[PublishClaim]) -> RtmpPublisher:
        """Make the connection ``room_name``'s publisher (the policy of WHIP), ``claim`` the
        room for this node and answer ``Publish.Start``; ``RoomBusy`` or ``PublishRefused``
        (the claim was lost) once the encoder was told."""
        room = self.ingest.rooms.open(room_name)
        make = functools.partial(RtmpPublisher, disconnect=session.writer.close,
                                 peer=session.peername,
                                 opus_bitrate=self.ingest.opus_bitrate)
        try:
            publisher = await room.publish_ingest(make)
        except RoomBusy as exc:
            context_logger("stagepass.rtmp", room_name).warning("%s: publishing refused: %s", session.peername, exc)
            await self._tell(session, stream_id, "error", "NetStream.Publish.BadName", str(exc))
            raise
        lost = await claim(room_name) if claim is not None else None
        if lost is not None:
            publisher.log.warning("%s: publishing refused: %s", session.peername, lost)
            try:
                await self._tell(session, stream_id, "error", "NetStream.Publish.BadName", lost)
            finally:
                await publisher.close()  # its broadcast is discarded: no media came
            raise PublishRefused(lost)
        session.state["publisher"] = publisher
        session.state["log"] = publisher.log
        publisher.log.info("RTMP publisher from %s", session.peername)
        try:
            session.write_chunk_to_stream(StreamBegin(stream_id=stream_id))
            await self._tell(session, stream_id, "status", "NetStream.Publish.Start", "Start publishing")
        except ConnectionError:
            await publisher.close()
            raise
        return publisher

    async def _tell(self, session: SessionManager, stream_id: int, level: str, code: str, description: str) -> None:
        session.write_chunk_to_stream(_on_status(stream_id, level, code, description))
        await session.drain()

    async def _refuse(self, session: SessionManager, stream_id: int, code: str, description: str) -> None:
        await self._tell(session, stream_id, "error", code, description)
        raise PublishRefused(description)

    def _publisher(self, session: SessionManager) -> Optional[RtmpPublisher]:
        publisher = session.state.get("publisher")
        return None if publisher is None or publisher.closed else publisher

    async def on_video_message(self, session: SessionManager, message: VideoMessage) -> None:
        publisher = self._publisher(session)
        if publisher is not None:
            self._feed(session, publisher, publisher.on_video, message)

    async def on_audio_message(self, session: SessionManager, message: AudioMessage) -> None:
        publisher = self._publisher(session)
        if publisher is not None:
            self._feed(session, publisher, publisher.on_audio, message)

    def _feed(self, session: SessionManager, publisher: RtmpPublisher, on_tag, message) -> None:
        try:
            on_tag(message.timestamp, message.payload)
        except FlvError as exc:
            publisher.log.warning("%s: %s; disconnecting", session.peername, exc)
            raise PublishRefused(str(exc)) from exc

    async def _stopped(self, session: SessionManager) -> None:
        """The encoder stopped streaming: the creator ended the broadcast."""
        publisher = self._publisher(session)
        if publisher is None:
            return
        session.state["publisher"] = None
        await publisher.close()
        room = self.ingest.rooms.get(publisher.room_name)
        if room is not None and room.publisher is None:
            await room.end_broadcast()

    async def cleanup(self, session: SessionManager) -> None:
        publisher = session.state.get("publisher")
        if publisher is not None and not publisher.closed:
            publisher.log.info("RTMP connection from %s dropped; the broadcast stays open", session.peername)
            await publisher.close()


class RtmpIngest:
    """The RTMP ingest of this process: a listener feeding ``rooms`` (``start``), handing
    connections off to media workers (``hand_off``), or, in a media worker, the
    connections handed to it (``adopt``, no listener)."""

    def __init__(self, rooms: Any, resolve_key: Optional[KeyResolver] = None, opus_bitrate: int = 64000,
                 hand_off: Optional[HandOff] = None, may_publish: Optional[PublishCheck] = None,
                 claim: Optional[PublishClaim] = None) -> None:
        self.rooms: Rooms = rooms
        self.resolve_key = resolve_key
        self.opus_bitrate = opus_bitrate
        self.hand_off = hand_off
        self.may_publish = may_publish
        self.claim = claim
        self._controller = _Controller(self)
        self._server: Optional[asyncio.base_events.Server] = None
        self._connections: set[asyncio.Task] = set()
        self.adopted = TaskOwner(logger)  #: the read loops of the connections handed to this process

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._controller.client_callback, host, port)
        logger.info("RTMP ingest on rtmp://%s:%d/%s/<stream key>", host, self.port, APP_NAME)

    @property
    def port(self) -> int:
        """The bound port (useful with port 0 in tests)."""
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def adopt(self, sock: socket.socket, handover: RtmpHandover,
                    claim: Optional[PublishClaim] = None) -> RtmpPublisher:
        """Go on with a connection another process read up to ``publish``: answer it, once
        ``claim`` (asked of that process) confirmed the room is this node's, and read its
        media in this process's room. ``RoomBusy`` or ``PublishRefused`` once the encoder
        was told."""
        session = await restore_session(sock, handover.state)
        session.state = {"publisher": None, "log": context_logger("stagepass.rtmp", handover.room)}
        try:
            publisher = await self._controller.publish(session, handover.room, int(handover.state["stream_id"]),
                                                       claim)
        except BaseException:
            session.writer.close()
            raise
        self.adopted.spawn(self._controller.serve(session, handshake=False), name=f"rtmp-{handover.room}")
        return publisher

    async def close(self) -> None:
        """Stop listening and end every connection (their publishers close with them)."""
        if self._server is not None:
            self._server.close()
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.adopted.close()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
