"""The control plane's word on a room whose publisher was just replaced.

A worker's room snapshot comes every half second; the publisher a ``publish`` (or an RTMP
encoder's ``rtmp_publish``) makes is known at once. A snapshot taken in between (after the
previous publisher left, before the new one came) says "reconnecting": the control plane
must not show that of the new publisher, or a client that waits for "reconnecting" to
connect the next encoder is refused as busy while the current one is still live (the
stale-encoder step of ``test_rtmp_workers``). The worker's reply carries the room as it
was when it accepted the publisher; a snapshot speaks only for the publisher it names."""

from __future__ import annotations

import pytest

from core.settings import Settings
from mediaserver.workers.remote import WorkerRooms

pytestmark = pytest.mark.unit

ICE = {"ufrag": "u", "pwd": "p", "mids": ["0"]}


def live_room(publisher: str) -> dict:
    return {"publisher": publisher, "live": True, "phase": "live"}


def one_worker() -> WorkerRooms:
    """``WorkerRooms`` over one pretend worker that accepts every publisher, opening a
    broadcast for the first (told before its reply, as a worker does)."""
    rooms = WorkerRooms(Settings.build(), 2)
    made = iter(range(1, 100))

    async def request(worker: int, op: str, **args) -> dict:
        session = f"{op}-{next(made)}"
        room = rooms.get(args["room"])
        if room is not None and room.broadcast is None:
            await rooms._event(worker, "broadcast_started", {"room": args["room"], "id": "b1", "started_at": 0.0})
        return {"session": session, "ice": ICE, "answer": "v=0", "codecs": {"video": "VP8"},
                "room": live_room(session)}

    rooms.pool.request = request  # type: ignore[method-assign]
    rooms.pool.alive = lambda: [0]  # type: ignore[method-assign]
    return rooms


async def test_a_replaced_publisher_is_live_at_once_not_reconnecting():
    rooms = one_worker()
    room = rooms.open("r")
    first, _ = await room.publish("v=0", {})
    assert room.phase == "live" and room.live

    # the first publisher drops; the worker's next snapshot tells of a room without one
    await rooms._event(0, "closed", {"room": "r", "session": first.id})
    await rooms._event(0, "snapshot", {"rooms": {"r": {"publisher": None, "live": False,
                                                       "phase": "reconnecting"}}})
    assert room.publisher is None and room.phase == "reconnecting" and not room.live

    # the next one is accepted before the worker's next snapshot: live, not "reconnecting"
    second, _ = await room.publish("v=0", {})
    assert room.publisher is second
    assert room.phase == "live" and room.live
    assert room.stats()["phase"] == "live"

    # the next snapshot names it: it speaks for it (its encoder hung: reconnecting)
    await rooms._event(0, "snapshot", {"rooms": {"r": {"publisher": second.id, "live": False,
                                                       "phase": "reconnecting"}}})
    assert room.phase == "reconnecting" and not room.live
    await rooms.tasks.close()


async def test_a_newer_snapshot_is_not_overwritten_by_the_reply():
    """A snapshot that names the new publisher may be read before the reply's coroutine
    runs (the channel reads on): the reply's older view does not replace it."""
    rooms = WorkerRooms(Settings.build(), 2)

    async def request(worker: int, op: str, **args) -> dict:
        await rooms._event(worker, "snapshot", {"rooms": {"r": {"publisher": "p-1", "live": False,
                                                                "phase": "reconnecting"}}})
        return {"session": "p-1", "ice": ICE, "answer": "v=0", "room": live_room("p-1")}

    rooms.pool.request = request  # type: ignore[method-assign]
    rooms.pool.alive = lambda: [0]  # type: ignore[method-assign]
    room = rooms.open("r")
    await room.publish("v=0", {})
    await rooms._event(0, "broadcast_started", {"room": "r", "id": "b1", "started_at": 0.0})
    assert room.phase == "reconnecting"  # the snapshot's, read after the worker accepted it
    await rooms.tasks.close()


async def test_a_broadcast_discarded_in_the_worker_is_not_reconnecting():
    """A publisher that leaves without sending media (ICE failed, or its node lost the
    room's claim to another node) had no broadcast: the worker discards the one its
    publish opened and says "idle". Without a publisher on either side, the host's
    snapshot speaks for the room: it is neither "reconnecting" nor on the air (which the
    node registry's heartbeat would claim for this node)."""
    rooms = one_worker()
    room = rooms.open("r")
    first, _ = await room.publish("v=0", {})
    assert room.phase == "live" and [r["room"] for r in rooms.on_air()] == ["r"]

    await rooms._event(0, "closed", {"room": "r", "session": first.id})
    await rooms._event(0, "snapshot", {"rooms": {"r": {"publisher": None, "live": False, "phase": "idle"}}})
    assert room.publisher is None and not room.live
    assert room.phase == "idle" and rooms.on_air() == []
    await rooms.tasks.close()


