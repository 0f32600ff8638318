"""``RtmpTap``: a TCP relay between RTMP encoders and a server that reads what the server
tells them: the code of every ``onStatus`` command (``NetStream.Publish.Start``,
``NetStream.Publish.BadName``...), in the order they came. The bytes pass unchanged both
ways, and an end of one direction (a half-close) is passed on as one.

Encoders print a server's error but not its ``Publish.Start``: this is how a test knows
which answers an encoder was given. The server's chunk stream is read with a parser of its
own (RTMP 5.3), not the server's library."""

from __future__ import annotations

import asyncio
from typing import Optional

__all__ = ["RtmpTap"]

_HANDSHAKE = 1 + 1536 + 1536  # S0, S1, S2
_SET_CHUNK_SIZE, _COMMAND_AMF0 = 1, 0x14
_CODE_KEY = b"\x00\x04code\x02"  # the key "code" and an AMF0 string marker


class RtmpTap:
    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.target_port = target_port
        #: the ``onStatus`` codes the server sent, over every connection, in order
        self.statuses: list[str] = []
        self._server: Optional[asyncio.base_events.Server] = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> int:
        """Listen on a free port of ``host``; that port."""
        self._server = await asyncio.start_server(self._relay, self.host, 0)
        return self.port

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        parts: list[asyncio.Future] = []
        try:
            server_reader, server_writer = await asyncio.open_connection(self.host, self.target_port)
            said = asyncio.StreamReader()
            parts += [asyncio.ensure_future(self._pump(client_reader, server_writer)),
                      asyncio.ensure_future(self._pump(server_reader, client_writer, said)),
                      asyncio.ensure_future(self._read_statuses(said))]
            try:
                await asyncio.gather(*parts)
            finally:
                server_writer.close()
        finally:
            for part in parts:
                part.cancel()
            await asyncio.gather(*parts, return_exceptions=True)
            client_writer.close()
            self._tasks.discard(task)

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    copy: Optional[asyncio.StreamReader] = None) -> None:
        try:
            while data := await reader.read(65536):
                if copy is not None:
                    copy.feed_data(data)
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except OSError:  # a reset, or the other side already gone
            writer.close()
        finally:
            if copy is not None:
                copy.feed_eof()

    async def _read_statuses(self, reader: asyncio.StreamReader) -> None:
        """The server's messages: chunk size changes are followed, ``onStatus`` codes kept."""
        chunk_size = 128
        headers: dict[int, list[int]] = {}  # chunk stream -> [message length, message type, extended timestamp]
        bodies: dict[int, bytearray] = {}
        try:
            await reader.readexactly(_HANDSHAKE)
            while True:
                first = (await reader.readexactly(1))[0]
                kind, stream = first >> 6, first & 0x3F
                if stream < 2:  # 2- or 3-byte basic header
                    extra = await reader.readexactly(stream + 1)
                    stream = 64 + extra[0] + (256 * extra[1] if stream else 0)
                header = headers.setdefault(stream, [0, 0, 0])
                if kind < 3:
                    fields = await reader.readexactly((11, 7, 3)[kind])
                    if kind < 2:
                        header[:2] = [int.from_bytes(fields[3:6], "big"), fields[6]]
                    header[2] = fields[:3] == b"\xff\xff\xff"
                if header[2]:
                    await reader.readexactly(4)  # the extended timestamp, repeated in type 3 chunks
                body = bodies.setdefault(stream, bytearray())
                body += await reader.readexactly(min(chunk_size, header[0] - len(body)))
                if len(body) < header[0]:
                    continue
                del bodies[stream]
                if header[1] == _SET_CHUNK_SIZE:
                    chunk_size = int.from_bytes(body[:4], "big") & 0x7FFFFFFF
                elif header[1] == _COMMAND_AMF0 and body.startswith(b"\x02\x00\x08onStatus"):
                    at = body.index(_CODE_KEY) + len(_CODE_KEY)
                    length = int.from_bytes(body[at:at + 2], "big")
                    self.statuses.append(body[at + 2:at + 2 + length].decode())
        except asyncio.IncompleteReadError:
            pass  # the server's side ended

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
