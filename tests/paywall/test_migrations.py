"""The Alembic migrations and ``paywall.models`` agree, on SQLite and PostgreSQL.

``Database.migrate`` (run at every start) must leave exactly the schema the models
describe, must be a no-op when run again, and ``stagepass migrate`` must do the same
from the command line.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, inspect, text

import interaction.models  # noqa: F401  (its tables share paywall.models.Base and the migrations)
import insight.models  # noqa: F401  (so do the insight tables)
from paywall.db import Database, _alembic_config
from paywall.models import Base
from paywall.search import is_search_object

pytestmark = pytest.mark.inprocess


def _diff(sync_conn) -> list:
    ctx = MigrationContext.configure(sync_conn, opts={
        "compare_type": True, "compare_server_default": True,
        "include_name": lambda name, type_, parent: not is_search_object(name)})
    return compare_metadata(ctx, Base.metadata)


def _state(sync_conn) -> dict:
    """What a second migration must not change: the revision and every table's shape."""
    insp = inspect(sync_conn)
    return {
        "revision": MigrationContext.configure(sync_conn).get_current_heads(),
        "tables": {
            t: (
                [(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(t)],
                sorted((i["name"], tuple(i["column_names"])) for i in insp.get_indexes(t)),
                sorted(str(sorted(u["column_names"])) for u in insp.get_unique_constraints(t)),
                sorted(str(fk["constrained_columns"]) + fk["referred_table"] for fk in insp.get_foreign_keys(t)),
            )
            for t in sorted(insp.get_table_names())
        },
    }


def _head() -> str:
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


async def test_migrations_match_the_models(database_url):
    db = Database(database_url)
    try:
        await db.migrate()
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
            heads = await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_heads())
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        assert heads == (_head(),)
        assert {t for t in tables if not is_search_object(t)} == set(Base.metadata.tables) | {"alembic_version"}
    finally:
        await db.close()


async def test_migrating_twice_is_a_no_op_and_keeps_data(database_url):
    db = Database(database_url)
    try:
        await db.migrate()
        async with db.engine.begin() as conn:
            await conn.execute(text(
                "INSERT INTO users (email, display_name, password_hash, role, created_at) "
                "VALUES ('kept@example.org', 'Kept', 'x', 'viewer', CURRENT_TIMESTAMP)"))
        async with db.engine.connect() as conn:
            before = await conn.run_sync(_state)

        statements: list[str] = []

        def record(conn, cursor, statement, *args):
            statements.append(statement)

        event.listen(db.engine.sync_engine, "before_cursor_execute", record)
        try:
            await db.migrate()
        finally:
            event.remove(db.engine.sync_engine, "before_cursor_execute", record)
        assert any("alembic_version" in s for s in statements)  # the listener saw the check
        ddl = [s for s in statements if s.lstrip().split(" ", 1)[0].upper() in ("CREATE", "ALTER", "DROP", "INSERT", "UPDATE", "DELETE")]
        assert ddl == [], ddl

        async with db.engine.connect() as conn:
            assert await conn.run_sync(_state) == before
            assert await conn.run_sync(_diff) == []
            emails = (await conn.execute(text("SELECT email FROM users"))).scalars().all()
        assert emails == ["kept@example.org"]
    finally:
        await db.close()


async def test_downgrade_to_base_and_back(database_url):
    """The downgrade path works too (it is what an operator rolls back with)."""
    db = Database(database_url)
    try:
        await db.migrate()
        async with db.engine.begin() as conn:
            await conn.run_sync(lambda c: command.downgrade(_alembic_config(c), "base"))
        async with db.engine.connect() as conn:
            left = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        assert left <= {"alembic_version"}
        await db.migrate()
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
    finally:
        await db.close()


def _clean_env() -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("STAGEPASS_") and k not in ("DATABASE_URL", "REDIS_URL")}
    return env


async def _check_schema(url: str) -> None:
    db = Database(url)
    try:
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
            heads = await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_heads())
        assert heads == (_head(),)
    finally:
        await db.close()


def _migrate_cli(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stagepass.cli", "migrate", *args],
                          capture_output=True, text=True, cwd=cwd, env=_clean_env(), timeout=120)


async def test_stagepass_migrate_with_the_embedded_database(tmp_path):
    data = tmp_path / "data"
    for _ in range(2):  # the second run finds everything up to date
        r = _migrate_cli("--data-dir", str(data), cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert "database is up to date" in r.stdout
    assert (data / "stagepass.db").is_file()
    await _check_schema(f"sqlite:///{data / 'stagepass.db'}")


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_stagepass_migrate_with_a_database_url(tmp_path, database_url):
    r = _migrate_cli("--data-dir", str(tmp_path / "data"), "--database-url", database_url, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "database is up to date" in r.stdout
    await _check_schema(database_url)