async def test_a_broadcast_discarded_in_the_worker_ends_for_the_listeners():
    """The worker tells of the discard (``broadcast_ended`` with ``discarded``): the node's
    listeners hear the end of the broadcast they heard start, and the room goes back to
    the broadcast that ended before it (none here: "idle", not "ended")."""
    rooms = one_worker()
    heard: list[tuple] = []

    async def ended(room, broadcast) -> None:
        heard.append((room.name, broadcast.id, broadcast.discarded))

    rooms.broadcast_ended.append(ended)
    room = rooms.open("r")
    first, _ = await room.publish("v=0", {})
    assert room.broadcast.id == "b1"
    await rooms._event(0, "closed", {"room": "r", "session": first.id})
    await rooms._event(0, "broadcast_ended", {"room": "r", "id": "b1", "started_at": 0.0, "discarded": True})
    assert heard == [("r", "b1", True)]
    assert room.broadcast is None and room.ended_broadcast is None
    await rooms._event(0, "snapshot", {"rooms": {"r": {"publisher": None, "live": False, "phase": "idle"}}})
    assert room.phase == "idle" and room.stats()["ended_broadcast"] is None
    await rooms.tasks.close()


async def test_the_first_media_in_the_worker_confirms_the_broadcast_once():
    """The worker tells of its broadcast's first media (``broadcast_confirmed``): the node's
    listeners hear it once, and not for another worker's or another broadcast's word."""
    rooms = one_worker()
    heard: list[tuple] = []

    async def confirmed(room, broadcast) -> None:
        heard.append((room.name, broadcast.id))

    rooms.broadcast_confirmed.append(confirmed)
    room = rooms.open("r")
    await room.publish("v=0", {})
    assert room.broadcast.id == "b1" and not room.broadcast.confirmed and heard == []
    await rooms._event(1, "broadcast_confirmed", {"room": "r", "id": "b1", "started_at": 0.0})
    await rooms._event(0, "broadcast_confirmed", {"room": "r", "id": "b0", "started_at": 0.0})
    assert heard == [] and not room.broadcast.confirmed
    for _ in range(2):
        await rooms._event(0, "broadcast_confirmed", {"room": "r", "id": "b1", "started_at": 0.0})
    assert heard == [("r", "b1")] and room.broadcast.confirmed
    await rooms.tasks.close()


async def test_without_the_hosts_word_an_unconfirmed_broadcast_keeps_the_rooms_phase():
    """No snapshot speaks for the publisher yet (its reply carried none): the control plane
    says what ``Room.phase`` says in one process. A broadcast whose first media has not
    come does not count ("idle", or "ended" after an earlier one), never "reconnecting";
    once confirmed, without a live snapshot, its publisher is taken to have dropped."""
    rooms = WorkerRooms(Settings.build(), 2)
    made = iter(range(1, 100))

    async def request(worker: int, op: str, **args) -> dict:
        if rooms.get(args["room"]).broadcast is None:
            await rooms._event(worker, "broadcast_started",
                               {"room": args["room"], "id": f"b{next(made)}", "started_at": 0.0})
        return {"session": f"{op}-{next(made)}", "ice": ICE, "answer": "v=0", "codecs": {"video": "VP8"}}

    rooms.pool.request = request  # type: ignore[method-assign]
    rooms.pool.alive = lambda: [0]  # type: ignore[method-assign]
    room = rooms.open("r")
    await room.publish("v=0", {})
    assert room.broadcast is not None and not room.broadcast.confirmed
    assert room.phase == "idle" and rooms.on_air() == []
    await rooms._event(0, "broadcast_confirmed", {"room": "r", "id": room.broadcast.id})
    assert room.phase == "reconnecting"
    first = room.broadcast.id
    await rooms._event(0, "broadcast_ended", {"room": "r", "id": first})
    assert room.phase == "ended"

    await room.publish("v=0", {})  # the next broadcast, no media yet
    assert room.broadcast.id != first and not room.broadcast.confirmed
    assert room.phase == "ended" and rooms.on_air() == []
    await rooms._event(0, "broadcast_ended", {"room": "r", "id": room.broadcast.id, "discarded": True})
    assert room.phase == "ended" and room.ended_broadcast.id == first
    await rooms.tasks.close()
