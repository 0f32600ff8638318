"""A node's PostgreSQL connections stay within its bound: a real ``stagepass serve`` with two
interaction workers on PostgreSQL, python-socketio viewers joining at once and flooding
danmaku through both workers, while ``pg_stat_activity`` is sampled for the test's database.
The pools are set small, so processes that ignored their setting (SQLAlchemy's 5 + 10 each)
would go past the bound; every acknowledged danmaku is still written."""

from __future__ import annotations

import asyncio
from collections import Counter

import asyncpg
import pytest

from tests.support.chat import Chat
from tests.support.paywall_fixtures import PG_ADMIN, Api, fresh_postgres, paid_room, view_token
from tests.support.server_process import interaction_worker_pids, start_server, stop

pytestmark = pytest.mark.e2e

VIEWERS = 16
EACH = 30  # danmaku per viewer, all in flight at once
POOLS = ("--db-pool-size", "2", "--db-max-overflow", "1", "--worker-db-pool-size", "1", "--worker-db-max-overflow", "1")
BOUND = (2 + 1) + 2 * (1 + 1)  # control plane + 2 workers


class Sampler:
    """The connections to one database, by the name each process gives (``application_name``),
    sampled every 10 ms from another database (the sampler's own connection is not counted)."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.peak = 0
        self.peak_by_name: Counter = Counter()
        self.samples = 0

    async def run(self) -> None:
        admin = await asyncpg.connect(PG_ADMIN)
        try:
            while True:
                rows = await admin.fetch("SELECT application_name, count(*) AS n FROM pg_stat_activity "
                                         "WHERE datname = $1 GROUP BY application_name", self.database)
                by_name = {r["application_name"]: r["n"] for r in rows}
                self.peak = max(self.peak, sum(by_name.values()))
                for name, n in by_name.items():
                    self.peak_by_name[name] = max(self.peak_by_name[name], n)
                self.samples += 1
                await asyncio.sleep(0.01)
        finally:
            await admin.close()


async def test_two_workers_under_a_danmaku_flood_hold_no_more_connections_than_the_bound(tmp_path):
    async with fresh_postgres() as url:
        sampler = Sampler(url.rsplit("/", 1)[1])
        sampling = asyncio.create_task(sampler.run())
        proc, base = await start_server(
            tmp_path / "node", "--database-url", url, "--secret", "d" * 40, "--signups-per-hour", "1000",
            "--interaction-workers", "2", *POOLS, "--danmaku-write-ms", "50", "--danmaku-user-rate", "1000",
            "--danmaku-user-burst", "1000", "--danmaku-room-rate", "100000")
        chats: list[Chat] = []
        try:
            assert len(interaction_worker_pids(proc.pid)) == 2
            creator = await Api.sign_up(base, "creator")
            await paid_room(creator, ticket_price=0)
            viewers = [await Api.sign_up(base) for _ in range(VIEWERS)]
            tokens = [await view_token(v, "maths") for v in viewers]
            chats = [Chat() for _ in viewers]
            joined = await asyncio.gather(*(c.connect(base, "maths", t) for c, t in zip(chats, tokens)))
            assert all(joined), [c.refused for c in chats]

            async def flood(chat: Chat) -> list[dict]:
                acks = await asyncio.gather(*(chat.call("danmaku:send", {"text": f"flood {i}"}, timeout=60)
                                              for i in range(EACH)))
                return [a["danmaku"] for a in acks if a.get("ok")]

            acked = [d for sent in await asyncio.gather(*(flood(c) for c in chats)) for d in sent]
            assert len(acked) == VIEWERS * EACH

            written: list = []
            for _ in range(300):  # written behind, every 50 ms
                status, body = await creator.get("/api/rooms/maths/danmaku?format=json")
                written = body["items"] if status == 200 else []
                if len(written) >= len(acked):
                    break
                await asyncio.sleep(0.1)
            assert sorted(d["id"] for d in written) == sorted(d["id"] for d in acked)
        finally:
            for chat in chats:
                await chat.close()
            stop(proc)
            sampling.cancel()
            await asyncio.gather(sampling, return_exceptions=True)
        log = proc.stderr.read().decode()
    print(f"peak {sampler.peak} connections over {sampler.samples} samples, by process: {dict(sampler.peak_by_name)}")
    assert sampler.peak_by_name["stagepass interaction worker"] >= 1  # the workers did use the database
    assert sampler.peak <= BOUND, dict(sampler.peak_by_name)
    assert sampler.peak_by_name["stagepass interaction worker"] <= 2 * (1 + 1)
    assert (f"this node may open up to {BOUND} PostgreSQL connections "
            "(control plane 2+1, 2 interaction workers x 1+1)") in log
