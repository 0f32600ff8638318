"""A danmaku writer killed without closing is not waited for by the next reader; the
ordered set earlier releases listed the writers in is deleted at start.

Two writers on real Redis: one in this process, one in a child process that is killed
with SIGKILL (it cannot leave the writers). Once its listing's time to live has passed,
``flush_all`` hears every live writer and returns without waiting for the dead one (on
main, the cluster set had no time to live: the reader waited ``wait`` seconds for it)."""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
import sys
import time
from pathlib import Path

import pytest

from core.cluster import RedisCluster
from core.tasks import TaskOwner
from interaction.flush_barrier import FlushBarrier

pytestmark = pytest.mark.inprocess

REDIS_URL = "redis://127.0.0.1:6379/0"  # every numbered database is another file's: a key prefix of its own here
ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import asyncio, logging, sys
from core.cluster import RedisCluster
from core.tasks import TaskOwner
from interaction.flush_barrier import FlushBarrier

async def main(url, prefix):
    async def flush():
        pass
    barrier = FlushBarrier(RedisCluster.from_url(url, prefix=prefix), flush, TaskOwner(logging.getLogger()), ttl=1.0)
    await barrier.start()
    print(barrier.process, flush=True)
    await asyncio.sleep(3600)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


async def test_a_killed_writer_is_not_waited_for(caplog):
    prefix = f"test-flush-{secrets.token_hex(4)}"
    tasks = TaskOwner(logging.getLogger("test"))
    flushed: list[str] = []

    def barrier(name: str) -> FlushBarrier:
        async def flush() -> None:
            flushed.append(name)

        return FlushBarrier(RedisCluster.from_url(REDIS_URL, prefix=prefix), flush, tasks, wait=20.0, ttl=1.0)

    reader, alive = barrier("reader"), barrier("alive")
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", CHILD, REDIS_URL, prefix, cwd=ROOT,
                                                 stdout=asyncio.subprocess.PIPE)
    try:
        await reader.start()
        await alive.start()
        dead = (await asyncio.wait_for(child.stdout.readline(), 30)).decode().strip()
        assert await reader.writers() == {reader.process, alive.process, dead}
        child.send_signal(signal.SIGKILL)
        await child.wait()

        deadline = time.monotonic() + 10  # the dead one's listing expires after its ttl (1 s)
        while dead in await reader.writers():
            assert time.monotonic() < deadline, "the killed writer is still listed"
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.5)  # a few of the live writers' renewals (every ttl / 3): they stay listed
        assert await reader.writers() == {reader.process, alive.process}

        caplog.set_level("WARNING", logger="stagepass.interaction")
        started = time.monotonic()
        await asyncio.wait_for(reader.flush_all(), 10)  # on main: 20 s for the dead one (wait)
        assert sorted(flushed) == ["alive", "reader"] and alive.answered == 1
        assert time.monotonic() - started < 5
        assert not [r for r in caplog.records if "did not answer" in r.getMessage()]

        await alive.close()  # a writer that closes leaves at once
        assert await reader.writers() == {reader.process}
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
        await alive.close()
        await reader.close()
        await tasks.close()
        for key in await reader.cluster.redis.keys(f"{prefix}:*"):  # this test's keys only
            await reader.cluster.redis.delete(key)
        for barrier_ in (reader, alive):
            await barrier_.cluster.close()


async def test_the_old_writers_set_is_deleted_at_start():
    """Releases before the per-process keys kept ``danmaku:writers`` (an ordered set with no
    time to live, read by nothing now): a writer that starts deletes it, and only it."""
    prefix = f"test-flush-{secrets.token_hex(4)}"
    tasks = TaskOwner(logging.getLogger("test"))

    async def flush() -> None:
        pass

    cluster = RedisCluster.from_url(REDIS_URL, prefix=prefix)
    barrier = FlushBarrier(cluster, flush, tasks, ttl=5.0)
    try:
        await cluster.ordered_add("danmaku:writers", "old-process", keep_place=True)  # as a release before did
        await cluster.set("danmaku:other", "kept")
        assert await cluster.redis.exists(f"{prefix}:danmaku:writers") == 1
        await barrier.start()
        assert await cluster.redis.exists(f"{prefix}:danmaku:writers") == 0
        assert await cluster.get("danmaku:other") == "kept"
        assert await barrier.writers() == {barrier.process}
    finally:
        await barrier.close()
        await tasks.close()
        for key in await cluster.redis.keys(f"{prefix}:*"):  # this test's keys only
            await cluster.redis.delete(key)
        await cluster.close()
