"""A real python-socketio client for interaction tests: records every event it gets."""

from __future__ import annotations

import asyncio
from typing import Any, Optional

import socketio


class Chat:
    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: list[tuple[str, Any]] = []
        self.sio.on("*", self._any)
        self.sio.on("connect_error", self._refused)
        self.refused: Optional[Any] = None

    async def _refused(self, data: Any = None) -> None:
        self.refused = data

    async def _any(self, event: str, data: Any = None) -> None:
        self.events.append((event, data))

    def got(self, event: str) -> list[Any]:
        return [data for name, data in self.events if name == event]

    def danmaku(self) -> list[dict]:
        return [item for batch in self.got("danmaku") for item in batch["items"]]

    async def connect(self, base: str, room: str, token: str) -> bool:
        try:
            await self.sio.connect(base, auth={"room": room, "token": token}, transports=["websocket"],
                                   socketio_path="socket.io", wait_timeout=15)
            return True
        except socketio.exceptions.ConnectionError:
            return False

    async def call(self, event: str, data: Any = None, timeout: float = 15) -> dict:
        return await self.sio.call(event, data, timeout=timeout)

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()
        await asyncio.sleep(0)
