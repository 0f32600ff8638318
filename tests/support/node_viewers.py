"""Node's stock socket.io-client 4 as test viewers (``tests/support/socketio_viewers.cjs``)."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

from tests.support.missing_tools import missing_tool

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "support" / "socketio_viewers.cjs"


def node_or_skip() -> str:
    node = shutil.which("node")
    if node is None or not (ROOT / "web" / "node_modules" / "socket.io-client").is_dir():
        missing_tool("node and web/node_modules/socket.io-client (bash scripts/web-deps.sh) are needed")
    return node


class NodeViewers:
    """``count`` socket.io-client viewers of ``room`` in one node process; ``frames`` holds
    (viewer index, items) per danmaku frame received."""

    def __init__(self, base: str, room: str, token: str, count: int) -> None:
        self.args = (base, room, token, str(count))
        self.count = count
        self.frames: list[tuple[int, list[dict]]] = []
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task | None = None
        self._ready = asyncio.get_running_loop().create_future()

    async def __aenter__(self) -> "NodeViewers":
        self._proc = await asyncio.create_subprocess_exec(
            node_or_skip(), str(SCRIPT), *self.args, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, limit=1 << 24)
        self._reader = asyncio.create_task(self._read())
        ready = await asyncio.wait_for(self._ready, 60)
        assert ready == self.count, ready
        return self

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        async for line in self._proc.stdout:
            if not line.strip():
                continue
            message: dict[str, Any] = json.loads(line)
            if "ready" in message and not self._ready.done():
                self._ready.set_result(message["ready"])
            elif "error" in message and not self._ready.done():
                self._ready.set_exception(AssertionError(message["error"]))
            elif "items" in message:
                self.frames.append((message["viewer"], message["items"]))
        if not self._ready.done():
            self._ready.set_exception(AssertionError("the node viewers exited"))

    def items(self, viewer: int) -> list[dict]:
        return [item for v, items in self.frames if v == viewer for item in items]

    async def __aexit__(self, *exc: Any) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.close()
        try:
            await asyncio.wait_for(self._proc.wait(), 10)
        except asyncio.TimeoutError:
            self._proc.kill()
            await self._proc.wait()
        if self._reader is not None:
            await self._reader
