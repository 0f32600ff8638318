"""A real python-socketio client for interaction tests: records every event it gets."""

from __future__ import annotations

import asyncio
from typing import Any, Optional

import socketio

from tests.support.paywall_fixtures import Api, paid_room, view_token


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


class ChatRoom:
    """A free room 'maths', its creator and viewers, each with a connected chat."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.chats: list[Chat] = []

    async def connect(self, api: Api, slug: str = "maths") -> Chat:
        chat = Chat()
        assert await chat.connect(self.base, slug, await view_token(api, slug)), chat.refused
        self.chats.append(chat)
        return chat

    async def close(self) -> None:
        for chat in self.chats:
            await chat.close()


async def free_room_with_chats(base: str, viewers: int = 2):
    """A creator's free room ``maths`` and ``viewers`` signed-up viewers, each (and the
    creator) with a connected chat: (room, creator, creator's chat, viewers, their chats)."""
    room = ChatRoom(base)
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator, ticket_price=0)
    apis = [await Api.sign_up(base) for _ in range(viewers)]
    chats = [await room.connect(api) for api in apis]
    return room, creator, await room.connect(creator), apis, chats


def refusal_code(ack: dict) -> str:
    """The error code of a refused ack (which must say nothing but code and message)."""
    assert ack["ok"] is False and set(ack["error"]) == {"code", "message"}, ack
    return ack["error"]["code"]


def assert_every_danmaku_once_in_order(received: list[dict], sent: dict[int, list[int]]) -> None:
    """``received``: one viewer's items in arrival order; ``sent``: user id -> ids in send order."""
    ids = [item["id"] for item in received]
    assert len(ids) == len(set(ids)) == sum(len(v) for v in sent.values()), ids
    for user, expected in sent.items():
        assert [item["id"] for item in received if item["user"]["id"] == user] == expected
    assert all(isinstance(item["t_ms"], int) for item in received)
