"""Rows written behind go to one writer per node (``paywall.table_writer``): an interaction
worker on the node's local bus hands each batch to the control plane, which commits it and
answers; one process, or a process on Redis, writes its own. Real SQLite database, real
local bus over a Unix socket."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, select

from core.cluster import LocalCluster
from core.timeutil import as_utc
from paywall.db import Database, TZDateTime
from paywall.table_writer import NodeTableWriter, TableWriter, table_writer
from tests.support.cluster_views import two_cluster_views

pytestmark = pytest.mark.inprocess

MARKS = Table("marks", MetaData(), Column("id", Integer, primary_key=True), Column("at", TZDateTime),
              Column("text", String(40)))


@pytest.fixture
async def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'rows.db'}")
    async with database.engine.begin() as connection:
        await connection.run_sync(MARKS.metadata.create_all)
    yield database
    await database.close()


async def _rows(db: Database) -> list[tuple]:
    async with db.engine.connect() as connection:
        rows = (await connection.execute(select(MARKS).order_by(MARKS.c.id))).all()
    return [(i, as_utc(at), text) for i, at, text in rows]


def _row(i: int) -> dict:
    return {"id": i, "at": dt.datetime(2026, 12, 5, 10, 0, i, 123000, tzinfo=dt.timezone.utc), "text": f"row {i}"}


async def test_a_worker_hands_its_rows_to_the_control_plane_which_commits_them(db, tmp_path):
    async with two_cluster_views("local bus", 0, tmp_path) as (control, worker):
        served = table_writer(control, db, MARKS)
        assert isinstance(served, TableWriter) and table_writer(control, db, MARKS) is served  # one per table
        forwarded = table_writer(worker, db, MARKS)
        assert isinstance(forwarded, NodeTableWriter)
        await forwarded.write([_row(1), _row(2)])  # answered once committed
        await served.write([_row(3)])
        assert await _rows(db) == [(i, _row(i)["at"], f"row {i}") for i in (1, 2, 3)]

        await forwarded.write([])  # nothing to send
        with pytest.raises(RuntimeError, match="IntegrityError"):  # the worker hears why
            await forwarded.write([_row(4), _row(1)])
        assert len(await _rows(db)) == 3  # one transaction: none of the batch


async def test_one_process_or_redis_writes_its_own_rows(db):
    alone = table_writer(LocalCluster(), db, MARKS)
    assert isinstance(alone, TableWriter)
    await alone.write([_row(1)])
    assert len(await _rows(db)) == 1


async def test_a_slow_commit_holds_up_neither_the_bus_nor_shutdown_loses_it(db, tmp_path):
    async with two_cluster_views("local bus", 0, tmp_path) as (control, worker):
        served = table_writer(control, db, MARKS)
        forwarded = table_writer(worker, db, MARKS)
        release = asyncio.Event()
        write = served.write

        async def slow(rows):
            await release.wait()
            await write(rows)

        served.write = slow
        heard: list[str] = []
        got = asyncio.Event()

        async def hear(message: str) -> None:
            heard.append(message)
            got.set()

        await control.subscribe("feed", hear)
        writing = asyncio.create_task(forwarded.write([_row(1)]))
        await asyncio.sleep(0.05)
        await worker.publish("feed", "danmaku")  # on the same connection, behind the write
        await asyncio.wait_for(got.wait(), 2)
        assert heard == ["danmaku"] and not writing.done()

        hub = control.hub
        closing = asyncio.create_task(hub.close())  # the node stops: the batch is still written
        await asyncio.sleep(0.05)
        assert not closing.done()
        release.set()
        await asyncio.wait_for(closing, 2)
        assert len(await _rows(db)) == 1
        await asyncio.wait_for(writing, 2)
