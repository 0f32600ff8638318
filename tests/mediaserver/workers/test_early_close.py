"""A session that closes in its worker before the control plane has its reply.

The channel resolves a request's reply and reads the next line before the waiting
coroutine runs, so a worker's ``closed`` news about a session can be handled before the
``publish``/``subscribe`` call that made it returns (an encoder that hangs up at once).
The control plane must not keep such a session as the room's publisher or viewer, and a
close listener registered afterwards (seats, counters) must still run."""

from __future__ import annotations

import asyncio

import pytest

from core.settings import Settings
from mediaserver.workers.remote import WorkerRooms

pytestmark = pytest.mark.unit

ICE = {"ufrag": "u", "pwd": "p", "mids": ["0"]}


def rooms_closing(early: set[str]) -> WorkerRooms:
    """``WorkerRooms`` over one pretend worker that reports sessions in ``early`` closed
    before its reply to the request that made them is read."""
    rooms = WorkerRooms(Settings.build(), 2)
    made = iter(range(1, 100))

    async def request(worker: int, op: str, **args) -> dict:
        session = f"{op}-{next(made)}"
        if op in early:
            await rooms._event(worker, "closed", {"room": args["room"], "session": session})
        return {"session": session, "ice": ICE, "answer": "v=0", "codecs": {"video": "VP8"}}

    rooms.pool.request = request  # type: ignore[method-assign]
    rooms.pool.alive = lambda: [0]  # type: ignore[method-assign]
    return rooms


async def test_a_publisher_closed_before_its_reply_is_not_kept():
    rooms = rooms_closing({"publish"})
    room = rooms.open("r")
    session, answer = await room.publish("v=0", {})
    assert answer == "v=0"
    assert session.closed and room.publisher is None
    told = asyncio.Event()

    async def listener() -> None:
        told.set()

    session.on_close(listener)  # the caller registers after the call returned
    await asyncio.wait_for(told.wait(), 2)
    await rooms.tasks.close()


async def test_a_viewer_closed_before_its_reply_is_not_counted():
    rooms = rooms_closing({"subscribe"})
    room = rooms.open("r")
    session, _ = await room.subscribe("v=0", ["video"])
    assert session.closed
    assert room.subscribers == {} and room.viewer_count() == 0
    await rooms.tasks.close()


async def test_sessions_that_stay_open_are_kept():
    rooms = rooms_closing(set())
    room = rooms.open("r")
    publisher, _ = await room.publish("v=0", {})
    viewer, _ = await room.subscribe("v=0", ["video"])
    assert not publisher.closed and room.publisher is publisher
    assert room.subscribers == {viewer.id: viewer}
    await rooms._event(0, "closed", {"room": "r", "session": viewer.id})
    assert viewer.closed and room.subscribers == {}
    await rooms.tasks.close()
