"""The paywall's database: SQLAlchemy 2 async engine plus Alembic migrations at start.

Embedded default: SQLite in the data dir (aiosqlite). With
``DATABASE_URL=postgresql://...`` (or ``postgresql+asyncpg://``) PostgreSQL via asyncpg.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from alembic import command
from alembic.config import Config
from sqlalchemy import DateTime, event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

__all__ = ["Base", "Database", "Pool", "TZDateTime", "normalize_url"]


class Base(DeclarativeBase):
    """The declarative base of every table in the database (paywall's and interaction's)."""


#: timestamps are stored with their zone (SQLite hands them back naive: ``core.timeutil.as_utc``)
TZDateTime = DateTime(timezone=True)

MIGRATIONS = Path(__file__).parent / "migrations"


def normalize_url(url: str) -> str:
    """Pick the async driver for plain ``postgresql://`` and ``sqlite://`` URLs."""
    for plain, asynchronous in (
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(plain):
            return asynchronous + url[len(plain):]
    return url


def _alembic_config(connection: Optional[Connection] = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


@dataclass(frozen=True)
class Pool:
    """One process's PostgreSQL connections: ``size`` kept open, ``overflow`` more under load."""

    size: int
    overflow: int

    @property
    def most(self) -> int:
        """The most connections the pool holds at once."""
        return self.size + self.overflow


class Database:
    def __init__(self, url: str, pool: Optional[Pool] = None, application_name: str = "", **engine_args: Any) -> None:
        """``pool`` and ``application_name`` (what ``pg_stat_activity`` shows) apply to PostgreSQL only:
        a SQLite file keeps SQLAlchemy's default pool, whose connections take no server slot."""
        self.url = normalize_url(url)
        if self.url.startswith("sqlite"):
            engine_args.setdefault("connect_args", {"timeout": 30})
        else:
            if pool is not None:
                engine_args.setdefault("pool_size", pool.size)
                engine_args.setdefault("max_overflow", pool.overflow)
            if application_name and self.url.startswith("postgresql+asyncpg"):
                engine_args.setdefault("connect_args", {"server_settings": {"application_name": application_name}})
        self.engine = create_async_engine(self.url, **engine_args)
        if self.url.startswith("sqlite"):
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.session = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    async def migrate(self) -> None:
        """Bring the schema to the newest migration (idempotent)."""
        async with self.engine.begin() as conn:
            await conn.run_sync(lambda c: command.upgrade(_alembic_config(c), "head"))

    async def close(self) -> None:
        await self.engine.dispose()

    def __call__(self) -> AsyncSession:
        return self.session()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()
