"""Danmaku past one process: two real ``stagepass serve`` nodes sharing one PostgreSQL
database and one Redis database, or one node whose Socket.IO WebSockets two interaction
worker processes serve (``--interaction-workers 2``, sharing through Redis or, without it,
the node's local bus); Node socket.io-client viewers and python-socketio senders on both
processes. Every viewer gets every danmaku once, in order per sender; one user's quota,
slow mode and mute hold across the processes; presence counts both. And a kill -9 in the
middle of a flood (of the node, or of the node and its workers) loses only the rows of
the documented write-behind window, never an acknowledged paid question."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import subprocess
from pathlib import Path
from typing import AsyncIterator

import psutil
import pytest

from tests.support.chat import Chat, assert_every_danmaku_once_in_order
from tests.support.waiting import wait_for
from tests.support.node_viewers import NodeViewers
from tests.support.peers import Publisher
from tests.support.paywall_fixtures import Api, buy, connected, flushed_redis, fresh_postgres, paid_room, view_token
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


class Processes(list):
    """The bases to connect to (one per process); ``node``: the one node's process when
    two interaction workers serve it."""

    def __init__(self, bases: list[str], node: subprocess.Popen | None) -> None:
        super().__init__(bases)
        self.node = node

    def websockets(self) -> list[int]:
        """WebSockets per process: the workers' established connections on the node's port."""
        if self.node is None:
            return []
        port = int(self[0].rsplit(":", 1)[1])
        return [sum(1 for c in w.net_connections("tcp") if c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED)
                for w in workers_of(self.node)]


def workers_of(proc: subprocess.Popen) -> list[psutil.Process]:
    """The node's live interaction worker processes."""
    out = []
    for child in psutil.Process(proc.pid).children():
        try:
            if "stagepass.interaction_worker" in " ".join(child.cmdline()) and child.status() != psutil.STATUS_ZOMBIE:
                out.append(child)
        except psutil.Error:  # gone, or killed and not yet reaped
            pass
    return out


@pytest.fixture(params=["two nodes", "two workers, local bus"])
async def two_processes(request, tmp_path, postgres) -> AsyncIterator[list[str]]:
    import redis.asyncio as aioredis

    url = f"redis://127.0.0.1:6379/{REDIS_DB}"
    r = aioredis.from_url(url)
    await r.flushdb()
    procs = []
    try:
        if request.param == "two nodes":
            for name in ("a", "b"):  # one after the other: the first one migrates the database
                proc, base = await serve(tmp_path / name, "--database-url", postgres, "--redis-url", url)
                procs.append((proc, base))
        else:
            proc, base = await serve(tmp_path / "node", "--interaction-workers", "2")  # SQLite, no Redis
            procs = [(proc, base), (proc, base)]  # the node's base twice: its workers take turns
        yield Processes([base for _, base in procs], procs[0][0] if procs[0][0] is procs[1][0] else None)
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
        chats = [await connected(base, api, "maths") for base, api in zip([a, b, a], senders)]
        if two_processes.node is None:
            chats.append(await connected(b, senders[3], "maths"))
        else:  # a long-polling client stays on the control plane; its danmaku reach the workers' viewers
            chats.append(Chat())
            await chats[-1].sio.connect(b, auth={"room": "maths", "token": await view_token(senders[3], "maths")},
                                        transports=["polling"], wait_timeout=15)
        mod = await connected(b, creator, "maths")
        try:
            if two_processes.node is not None:  # 20 viewers, 3 senders, the creator: on both workers
                spread = two_processes.websockets()
                assert len(spread) == 2 and sum(spread) == 24 and max(spread) - min(spread) <= 1, spread
                assert chats[-1].sio.transport() == "polling"
            # presence counts the users of both processes (4 senders + the creator + the viewer)
            await wait_for(lambda: mod.got("presence") and mod.got("presence")[-1]["viewers"] == 6, timeout=10)
            # likes sent on every process add up to one total (the cluster's counter)
            assert all([(await chat.call("like", {"count": 3}))["ok"] for chat in chats])
            await wait_for(lambda: max([f["total"] for f in mod.got("likes")], default=0) == 12, timeout=10)
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
            late = {(name, i): [(x["id"], x["text"]) for x in v.items(i)[20:]]
                    for name, v in (("a", on_a), ("b", on_b)) for i in range(10) if len(v.items(i)) != 20}
            assert not late, f"items after the first 20, by (process, viewer): {late}; sent: {sent}"

            # one user, sockets on both processes: one quota (her burst was spent above; on a
            # loaded machine the delivery took long enough for a token or two to come back)
            alice = senders[0]
            second = await connected(b, alice, "maths")
            more = []
            while len(more) < 5 and (ack := await chats[0].call("danmaku:send", {"text": "the rest"}))["ok"]:
                more.append(ack["danmaku"]["id"])
            assert ack["error"]["code"] == "rate_limited"
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
            live = []
            if two_processes.node is not None:  # workers stamp danmaku on the control plane's media clock
                live = await stamped_on_the_media_clock(a, creator, [chats[0], chats[2], chats[3], mod], on_a)
        finally:
            for chat in (*chats, mod):
                await chat.close()
    # every acknowledged danmaku is stored once (each process writes behind; the export has
    # every process flush its queue first: test_danmaku_flush.py)
    expected = sorted([x for v in sent.values() for x in v] + more + [slow_ack["danmaku"]["id"]] + live)
    status, body = await viewer.get("/api/rooms/maths/danmaku?format=json")
    assert status == 200
    assert sorted(i["id"] for i in body["items"]) == expected
    if two_processes.node is not None:  # a worker killed is started again and takes WebSockets
        await a_killed_worker_is_replaced(two_processes.node, a, viewer)


