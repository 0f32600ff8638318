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
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Awaitable, Callable, Optional

from bitstring import BitStream

from mediaserver.live.errors import RoomBusy
from core.logs import context_logger
from mediaserver.live.room import RoomRegistry
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
from pyrtmp.messages.video import VideoMessage  # noqa: E402
from pyrtmp.rtmp import SimpleRTMPController  # noqa: E402
from pyrtmp.session_manager import SessionManager  # noqa: E402

logging.getLogger().handlers[:] = _root_handlers
logging.getLogger().setLevel(_root_level)
for _name in ("pyrtmp.rtmp", "pyrtmp.messages", "pyrtmp.messages.command", "pyrtmp.messages.data",
              "pyrtmp.messages.user_control"):
    logging.getLogger(_name).setLevel(logging.NOTSET)
logging.getLogger("pyrtmp").setLevel(logging.ERROR)  # "unknown command FCPublish" and the like

__all__ = ["APP_NAME", "KeyResolver", "RtmpIngest"]

APP_NAME = "live"
#: stream key -> room name, or None for a key no room has
KeyResolver = Callable[[str], Awaitable[Optional[str]]]

logger = logging.getLogger("stagepass.rtmp")


def _on_status(stream_id: int, level: str, code: str, description: str) -> Chunk:
    """An ``onStatus`` command (RTMP 7.2.2) on the stream the encoder publishes to."""
    data = BitStream()
    for value in ("onStatus", 0, None, {"level": level, "code": code, "description": description}):
        AMF0Serializer.create_object(data, value)
    return Chunk(chunk_type=0, chunk_id=5, timestamp=0, msg_length=len(data.bytes), msg_type_id=0x14,
                 msg_stream_id=stream_id, payload=data.bytes)


class _Refused(Exception):
    """The encoder was told why (an ``onStatus`` error) and is disconnected."""


class _Controller(SimpleRTMPController):
    """One instance per server; the per-connection state lives in ``session.state``.
    pyrtmp's ``SimpleRTMPController`` answers connect, createStream and publish."""

    def __init__(self, ingest: "RtmpIngest") -> None:
        super().__init__()
        self.ingest = ingest

    async def client_callback(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One encoder connection: pyrtmp's read loop, with refusals and drops logged in
        one line each (the library's own loop logs every error as a traceback)."""
        task = asyncio.current_task()
        assert task is not None
        self.ingest._connections.add(task)
        session = SessionManager(reader=reader, writer=writer)
        session.state = {"publisher": None, "log": context_logger("stagepass.rtmp")}
        try:
            await session.handshake()
            async for chunk in session.read_chunks_from_stream():
                await self._dispatch(session, MessageFactory.from_chunk(chunk))
        except (StreamClosedException, asyncio.IncompleteReadError, ConnectionError, _Refused):
            pass
        except Exception:
            session.state["log"].exception("RTMP connection from %s failed", session.peername)
        finally:
            self.ingest._connections.discard(task)
            await self.cleanup(session)
            writer.close()

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
        key = str(message.publishing_name or "").partition("?")[0]
        room_name = await self.ingest.resolve_key(key) if key else None
        if room_name is None:
            log.warning("%s: publishing refused, no room has this stream key", session.peername)
            await self._refuse(session, message, "NetStream.Publish.BadName", "unknown stream key")
        room = self.ingest.rooms.open(room_name)
        make = functools.partial(RtmpPublisher, disconnect=session.writer.close, peer=session.peername,
                                 opus_bitrate=self.ingest.opus_bitrate)
        try:
            publisher = await room.publish_ingest(make)
        except RoomBusy as exc:
            context_logger("stagepass.rtmp", room_name).warning("%s: publishing refused: %s", session.peername, exc)
            await self._refuse(session, message, "NetStream.Publish.BadName", str(exc))
        session.state["publisher"] = publisher
        session.state["log"] = publisher.log
        publisher.log.info("RTMP publisher from %s", session.peername)
        await super().on_ns_publish(session, message)

    async def _refuse(self, session: SessionManager, message: NSPublish, code: str, description: str) -> None:
        session.write_chunk_to_stream(_on_status(message.msg_stream_id, "error", code, description))
        await session.drain()
        raise _Refused(description)

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
            raise _Refused(str(exc)) from exc

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
    """The RTMP listener of this node, feeding ``rooms``."""

    def __init__(self, rooms: RoomRegistry, resolve_key: KeyResolver, opus_bitrate: int = 64000) -> None:
        self.rooms = rooms
        self.resolve_key = resolve_key
        self.opus_bitrate = opus_bitrate
        self._server: Optional[asyncio.base_events.Server] = None
        self._connections: set[asyncio.Task] = set()

    async def start(self, host: str, port: int) -> None:
        controller = _Controller(self)
        self._server = await asyncio.start_server(controller.client_callback, host, port)
        logger.info("RTMP ingest on rtmp://%s:%d/%s/<stream key>", host, self.port, APP_NAME)

    @property
    def port(self) -> int:
        """The bound port (useful with port 0 in tests)."""
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening and end every connection (their publishers close with them)."""
        if self._server is None:
            return
        self._server.close()
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None
