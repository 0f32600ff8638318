"""``RoomFeed`` between two processes' views of one cluster (the node's local bus over a
real Unix socket, and two Redis clients): every item another process accepted arrives
once, in order, in fewer messages than items under a burst; a process never gets its own
items back; without a shared cluster nothing is published."""

from __future__ import annotations

import logging
from typing import AsyncIterator

import pytest

from core.cluster import Cluster, LocalCluster
from core.tasks import TaskOwner
from interaction.room_feed import RoomFeed
from tests.support.cluster_views import two_cluster_views
from tests.support.waiting import wait_for

pytestmark = pytest.mark.inprocess

REDIS_DB = 14  # this file's own database number
log = logging.getLogger("test")


@pytest.fixture(params=["local bus", "redis"])
async def two_views(request, tmp_path) -> AsyncIterator[tuple[Cluster, Cluster]]:
    async with two_cluster_views(request.param, REDIS_DB, tmp_path) as views:
        yield views


class Got:
    def __init__(self) -> None:
        self.items: dict[str, list[str]] = {}
        self.calls = 0

    def __call__(self, room: str, items: str, count: int) -> None:
        self.calls += 1
        parts = items.split("\n")
        assert len(parts) == count
        self.items.setdefault(room, []).extend(parts)


async def test_items_reach_the_other_process_once_in_order_coalesced(two_views):
    tasks = TaskOwner(log)
    got_a, got_b = Got(), Got()
    a = RoomFeed(two_views[0], got_a, tasks)
    b = RoomFeed(two_views[1], got_b, tasks)
    await a.start()
    await b.start()
    try:
        burst = [f'{{"n":{i}}}' for i in range(30)]
        for item in burst:  # accepted in one turn of the loop: published together
            a.publish("maths", item)
        a.publish("physics", '"other room"')
        await wait_for(lambda: len(got_b.items.get("maths", [])) == 30, timeout=10)
        for i in range(10):  # b's items, one at a time, interleaved with a's
            b.publish("maths", f'"b{i}"')
            a.publish("maths", f'"a{i}"')
        await wait_for(lambda: len(got_b.items["maths"]) == 40 and len(got_a.items.get("maths", [])) == 10,
                       timeout=10)
        await wait_for(lambda: got_b.items.get("physics") == ['"other room"'], timeout=10)
        assert got_b.items["maths"] == burst + [f'"a{i}"' for i in range(10)]  # once each, in order
        assert got_a.items == {"maths": [f'"b{i}"' for i in range(10)]}  # never its own back
        assert b.received == 41 and a.received == 10
        assert a.published < 30  # the burst went in a few messages, not one per item
    finally:
        await a.close()
        await b.close()
        await tasks.close()


async def test_one_process_publishes_nothing():
    tasks = TaskOwner(log)
    cluster = LocalCluster()  # not shared: every viewer is on this process
    got = Got()
    feed = RoomFeed(cluster, got, tasks)
    await feed.start()
    feed.publish("maths", '"x"')
    await tasks.close()
    assert feed.published == 0 and got.calls == 0
