"""``Channel``: the control plane and one media worker talk over a unix stream socket,
one JSON object per line.

``{"id": n, "op": name, ...}`` is a request, answered ``{"reply": n, "ok": {...}}`` or
``{"reply": n, "error": {"type", "message"}}``; ``{"event": name, ...}`` is news that
needs no answer (a session closed, a broadcast started). Requests are handled each in a
task of its own, events in the order they came (a broadcast's start before its end).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from typing import Any, Awaitable, Callable, Optional

from core.tasks import TaskOwner

__all__ = ["Channel", "RemoteError", "WorkerGone"]

_LIMIT = 8 << 20  # one line: an SDP (MAX_SDP_BYTES at most 1 MiB) escaped as JSON fits


class WorkerGone(ConnectionError):
    """The other side closed the channel (the worker died or the control plane left)."""


class RemoteError(Exception):
    """The other side failed a request: ``type`` names its error."""

    def __init__(self, type_: str, message: str) -> None:
        super().__init__(message)
        self.type = type_


Handler = Callable[[str, dict], Awaitable[Optional[dict]]]
EventHandler = Callable[[str, dict], Awaitable[None]]


class Channel:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, log: logging.Logger,
                 on_request: Optional[Handler] = None, on_event: Optional[EventHandler] = None,
                 describe_error: Callable[[Exception], Optional[str]] = lambda exc: None) -> None:
        self._reader = reader
        self._writer = writer
        self._log = log
        self._on_request = on_request
        self._on_event = on_event
        self._describe_error = describe_error
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self._tasks = TaskOwner(log)
        self._gone = False

    @classmethod
    async def over(cls, sock, log: logging.Logger, **handlers: Any) -> "Channel":
        reader, writer = await asyncio.open_unix_connection(sock=sock, limit=_LIMIT)
        return cls(reader, writer, log, **handlers)

    @property
    def gone(self) -> bool:
        return self._gone

    def _write(self, message: dict) -> None:
        if self._gone:
            raise WorkerGone("the channel is closed")
        self._writer.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    async def request(self, op: str, timeout: float = 30.0, **args: Any) -> dict:
        """Send a request and wait for its answer; ``RemoteError`` if it failed there,
        ``WorkerGone`` if the other side went away first."""
        n = next(self._ids)
        future = self._pending[n] = asyncio.get_running_loop().create_future()
        try:
            self._write({"id": n, "op": op, **args})
            await self._writer.drain()
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(n, None)

    def emit(self, event: str, **data: Any) -> None:
        """Send news; dropped silently once the channel is closed."""
        if not self._gone:
            self._write({"event": event, **data})

    async def run(self) -> None:
        """Read until the other side closes; then every waiting request fails ``WorkerGone``."""
        try:
            while True:
                line = await self._reader.readline()
                if not line:
                    break
                message = json.loads(line)
                if "reply" in message:
                    future = self._pending.get(message["reply"])
                    if future is not None and not future.done():
                        if "error" in message:
                            error = message["error"]
                            future.set_exception(RemoteError(error["type"], error["message"]))
                        else:
                            future.set_result(message.get("ok") or {})
                elif "op" in message and self._on_request is not None:
                    self._tasks.spawn(self._answer(message), name=f"op-{message['op']}")
                elif "event" in message and self._on_event is not None:
                    try:
                        await self._on_event(message.pop("event"), message)
                    except Exception:
                        self._log.exception("handling event %r failed", message)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._gone = True
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(WorkerGone("the other side closed the channel"))

    async def _answer(self, message: dict) -> None:
        n, op = message.pop("id"), message.pop("op")
        try:
            result = await self._on_request(op, message)  # type: ignore[misc]
            reply: dict = {"reply": n, "ok": result or {}}
        except Exception as exc:
            known = self._describe_error(exc)
            if known is None:
                self._log.exception("request %s failed", op)
            reply = {"reply": n, "error": {"type": known or "internal", "message": str(exc) if known else
                                           f"the media worker failed: {type(exc).__name__}"}}
        if not self._gone:
            try:
                self._write(reply)
                await self._writer.drain()
            except (ConnectionError, WorkerGone):
                pass

    async def close(self) -> None:
        self._gone = True
        self._writer.close()
        await self._tasks.close()
        try:
            await self._writer.wait_closed()
        except (ConnectionError, OSError):
            pass
