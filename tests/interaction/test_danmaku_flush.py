"""Exports and moderators' deletes see the danmaku every process has acknowledged.

Each process writes its danmaku rows behind; with a write interval longer than the test
(5 s, the longest allowed; the test reads well inside it), a row reaches the database only when a reader flushes. An export served by one
process and a delete asked on one process must flush the other process's queue too
(``interaction.flush_barrier``): two real nodes on Redis and PostgreSQL, and one node
whose WebSockets two interaction workers serve (the local bus; the HTTP export runs on
the control plane, the danmaku are accepted by the workers)."""

from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator

import pytest

from tests.interaction.test_danmaku_cluster import Processes, serve
from tests.support.paywall_fixtures import Api, connected, fresh_postgres, paid_room
from tests.support.server_process import stop

pytestmark = pytest.mark.e2e

REDIS_DB = 5  # this file's own Redis database number
LONG_WRITE_MS = "5000"  # the longest allowed: within it, rows reach the database only when flushed


@pytest.fixture(params=["two nodes", "two workers, local bus"])
async def two_processes(request, tmp_path: Path) -> AsyncIterator[Processes]:
    import redis.asyncio as aioredis

    url = f"redis://127.0.0.1:6379/{REDIS_DB}"
    r = aioredis.from_url(url)
    await r.flushdb()
    procs = []
    try:
        async with fresh_postgres() as postgres:
            if request.param == "two nodes":
                for name in ("a", "b"):  # one after the other: the first one migrates the database
                    procs.append(await serve(tmp_path / name, "--database-url", postgres, "--redis-url", url,
                                             "--danmaku-write-ms", LONG_WRITE_MS))
            else:
                proc, base = await serve(tmp_path / "node", "--interaction-workers", "2",
                                         "--danmaku-write-ms", LONG_WRITE_MS)
                procs = [(proc, base), (proc, base)]
            yield Processes([base for _, base in procs], procs[0][0] if procs[0][0] is procs[1][0] else None)
            for proc, _ in procs:
                stop(proc)
    finally:
        for proc, _ in procs:
            stop(proc)
        await r.flushdb()
        await r.aclose()


async def test_exports_and_deletes_flush_every_process_queue(two_processes):
    a, b = two_processes
    creator = await Api.sign_up(a, "creator")
    await paid_room(creator, ticket_price=0)
    viewer = await Api.sign_up(a)
    senders = [await Api.sign_up(a) for _ in range(2)]
    # with workers, each new WebSocket goes to the one with fewer: a sender on each, the moderator beside the first
    chats = [await connected(base, api, "maths") for base, api in zip((a, b), senders)]
    mod = await connected(b, creator, "maths")
    try:
        if two_processes.node is not None:
            assert sorted(two_processes.websockets()) == [1, 2]
        acks = [await chat.call("danmaku:send", {"text": f"{n} from {i}"}) for n in range(3)
                for i, chat in enumerate(chats)]
        assert all(ack["ok"] for ack in acks), acks
        ids = sorted(ack["danmaku"]["id"] for ack in acks)

        # at once, well inside every process's write interval: the export has every row
        status, body = await viewer.get("/api/rooms/maths/danmaku?format=json")
        assert status == 200, body
        assert sorted(i["id"] for i in body["items"]) == ids

        # a danmaku just acknowledged on each process, deleted by the moderator (on one of them)
        fresh = [await chat.call("danmaku:send", {"text": "delete me"}) for chat in chats]
        assert all(ack["ok"] for ack in fresh), fresh
        for ack in fresh:
            deleted = await mod.call("mod:delete", {"kind": "danmaku", "id": ack["danmaku"]["id"]})
            assert deleted == {"ok": True}, deleted
        status, body = await viewer.get("/api/rooms/maths/danmaku?format=json")
        assert status == 200, body
        assert sorted(i["id"] for i in body["items"]) == ids  # the deleted ones are gone, the rest kept
        status, xml = await viewer.get("/api/rooms/maths/danmaku?format=xml")
        assert status == 200 and xml.count("<d p=") == len(ids)
    finally:
        for chat in (*chats, mod):
            await chat.close()
