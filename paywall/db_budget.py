"""The database pool of each process of a node, and the most PostgreSQL connections the node
may open, checked against the server's limit at start.

Every process of a node has its own SQLAlchemy pool (``Paywall.open`` asks for it here): the
control plane's (``control_plane_pool``: ``db_pool_size`` + ``db_max_overflow``) and, when the
node runs more than one interaction worker, one per worker (``worker_pool``:
``worker_db_pool_size`` + ``worker_db_max_overflow``, small: a worker checks tokens, moderation
and paid questions, and writes its danmaku rows and behaviour events itself only with Redis;
without it they go to the control plane, which commits them, ``paywall.table_writer``). The
default number of interaction workers grows with the node's CPUs (``auto``: one per CPU, at
most as many as a quarter of the memory holds and 16), so after opening the database the
control plane (``stagepass.app``) calls ``check_connection_budget``: on PostgreSQL it logs the
node's most connections (``ConnectionBudget``) and warns, naming the settings to lower, when
the server could not serve them (``max_connections`` minus the slots reserved for superusers
and for roles granted ``pg_use_reserved_connections``), or when that limit cannot be read.
SQLite has no server to run out of slots: nothing is checked or logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from core.settings import Settings
from paywall.db import Database, Pool

__all__ = ["ConnectionBudget", "control_plane_pool", "worker_pool", "connection_limit", "check_connection_budget"]

log = logging.getLogger("stagepass.paywall.db")


def control_plane_pool(settings: Settings) -> Pool:
    return Pool(settings.server.db_pool_size, settings.server.db_max_overflow)


def worker_pool(settings: Settings) -> Pool:
    return Pool(settings.server.worker_db_pool_size, settings.server.worker_db_max_overflow)


@dataclass(frozen=True)
class ConnectionBudget:
    """The pools of one node's processes (the workers run only when there are more than one)."""

    control_plane: Pool
    worker: Pool
    workers: int

    @classmethod
    def of(cls, settings: Settings) -> "ConnectionBudget":
        count = settings.interaction.interaction_workers
        return cls(control_plane_pool(settings), worker_pool(settings), count if count > 1 else 0)

    @property
    def most(self) -> int:
        """The most connections the node holds at once."""
        return self.control_plane.most + self.workers * self.worker.most

    def describe(self) -> str:
        text = f"control plane {self.control_plane.size}+{self.control_plane.overflow}"
        if self.workers:
            text += f", {self.workers} interaction workers x {self.worker.size}+{self.worker.overflow}"
        return text


async def connection_limit(db: Database) -> int:
    """The connections PostgreSQL gives ordinary roles: ``max_connections`` minus the reserved slots
    (``reserved_connections`` exists from PostgreSQL 16)."""
    async with db.engine.connect() as conn:
        rows = await conn.execute(text(
            "SELECT name, setting::int FROM pg_settings WHERE name IN "
            "('max_connections', 'superuser_reserved_connections', 'reserved_connections')"))
        values = dict(rows.tuples().all())
    return values["max_connections"] - values.get("superuser_reserved_connections", 0) - values.get(
        "reserved_connections", 0)


async def check_connection_budget(db: Database, settings: Settings) -> Optional[str]:
    """Log the node's most connections; on PostgreSQL, warn when they exceed what the server
    serves and return the warning (None when they fit, or on SQLite)."""
    if db.is_sqlite:
        return None
    budget = ConnectionBudget.of(settings)
    try:
        limit = await connection_limit(db)
    except SQLAlchemyError as exc:  # the node runs on; only the check is lost
        log.warning("this node may open up to %d PostgreSQL connections (%s); the server's max_connections "
                    "could not be read (%s)", budget.most, budget.describe(), exc)
        return None
    log.info("this node may open up to %d PostgreSQL connections (%s); the server serves %d",
             budget.most, budget.describe(), limit)
    if budget.most <= limit:
        return None
    workers = (f"STAGEPASS_WORKER_DB_POOL_SIZE / STAGEPASS_WORKER_DB_MAX_OVERFLOW (the interaction workers may "
               f"open {budget.workers * budget.worker.most}) or STAGEPASS_INTERACTION_WORKERS")
    control = (f"STAGEPASS_DB_POOL_SIZE / STAGEPASS_DB_MAX_OVERFLOW (the control plane may open "
               f"{budget.control_plane.most})")
    first, then = (workers, control) if budget.workers * budget.worker.most > budget.control_plane.most else (
        control, workers)
    warning = (f"this node may open up to {budget.most} PostgreSQL connections ({budget.describe()}), more than "
               f"the {limit} the server serves (max_connections minus its reserved slots), before any other node "
               f"or client: lower {first}, or {then}, or raise PostgreSQL's max_connections")
    log.warning("%s", warning)
    return warning
