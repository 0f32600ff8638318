"""Where batched rows go: ``TableWriter`` inserts them; ``NodeTableWriter`` hands them to
the node's control plane, which inserts the rows of all its interaction workers.

Rows written behind (danmaku, behaviour events) are gathered for a fraction of a second
and written with one INSERT and one COMMIT. With interaction workers and no Redis (the
node's local bus, ``core.cluster.linked``), every worker committing its own small batches
to the node's database costs each worker the same fixed work per commit (a transaction
through SQLAlchemy and aiosqlite's thread, about 1.5 ms of CPU, four or five times a
second) however few rows it holds, and makes several processes take turns at SQLite's
single write lock. So a worker sends each batch to the control plane in one request on
the bus it already holds, and the control plane writes it: one writer per node, the
worker's cost a JSON line. The batch is acknowledged once it is committed, so a worker's
``flush`` still means "written" and a kill -9 of a worker loses nothing already sent.

With Redis (several nodes, usually PostgreSQL) each process writes its own rows.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any, Protocol

from sqlalchemy import Table, insert

from core.cluster import Cluster

from .db import Database

__all__ = ["NodeTableWriter", "RowWriter", "TableWriter", "table_writer"]


class RowWriter(Protocol):
    async def write(self, rows: list[dict[str, Any]]) -> None:
        """Insert ``rows`` (column -> value) in one transaction; raise if they were not."""


class TableWriter:
    """Inserts batches of rows into ``table``: one executemany on a plain SQLAlchemy Core
    connection (no ORM session per batch) and one COMMIT, one batch at a time (the
    batches of several workers are never two transactions racing for SQLite's lock)."""

    def __init__(self, db: Database, table: Table) -> None:
        self.db = db
        self.table = table
        self._insert = insert(table)
        self._lock = asyncio.Lock()
        self._dates = _datetime_columns(table)

    async def write(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        async with self._lock:
            async with self.db.engine.begin() as connection:
                await connection.execute(self._insert, rows)

    async def write_sent(self, rows: list[dict[str, Any]]) -> int:
        """``write`` for rows that came over the bus as JSON (times as ISO 8601 text);
        the number written."""
        for row in rows:
            for name in self._dates:
                value = row.get(name)
                if isinstance(value, str):
                    row[name] = dt.datetime.fromisoformat(value)
        await self.write(rows)
        return len(rows)


class NodeTableWriter:
    """A worker's writer: each batch is one request to the control plane's ``TableWriter``
    (served on the local bus as ``target``), answered once it is committed."""

    def __init__(self, cluster: Any, target: str, table: Table) -> None:
        self.cluster = cluster
        self.target = target
        self._dates = _datetime_columns(table)

    async def write(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        dates = self._dates
        sent = [{k: (v.isoformat() if k in dates and isinstance(v, dt.datetime) else v) for k, v in row.items()}
                for row in rows]
        await self.cluster.call(self.target, "write_sent", sent)


def table_writer(cluster: Cluster, db: Database, table: Table) -> RowWriter:
    """The writer for ``table`` in this process: the control plane's, through the node's
    local bus (a cluster that is ``shared`` and serves named objects: ``provide``), or
    this process's own. The control plane must call it before its workers start: it
    serves the table's writer to them (one per table, whoever asks first makes it)."""
    if not cluster.shared or getattr(cluster, "provide", None) is None:  # one process, or Redis
        return TableWriter(db, table)
    target = f"rows:{table.name}"
    hub = getattr(cluster, "hub", None)
    if hub is not None:  # the control plane: serves its writer to the workers and uses it itself
        return hub.provide(target, lambda: TableWriter(db, table))
    return NodeTableWriter(cluster, target, table)


def _datetime_columns(table: Table) -> frozenset[str]:
    names = set()
    for column in table.columns:
        try:
            if column.type.python_type is dt.datetime:
                names.add(column.name)
        except NotImplementedError:
            pass
    return frozenset(names)
