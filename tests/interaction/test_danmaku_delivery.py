"""Danmaku delivery on one process: Node's stock socket.io-client 4 viewers and
python-socketio clients get every danmaku once, in order per sender, with their media
timestamps, batched or not; room frames take the shared-frame path; WebSocket compression
is off unless asked for; adaptive batching sends a quiet room's danmaku at once and
gathers a busy room's."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from interaction.assembly import INTERACTION
from interaction.batcher import Batcher
from core.tasks import TaskOwner
from stagepass.app import create_app
from tests.support.waiting import wait_for
from tests.support.chat import assert_every_danmaku_once_in_order
from tests.support.node_viewers import NodeViewers
from tests.support.paywall_fixtures import Api, connected, paid_room, paywall_settings, view_token

pytestmark = pytest.mark.inprocess

SENDERS = 3
BURST = 5  # the default per-user burst


async def _room(aiohttp_server, tmp_path, **settings) -> tuple[str, object]:
    app = create_app(paywall_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", **settings))
    server = await aiohttp_server(app)
    base = str(server.make_url("")).rstrip("/")
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator, ticket_price=0)
    return base, app


@pytest.mark.parametrize("batch_ms", [100, 0])
async def test_node_and_python_viewers_get_every_danmaku_once_in_order(aiohttp_server, tmp_path, batch_ms):
    base, app = await _room(aiohttp_server, tmp_path, danmaku_batch_ms=batch_ms)
    viewer = await Api.sign_up(base)
    senders = [await Api.sign_up(base) for _ in range(SENDERS)]
    async with NodeViewers(base, "maths", await view_token(viewer, "maths"), 20) as node:
        chats = [await connected(base, api, "maths") for api in senders]
        try:
            # every sender fires its whole burst without waiting for acks: they still go out in order
            calls = [[chat.call("danmaku:send", {"text": f"{n} from {i}"}) for n in range(BURST)]
                     for i, chat in enumerate(chats)]
            acks = await asyncio.gather(*(asyncio.gather(*c) for c in calls))
            assert all(a["ok"] for per in acks for a in per), acks
            sent = {api.user["id"]: [a["danmaku"]["id"] for a in per] for api, per in zip(senders, acks)}
            for per, i in zip(acks, range(SENDERS)):
                assert [a["danmaku"]["text"] for a in per] == [f"{n} from {i}" for n in range(BURST)]
            total = SENDERS * BURST
            await wait_for(lambda: all(len(node.items(v)) == total for v in range(20))
                           and all(len(c.danmaku()) == total for c in chats), timeout=10)
            for v in range(20):
                assert_every_danmaku_once_in_order(node.items(v), sent)
            for chat in chats:
                assert_every_danmaku_once_in_order(chat.danmaku(), sent)
            assert node.items(0) == chats[0].danmaku()  # the same items, byte for byte equal JSON
        finally:
            for chat in chats:
                await chat.close()
    stats = app[INTERACTION].server.manager.stats
    assert stats.direct >= 20 * app[INTERACTION].danmaku.batcher.frames  # the shared-frame path served them
    # and every acknowledged danmaku is in the export (written behind, flushed for readers)
    status, body = await senders[0].get("/api/rooms/maths/danmaku?format=json")
    assert status == 200 and sorted(i["id"] for i in body["items"]) == sorted(x for v in sent.values() for x in v)


@pytest.mark.parametrize("compression", [False, True])
async def test_websocket_compression_is_off_unless_asked_for(aiohttp_server, tmp_path, compression):
    base, _ = await _room(aiohttp_server, tmp_path, websocket_compression=compression)
    async with aiohttp.ClientSession() as http:  # offers permessage-deflate, as browsers do
        async with http.ws_connect(base + "/socket.io/?EIO=4&transport=websocket", compress=15) as ws:
            assert (await ws.receive_str()).startswith("0{")  # engine.io's open packet
            assert bool(ws.compress) is compression


def _burn(seconds: float) -> None:
    """Spend ``seconds`` of this thread's CPU (a frame's fan-out is CPU work)."""
    until = time.thread_time() + seconds
    while time.thread_time() < until:
        pass


async def test_frame_spacing_counts_the_loops_cpu_not_time_the_core_was_taken():
    """A frame whose write waits 50 ms without using the CPU (as when other processes hold
    the core on a loaded machine) does not widen the gap: the frame count depends on the
    room's work, not on the machine's load."""
    tasks = TaskOwner(__import__("logging").getLogger("test"))
    batcher = Batcher(lambda room, items: time.sleep(0.05), tasks, interval=10.0)
    try:
        batcher.add("r", '"x"')
        await wait_for(lambda: batcher.frames == 1, timeout=5)
        assert batcher.gap("r") < 0.03  # 3x the CPU the write took, not 3x its 50 ms
    finally:
        await tasks.close()


async def test_adaptive_batching_quiet_room_at_once_busy_room_gathered():
    frames: list[str] = []
    cost = [0.05]

    def write(room: str, items_json: str) -> None:
        frames.append(items_json)
        _burn(cost[0])  # a frame that takes a while to fan out

    tasks = TaskOwner(__import__("logging").getLogger("test"))
    batcher = Batcher(write, tasks, interval=10.0)
    stamps: list[list[float]] = []
    batcher.written = stamps.append
    try:
        batcher.add("r", '"first"', stamp=1.0)
        for _ in range(3):
            await asyncio.sleep(0)
        assert frames == ['["first"]']  # quiet: out on the next turn of the loop, not after 10 s
        assert stamps == [[1.0]]
        cost[0] = 0.0  # the first frame cost ~50 ms: the next ones are spaced by 3x that
        batcher.add("r", '"a"', stamp=2.0)
        batcher.add("r", '"b","c"', count=2)  # two items from another process, one chunk
        assert 0.1 < batcher.gap("r") < 10.0
        await asyncio.sleep(0.05)
        assert len(frames) == 1  # still gathering
        await wait_for(lambda: len(frames) == 2, timeout=5)
        assert frames[1] == '["a","b","c"]' and batcher.items == 4  # gathered into one frame
        assert stamps[1] == [2.0]  # only this process's items are timed
        for i in range(batcher.max_items):  # a full batch goes at once
            batcher.add("r", f'"{i}"')
        assert len(frames) == 3 and frames[2].count(",") == batcher.max_items - 1
    finally:
        await tasks.close()


async def test_a_full_write_queue_refuses_with_busy_and_sends_nothing(aiohttp_server, tmp_path):
    base, app = await _room(aiohttp_server, tmp_path)
    alice, bob = await Api.sign_up(base), await Api.sign_up(base)
    a, b = await connected(base, alice, "maths"), await connected(base, bob, "maths")
    rows = app[INTERACTION].danmaku.rows
    try:
        rows.capacity = 0  # the database is behind
        for _ in range(6):  # more than the burst: a refusal takes no token
            ack = await a.call("danmaku:send", {"text": "while the database is behind"})
            assert ack == {"ok": False, "error": {"code": "busy", "message": ack["error"]["message"]}}
        rows.capacity = 20_000
        assert (await a.call("danmaku:send", {"text": "stored"}))["ok"]
        await wait_for(lambda: b.danmaku(), timeout=5)
        await asyncio.sleep(0.2)
        assert [d["text"] for d in b.danmaku()] == ["stored"]
    finally:
        await a.close()
        await b.close()


async def test_with_workers_the_gap_is_reckoned_on_the_rooms_whole_fan_out():
    """Each of 2 processes writes a frame to half the room: its frames are spaced as one
    process's would be, so the node sends as many frames as one process (not twice as many)."""
    tasks = TaskOwner(__import__("logging").getLogger("test"))
    one = Batcher(lambda room, items: _burn(0.02), tasks, interval=10.0)
    two = Batcher(lambda room, items: _burn(0.02), tasks, interval=10.0, processes=2)
    try:
        for batcher in (one, two):
            batcher.add("r", '"x"')
        await wait_for(lambda: one.frames == two.frames == 1, timeout=5)
        # each spaced by 3x its last frame's cost (at least the 20 ms of CPU it took), times the processes
        assert one.gap("r") == pytest.approx(3 * one._rooms["r"].cost) and one._rooms["r"].cost >= 0.02
        assert two.gap("r") == pytest.approx(6 * two._rooms["r"].cost) and two._rooms["r"].cost >= 0.02
    finally:
        await tasks.close()
