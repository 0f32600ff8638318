"""The database pool of each process of a node (``paywall.db``, ``paywall.db_budget``): an
interaction worker opens a small PostgreSQL pool, the control plane keeps SQLAlchemy's default,
SQLite keeps its default whatever the settings, and a node whose processes may open more
connections than PostgreSQL serves says so at start-up, naming the settings to lower."""

from __future__ import annotations

import logging

import asyncpg
from sqlalchemy import text

from core.settings import Settings
from paywall.db_budget import ConnectionBudget, check_connection_budget, connection_limit
from paywall.service import Paywall
from stagepass.app import create_app
from tests.support.paywall_fixtures import PG_ADMIN, fresh_postgres, paywall_settings


async def test_an_interaction_workers_pool_is_the_configured_one_on_postgresql(tmp_path):
    async with fresh_postgres() as url:
        settings = paywall_settings(tmp_path, url, worker_db_pool_size=3, worker_db_max_overflow=1)
        worker = await Paywall.open(settings, worker=True)
        control = await Paywall.open(settings)
        try:
            assert (worker.db.engine.pool.size(), worker.db.engine.pool._max_overflow) == (3, 1)
            assert (control.db.engine.pool.size(), control.db.engine.pool._max_overflow) == (5, 10)
            async with worker.db.engine.connect() as conn:  # each process names itself to the server
                name = (await conn.execute(text("SELECT current_setting('application_name')"))).scalar()
            assert name == "stagepass interaction worker"
        finally:
            await worker.close()
            await control.close()


async def test_sqlite_keeps_its_default_pool(tmp_path):
    settings = paywall_settings(tmp_path, f"sqlite:///{tmp_path / 'p.db'}", worker_db_pool_size=1,
                                worker_db_max_overflow=0)
    worker = await Paywall.open(settings, worker=True)
    try:
        assert (worker.db.engine.pool.size(), worker.db.engine.pool._max_overflow) == (5, 10)
        assert await check_connection_budget(worker.db, settings) is None  # no server, nothing to check
    finally:
        await worker.close()


async def test_the_budget_counts_each_worker_and_the_limit_leaves_out_reserved_slots(tmp_path):
    one = Settings.build(interaction_workers=1)
    assert ConnectionBudget.of(one).most == 15  # the control plane serves the chat itself
    node = Settings.build(interaction_workers=16)
    assert ConnectionBudget.of(node).most == 15 + 16 * 4 < 100 - 3  # PostgreSQL's defaults
    async with fresh_postgres() as url:
        paywall = await Paywall.open(paywall_settings(tmp_path, url))
        admin = await asyncpg.connect(PG_ADMIN)
        try:
            most = int(await admin.fetchval("SHOW max_connections"))
            reserved = int(await admin.fetchval("SHOW superuser_reserved_connections"))
            if await admin.fetchval("SELECT 1 FROM pg_settings WHERE name = 'reserved_connections'"):
                reserved += int(await admin.fetchval("SHOW reserved_connections"))
            assert await connection_limit(paywall.db) == most - reserved
        finally:
            await admin.close()
            await paywall.close()


async def test_start_up_warns_when_the_node_may_open_more_than_postgresql_serves(tmp_path, aiohttp_server, caplog):
    caplog.set_level(logging.INFO, logger="stagepass.paywall.db")
    async with fresh_postgres() as url:
        app = create_app(paywall_settings(tmp_path, url, db_pool_size=400, db_max_overflow=0))
        server = await aiohttp_server(app)
        await server.close()
        warnings = [r.getMessage() for r in caplog.records
                    if r.levelno == logging.WARNING and r.name == "stagepass.paywall.db"]
        assert len(warnings) == 1, warnings
        assert warnings[0].startswith("this node may open up to 400 PostgreSQL connections (control plane 400+0), "
                                      "more than the ")  # the setting that holds the most comes first
        assert ("lower STAGEPASS_DB_POOL_SIZE / STAGEPASS_DB_MAX_OVERFLOW (the control plane may open 400), or "
                "STAGEPASS_WORKER_DB_POOL_SIZE") in warnings[0]
        caplog.clear()
        # a node of 2 workers whose pools fit: the most it may open is logged, without a warning
        fits = paywall_settings(tmp_path, url, interaction_workers=2, worker_db_pool_size=3, worker_db_max_overflow=1)
        paywall = await Paywall.open(fits)
        try:
            assert await check_connection_budget(paywall.db, fits) is None
            # 2 workers of 60: over the limit, the warning is returned as it is logged
            over = paywall_settings(tmp_path, url, interaction_workers=2, worker_db_pool_size=60)
            warning = await check_connection_budget(paywall.db, over)
        finally:
            await paywall.close()
    messages = [r.getMessage() for r in caplog.records if r.name == "stagepass.paywall.db"]
    assert messages[0].startswith("this node may open up to 23 PostgreSQL connections "
                                  "(control plane 5+10, 2 interaction workers x 3+1); the server serves")
    assert warning is not None and warning.startswith(
        "this node may open up to 139 PostgreSQL connections (control plane 5+10, 2 interaction workers x 60+2)")
    assert "lower STAGEPASS_WORKER_DB_POOL_SIZE / STAGEPASS_WORKER_DB_MAX_OVERFLOW (the interaction workers may open 124)" in warning
    assert messages[-1] == warning
