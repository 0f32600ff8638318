"""Full-text search of the catalog: ``GET /api/catalog?q=``, ranked, in the database.

* SQLite (default): an FTS5 table ``rooms_fts`` over ``rooms`` (external content, kept in
  sync by triggers), ranked by ``bm25`` with the slug and title weighing most, then tags,
  then the description.
* PostgreSQL: a GIN index over a weighted ``tsvector`` of the same columns (``simple``
  configuration: no language is assumed), ranked by ``ts_rank``.

Both made by migration 0007. A query is cut into words (letters and digits); every word
must match, the last ones as prefixes as well (typing "alg" finds "algebra"), so the
user's text never reaches either engine's query syntax.

Caution for later migrations: on SQLite, Alembic's batch mode rebuilds a table by copying
it, which drops ``rooms``' triggers; a migration that alters ``rooms`` must recreate them
(as 0007 does) and ``rebuild`` the index (``tests/test_catalog_search.py`` would notice).
"""

from __future__ import annotations

import re

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["MAX_QUERY_CHARS", "PG_DOCUMENT", "SEARCH_OBJECTS", "is_search_object", "ranked_room_ids", "words"]

MAX_QUERY_CHARS = 200
MAX_WORDS = 8
LIMIT = 100
#: the tables and index the migration makes, which ``paywall.models`` does not describe
SEARCH_OBJECTS = ("rooms_fts", "ix_rooms_search")
#: the indexed document on PostgreSQL; queries must repeat it exactly to use the index
PG_DOCUMENT = (
    "setweight(to_tsvector('simple', coalesce(slug, '') || ' ' || coalesce(title, '')), 'A') || "
    "setweight(to_tsvector('simple', coalesce(tags, '')), 'B') || "
    "setweight(to_tsvector('simple', coalesce(description, '')), 'C')"
)


def is_search_object(name: str | None) -> bool:
    """For Alembic's comparisons: the FTS5 table (and its shadow tables) and the GIN index."""
    return bool(name) and name.startswith(SEARCH_OBJECTS)


def words(query: str) -> list[str]:
    """The query's words, lower case, at most ``MAX_WORDS`` of at most 32 characters."""
    return [w[:32] for w in re.findall(r"[^\W_]+", query.lower())][:MAX_WORDS]


async def ranked_room_ids(session: AsyncSession, query: str) -> list[int]:
    """Ids of the rooms matching every word of ``query``, best first."""
    terms = words(query)
    if not terms:
        return []
    if session.bind.dialect.name == "postgresql":
        tsquery = " & ".join(f"{w}:*" for w in terms)
        rows = await session.execute(text(
            f"SELECT id FROM rooms WHERE ({PG_DOCUMENT}) @@ to_tsquery('simple', :q) "
            f"ORDER BY ts_rank({PG_DOCUMENT}, to_tsquery('simple', :q)) DESC, id LIMIT {LIMIT}"), {"q": tsquery})
    else:
        match = " ".join(f'"{w}"*' for w in terms)
        rows = await session.execute(text(
            "SELECT rowid FROM rooms_fts WHERE rooms_fts MATCH :q "
            f"ORDER BY bm25(rooms_fts, 10.0, 10.0, 5.0, 1.0), rowid LIMIT {LIMIT}"), {"q": match})
    return [row[0] for row in rows]
