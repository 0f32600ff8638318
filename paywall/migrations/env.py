"""Alembic environment: always run on a connection handed over by ``Database.migrate``."""

from alembic import context

from paywall.models import Base
from paywall.search import is_search_object

# Upgrading needs no models. ``target_metadata`` is for comparing (tests/paywall/test_migrations.py,
# ``--autogenerate``): interaction/ and insight/ declare their tables on the same ``Base``, and the
# caller imports them (paywall sits below both and does not import them).

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only programmatic use is supported
    raise RuntimeError("run migrations through paywall.db.Database.migrate or `stagepass migrate`")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    # the catalog's full-text search objects (migration 0007) are not in the models
    include_name=lambda name, type_, parent: not is_search_object(name),
)
with context.begin_transaction():
    context.run_migrations()
