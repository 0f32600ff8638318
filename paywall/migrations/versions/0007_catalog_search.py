"""catalog search: FTS5 table on SQLite, weighted tsvector GIN index on PostgreSQL

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04

"""
from typing import Sequence, Union

from alembic import op

from paywall.search import PG_DOCUMENT

# revision identifiers, used by Alembic.
revision: str = '0007'
down_revision: Union[str, Sequence[str], None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_COLUMNS = "slug, title, tags, description"
_NEW = "new.slug, new.title, new.tags, new.description"
_OLD = "old.slug, old.title, old.tags, old.description"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"CREATE INDEX ix_rooms_search ON rooms USING gin (({PG_DOCUMENT}))")
        return
    op.execute(f"CREATE VIRTUAL TABLE rooms_fts USING fts5({_COLUMNS}, content='rooms', content_rowid='id', "
               "tokenize='unicode61 remove_diacritics 2')")
    op.execute(f"CREATE TRIGGER rooms_fts_insert AFTER INSERT ON rooms BEGIN "
               f"INSERT INTO rooms_fts(rowid, {_COLUMNS}) VALUES (new.id, {_NEW}); END")
    op.execute(f"CREATE TRIGGER rooms_fts_delete AFTER DELETE ON rooms BEGIN "
               f"INSERT INTO rooms_fts(rooms_fts, rowid, {_COLUMNS}) VALUES ('delete', old.id, {_OLD}); END")
    op.execute(f"CREATE TRIGGER rooms_fts_update AFTER UPDATE ON rooms BEGIN "
               f"INSERT INTO rooms_fts(rooms_fts, rowid, {_COLUMNS}) VALUES ('delete', old.id, {_OLD}); "
               f"INSERT INTO rooms_fts(rowid, {_COLUMNS}) VALUES (new.id, {_NEW}); END")
    op.execute("INSERT INTO rooms_fts(rooms_fts) VALUES ('rebuild')")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_rooms_search")
        return
    for trigger in ("rooms_fts_insert", "rooms_fts_delete", "rooms_fts_update"):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    op.execute("DROP TABLE IF EXISTS rooms_fts")
