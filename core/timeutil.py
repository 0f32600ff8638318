"""UTC helpers: SQLite hands back naive datetimes, PostgreSQL aware ones."""

from __future__ import annotations

import datetime as dt
from typing import Optional

__all__ = ["as_utc", "iso_z", "parse_instant", "utcnow"]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def as_utc(value: Optional[dt.datetime]) -> Optional[dt.datetime]:
    if value is None:
        return None
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)


def iso_z(value: Optional[dt.datetime]) -> Optional[str]:
    """``2026-12-01T18:00:00Z`` (UTC, naive values taken as UTC); None stays None."""
    value = as_utc(value)
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def parse_instant(text: str) -> dt.datetime:
    """ISO 8601 with a zone (``2026-12-01T18:00:00Z``) -> aware UTC datetime."""
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError("the time needs a zone, e.g. 2026-12-01T18:00:00Z")
    return value.astimezone(dt.timezone.utc)
