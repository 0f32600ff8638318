"""``RtmpHandover``: an RTMP connection caught between its ``publish`` command and the
answer, to be carried on in another process (a media worker).

The connection's TCP socket travels as a file descriptor (``core.socket_handover``); what
travels beside it is the protocol state a fresh ``SessionManager`` needs to go on reading
and writing the same chunk stream (RTMP 5.3): the chunk sizes of both directions, the last
chunk header of each chunk stream (later chunks may be type 1-3 and inherit from it), the
message stream the encoder publishes on, and the bytes this process had already read past
the ``publish`` message. Encoders wait for ``NetStream.Publish.Start`` before they send
media (FFmpeg, OBS/librtmp), so no message is half-read at this point.
"""

from __future__ import annotations

import asyncio
import base64
import socket
from dataclasses import dataclass, field
from typing import Any, Optional

from pyrtmp.messages import RawChunk
from pyrtmp.session_manager import SessionManager

__all__ = ["RtmpHandover", "restore_session"]

_READ_LIMIT = 1 << 16  # asyncio's StreamReader default


@dataclass
class RtmpHandover:
    """What the process that read ``publish`` passes on: ``state`` is plain JSON."""

    room: str
    peer: str
    state: dict[str, Any]
    #: the connection, until it is handed over (then this process's copy is gone)
    transport: Optional[asyncio.BaseTransport] = field(default=None, repr=False)

    @classmethod
    def take(cls, session: SessionManager, room: str, stream_id: int) -> "RtmpHandover":
        """The state of ``session`` after a ``publish`` on message stream ``stream_id``.
        Call it, and hand the transport over, before awaiting anything: bytes read later
        by this process would be lost to the worker."""
        unread = session.fifo_reader.buffer.tobytes() + bytes(session.reader._buffer)  # type: ignore[attr-defined]
        headers = [
            [c.chunk_type, c.chunk_id, c.timestamp, c.msg_length, c.msg_type_id, c.msg_stream_id,
             c.raw_chunk_number, c.is_eof]
            for key, c in session.latest_chunks.items() if key != "latest"
        ]
        state = {
            "reader_chunk_size": session.reader_chunk_size,
            "writer_chunk_size": session.writer_chunk_size,
            "chunk_streams": headers,
            "stream_id": stream_id,
            "unread": base64.b64encode(unread).decode(),
        }
        return cls(room=room, peer=session.peername, state=state, transport=session.writer.transport)


async def restore_session(sock: socket.socket, state: dict[str, Any]) -> SessionManager:
    """A ``SessionManager`` over a handed-over ``sock``, where the other process left off.
    The bytes it had read come first: they are in the reader before the socket is."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=_READ_LIMIT, loop=loop)
    unread = base64.b64decode(state["unread"])
    if unread:
        reader.feed_data(unread)
    sock.setblocking(False)
    transport, protocol = await loop.connect_accepted_socket(
        lambda: asyncio.StreamReaderProtocol(reader, loop=loop), sock=sock)
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    session = SessionManager(reader=reader, writer=writer, reader_chunk_size=int(state["reader_chunk_size"]),
                             writer_chunk_size=int(state["writer_chunk_size"]))
    for kind, chunk_id, timestamp, length, type_id, stream, number, eof in state["chunk_streams"]:
        session.set_latest_chunk(RawChunk(chunk_type=kind, chunk_id=chunk_id, timestamp=timestamp, msg_length=length,
                                          msg_type_id=type_id, msg_stream_id=stream, payload=b"",
                                          raw_chunk_number=number, is_eof=eof))
    return session
