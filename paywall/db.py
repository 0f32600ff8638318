"""The paywall's database: SQLAlchemy 2 async engine plus Alembic migrations at start.

Embedded default: SQLite in the data dir (aiosqlite). With
``DATABASE_URL=postgresql://...`` (or ``postgresql+asyncpg://``) PostgreSQL via asyncpg.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from alembic import command
from alembic.config import Config
from sqlalchemy import DateTime, event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

__all__ = ["Base", "Database", "TZDateTime", "normalize_url"]


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


class Database:
    def __init__(self, url: str, **engine_args: Any) -> None:
        self.url = normalize_url(url)
        if self.url.startswith("sqlite"):
            engine_args.setdefault("connect_args", {"timeout": 30})
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
