"""An RTMP connection handed over mid-stream (``RtmpHandover``, ``core.socket_handover``):
the receiving side reads on as if it had read from the start.

An encoder on loopback sends a first message and, without waiting, a long one behind it
whose chunks are compressed against the first's header (types 1 and 3) and cut at a
chunk size the encoder had set; the first process reads the first message, takes the
state and hands the socket over a ``SOCK_SEQPACKET`` pair while part of the second is
already in its buffers. The restored session reads the second message whole, then a
third sent after the hand-over (type 1 again), and writes back on the same connection."""

from __future__ import annotations

import asyncio
import json
import socket
import struct

import pytest

from core.socket_handover import hand_over, receive_handed
from mediaserver.ingest.rtmp_server import RtmpHandover
from mediaserver.ingest.rtmp_handover import restore_session
from pyrtmp.session_manager import SessionManager
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.inprocess]

CSID = 4
CHUNK_SIZE = 256


def chunk(fmt: int, payload: bytes, timestamp: int = 0, length: int = 0, type_id: int = 9, stream: int = 1) -> bytes:
    """One chunk on chunk stream ``CSID`` (RTMP 5.3.1): basic header, message header, payload."""
    head = bytes([(fmt << 6) | CSID])
    if fmt in (0, 1, 2):
        head += timestamp.to_bytes(3, "big")
    if fmt in (0, 1):
        head += length.to_bytes(3, "big") + bytes([type_id])
    if fmt == 0:
        head += struct.pack("<I", stream)
    return head + payload


def message(fmt: int, payload: bytes, **header) -> bytes:
    """A message cut into chunks of ``CHUNK_SIZE``: the first of type ``fmt``, the rest type 3."""
    parts = [payload[i:i + CHUNK_SIZE] for i in range(0, len(payload), CHUNK_SIZE)]
    return chunk(fmt, parts[0], length=len(payload), **header) + b"".join(chunk(3, p) for p in parts[1:])


async def test_a_connection_handed_over_mid_stream_reads_on_where_it_was():
    accepted: asyncio.Future = asyncio.get_running_loop().create_future()
    server = await asyncio.start_server(lambda r, w: accepted.set_result((r, w)), "127.0.0.1", 0)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    client_reader, client_writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
    try:
        reader, writer = await accepted
        front = SessionManager(reader=reader, writer=writer)
        front.reader_chunk_size = CHUNK_SIZE  # as after the encoder's SetChunkSize
        front.writer_chunk_size = 8192
        first = b"publish"
        second = bytes(range(256)) * 40  # 10240 bytes: past the 4096 bytes pyrtmp reads at a time
        pending = message(1, second, timestamp=33, type_id=9)
        client_writer.write(chunk(0, first, timestamp=1000, length=len(first), type_id=20, stream=1) + pending)
        await client_writer.drain()

        messages = front.read_chunks_from_stream()
        got = await messages.__anext__()
        assert (got.payload, got.msg_type_id, got.msg_stream_id, got.timestamp) == (first, 20, 1, 1000)
        # the rest has come in: partly in pyrtmp's bit buffer, partly still in asyncio's reader
        await wait_for(lambda: len(front.fifo_reader.buffer.tobytes()) + len(reader._buffer) == len(pending))
        assert reader._buffer and front.fifo_reader.buffer.len

        handover = RtmpHandover.take(front, "maths", stream_id=1)
        assert handover.transport is writer.transport
        hand_over(ours, json.dumps({"ticket": 7}).encode(), writer.transport)
        assert writer.transport.is_closing()
        data, sock = receive_handed(theirs, 4096)
        assert json.loads(data) == {"ticket": 7} and sock is not None

        carried = json.loads(json.dumps(handover.state))  # what crosses to the worker is JSON
        restored = await restore_session(sock, carried)
        assert (restored.reader_chunk_size, restored.writer_chunk_size) == (CHUNK_SIZE, 8192)
        go_on = restored.read_chunks_from_stream()
        got = await asyncio.wait_for(go_on.__anext__(), 10)
        assert (got.payload, got.msg_type_id, got.msg_stream_id, got.timestamp) == (second, 9, 1, 1033)

        client_writer.write(message(1, b"\xaf\x01audio", timestamp=21, type_id=8))  # after the hand-over
        await client_writer.drain()
        got = await asyncio.wait_for(go_on.__anext__(), 10)
        assert (got.payload, got.msg_type_id, got.msg_stream_id, got.timestamp) == (b"\xaf\x01audio", 8, 1, 1054)

        restored.writer.write(b"answer")  # the encoder hears the worker on the same connection
        await restored.writer.drain()
        assert await asyncio.wait_for(client_reader.readexactly(6), 10) == b"answer"
        restored.writer.close()
        assert await asyncio.wait_for(client_reader.read(), 10) == b""  # closed by its only holder
    finally:
        client_writer.close()
        ours.close()
        theirs.close()
        server.close()
        await server.wait_closed()
