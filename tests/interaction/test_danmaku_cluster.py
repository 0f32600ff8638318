"""Danmaku past one process: two real ``stagepass serve`` processes sharing one PostgreSQL
database and one Redis database, Node socket.io-client viewers and python-socketio senders
on both. Every viewer gets every danmaku once, in order per sender; one user's quota,
slow mode and mute hold across the processes; presence counts both. And a kill -9 in the
middle of a flood loses only the rows of the documented write-behind window, never an
acknowledged paid question."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import subprocess
from pathlib import Path
from typing import AsyncIterator

import pytest

from tests.support.chat import Chat, assert_every_danmaku_once_in_order
from tests.support.waiting import wait_for
from tests.support.node_viewers import NodeViewers
from tests.support.paywall_fixtures import Api, fresh_postgres, buy, connected, paid_room, view_token
from tests.support.server_process import start_server, stop

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
REDIS_DB = 9  # this file's own Redis database number
SECRET = "c" * 40
WRITE_MS = 250


async def serve(data_dir: Path, *flags: str) -> tuple[subprocess.Popen, str]:
    return await start_server(data_dir, "--secret", SECRET, "--signups-per-hour", "1000",
                              "--danmaku-write-ms", str(WRITE_MS), *flags)


@pytest.fixture
async def postgres() -> AsyncIterator[str]:
    async with fresh_postgres() as url:
        yield url


@pytest.fixture
async def two_processes(tmp_path, postgres) -> AsyncIterator[list[str]]:
    import redis.asyncio as aioredis

    url = f"redis://127.0.0.1:6379/{REDIS_DB}"
    r = aioredis.from_url(url)
    await r.flushdb()
    procs = []
    try:
        for name in ("a", "b"):  # one after the other: the first one migrates the database
            proc, base = await serve(tmp_path / name, "--database-url", postgres, "--redis-url", url)
            procs.append((proc, base))
        yield [base for _, base in procs]
    finally:
        for proc, _ in procs:
            stop(proc)
        await r.flushdb()
        await r.aclose()


@pytest.mark.slow
async def test_two_processes_deliver_every_danmaku_once_in_order_with_shared_limits(two_processes):
    a, b = two_processes
    creator = await Api.sign_up(a, "creator")
    await paid_room(creator, ticket_price=0)
    viewer = await Api.sign_up(a)
    senders = [await Api.sign_up(a) for _ in range(4)]
    token = await view_token(viewer, "maths")
    async with NodeViewers(a, "maths", token, 10) as on_a, NodeViewers(b, "maths", token, 10) as on_b:
        chats = [await connected(base, api, "maths") for base, api in zip([a, b, a, b], senders)]
        mod = await connected(b, creator, "maths")
        try:
            # presence counts the users of both processes (4 senders + the creator + the viewer)
            await wait_for(lambda: mod.got("presence") and mod.got("presence")[-1]["viewers"] == 6, timeout=10)
            calls = [[chat.call("danmaku:send", {"text": f"{n} from {i}"}) for n in range(5)]
                     for i, chat in enumerate(chats)]
            acks = await asyncio.gather(*(asyncio.gather(*c) for c in calls))
            assert all(x["ok"] for per in acks for x in per), acks
            sent = {api.user["id"]: [x["danmaku"]["id"] for x in per] for api, per in zip(senders, acks)}
            await wait_for(lambda: all(len(v.items(i)) == 20 for v in (on_a, on_b) for i in range(10)), timeout=15)
            for v in (on_a, on_b):
                for i in range(10):
                    assert_every_danmaku_once_in_order(v.items(i), sent)
            await asyncio.sleep(0.5)  # nothing arrives twice later either
            assert all(len(v.items(i)) == 20 for v in (on_a, on_b) for i in range(10))

            # one user, sockets on both processes: one quota (burst 5 was spent above)
            alice = senders[0]
            second = await connected(b, alice, "maths")
            refused = await second.call("danmaku:send", {"text": "over quota, other process"})
            assert refused["ok"] is False and refused["error"]["code"] == "rate_limited"
            # slow mode set on B holds for a post on A; a mute issued on B holds on A at once
            assert (await mod.call("mod:slow_mode", {"seconds": 30}))["ok"]
            await asyncio.sleep(0.3)
            bob = chats[2]  # senders[2] on A
            await asyncio.sleep(1.1)  # a token back in bob's bucket
            slow_ack = await bob.call("danmaku:send", {"text": "first in slow mode"})
            assert slow_ack["ok"], slow_ack
            again = await chats[2].call("danmaku:send", {"text": "too soon"})
            assert again["error"]["code"] == "slow_mode"
            assert (await mod.call("mod:slow_mode", {"seconds": 0}))["ok"]
            assert (await mod.call("mod:mute", {"user_id": senders[1].user["id"], "seconds": 60}))["ok"]
            on_other = await connected(a, senders[1], "maths")
            muted = await on_other.call("danmaku:send", {"text": "muted on B, posting on A"})
            assert muted["error"]["code"] == "muted"
            await second.close()
            await on_other.close()
        finally:
            for chat in (*chats, mod):
                await chat.close()
    # every acknowledged danmaku is stored once (both processes wrote behind, then flushed)
    status, body = await viewer.get("/api/rooms/maths/danmaku?format=json")
    assert status == 200
    expected = sorted([x for v in sent.values() for x in v] + [slow_ack["danmaku"]["id"]])
    assert sorted(i["id"] for i in body["items"]) == expected


@pytest.mark.slow
async def test_kill_9_mid_flood_loses_only_the_last_write_window_and_no_paid_question(tmp_path):
    data = tmp_path / "node"
    proc, base = await serve(data, "--danmaku-user-rate", "1000", "--danmaku-user-burst", "1000",
                             "--danmaku-room-rate", "100000")
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator, ticket_price=0)
    alice = await Api.sign_up(base)
    chat = await connected(base, alice, "maths")
    acked: list[dict] = []
    try:
        order = await buy(alice, "maths", product="question", amount=500, message="before the crash")

        async def flood() -> None:
            while True:
                ack = await chat.call("danmaku:send", {"text": "flood"})
                if ack.get("ok"):
                    acked.append(ack["danmaku"])

        flooding = asyncio.create_task(flood())
        await asyncio.sleep(1.5)
        question = await chat.call("question:ask", {"text": "paid, mid-flood", "order_id": order["id"]})
        assert question["ok"], question
        await asyncio.sleep(1.0)
        killed_at = dt.datetime.now(dt.timezone.utc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        flooding.cancel()
        await asyncio.gather(flooding, return_exceptions=True)
    finally:
        await chat.sio.eio.disconnect(abort=True) if chat.sio.connected else None
        stop(proc)
    assert len(acked) > 50
    proc, base = await serve(data)  # the same data directory (SQLite) after the crash
    try:
        alice.base = base
        status, body = await alice.get("/api/rooms/maths/danmaku?format=json")
        stored = {i["id"] for i in body["items"]}
        lost = [d for d in acked if d["id"] not in stored]
        window = dt.timedelta(milliseconds=WRITE_MS) + dt.timedelta(milliseconds=750)  # + one INSERT, loaded machine
        assert all(killed_at - dt.datetime.fromisoformat(d["sent_at"]) <= window for d in lost), (
            [d["sent_at"] for d in lost][:5], killed_at)
        print(f"acknowledged {len(acked)}, lost {len(lost)} at kill -9")
        chat = Chat()
        assert await chat.connect(base, "maths", await view_token(alice, "maths"))
        questions = (await chat.call("question:list"))["items"]
        await chat.close()
        assert [q["id"] for q in questions] == [question["question"]["id"]] and questions[0]["paid"]
    finally:
        stop(proc)