async def a_killed_worker_is_replaced(node: subprocess.Popen, base: str, viewer: Api) -> None:
    killed = workers_of(node)[0].pid
    os.kill(killed, signal.SIGKILL)

    def replaced() -> bool:
        pids = [w.pid for w in workers_of(node)]
        return len(pids) == 2 and killed not in pids

    await wait_for(replaced, timeout=30)
    chats = []
    try:  # the new worker takes WebSockets once it is ready (meanwhile the other one does)
        for _ in range(50):
            chats.append(await connected(base, viewer, "maths"))
            if min(Processes([base], node).websockets()) > 0:
                break
            await asyncio.sleep(0.2)
        assert min(Processes([base], node).websockets()) > 0
        assert (await chats[-1].call("danmaku:send", {"text": "after the crash"}))["ok"]
    finally:
        for chat in chats:
            await chat.close()


async def stamped_on_the_media_clock(base: str, creator: Api, chats: list, viewers: NodeViewers) -> list[int]:
    """The creator goes live on the node; danmaku sent through the workers carry the
    broadcast's id and ``t_ms``, acknowledged and delivered alike. Their ids."""
    publisher = Publisher(base)
    try:
        status, minted = await creator.post("/api/rooms/maths/tokens", {"scope": "publish"})
        assert status == 201
        assert await publisher.publish("maths", minted["token"]) == 201, publisher.error
        for _ in range(100):  # live once media flows
            status, body = await creator.get("/api/live")
            if body["rooms"]:
                break
            await asyncio.sleep(0.1)
        broadcast = body["rooms"][0]["broadcast"]
        await asyncio.sleep(1.1)  # the senders' buckets have a token again
        acks = [await chat.call("danmaku:send", {"text": "on the clock"}) for chat in chats]
        status, later = await creator.get("/api/live")
        assert all(a["ok"] for a in acks), acks
        for ack in acks:
            assert ack["danmaku"]["broadcast"] == broadcast["id"]
            assert broadcast["t_ms"] <= ack["danmaku"]["t_ms"] <= later["rooms"][0]["broadcast"]["t_ms"]
        ids = [a["danmaku"]["id"] for a in acks]
        await wait_for(lambda: {i["id"] for i in viewers.items(0)} >= set(ids), timeout=10)
        delivered = {i["id"]: i for i in viewers.items(0)}
        assert [(delivered[i]["broadcast"], delivered[i]["t_ms"]) for i in ids] == [
            (a["danmaku"]["broadcast"], a["danmaku"]["t_ms"]) for a in acks]
        return ids
    finally:
        await publisher.close()


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
async def test_kill_9_mid_flood_loses_only_the_last_write_window_and_no_paid_question(tmp_path, workers):
    """With 2, the chat is served by an interaction worker sharing through Redis (the local
    bus is the two-process test's); the node and its workers are killed at the same instant."""
    data = tmp_path / "node"
    shared = ["--redis-url", f"redis://127.0.0.1:6379/{REDIS_DB}"] if workers > 1 else []
    async with flushed_redis(REDIS_DB):
        await kill_9_mid_flood(data, workers, shared)


async def kill_9_mid_flood(data: Path, workers: int, shared: list[str]) -> None:
    proc, base = await serve(data, "--danmaku-user-rate", "1000", "--danmaku-user-burst", "1000",
                             "--danmaku-room-rate", "100000", "--interaction-workers", str(workers), *shared)
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
        pids = [proc.pid] + [w.pid for w in workers_of(proc)]
        assert len(pids) == workers + (workers > 1)
        killed_at = dt.datetime.now(dt.timezone.utc)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=10)
        flooding.cancel()
        await asyncio.gather(flooding, return_exceptions=True)
    finally:
        await chat.sio.eio.disconnect(abort=True) if chat.sio.connected else None
        stop(proc)
    assert len(acked) > 50
    await asyncio.sleep(0.2)  # the killed workers are gone too
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
