"""Alembic environment for `schemas.tables.metadata`, on SQLite and on PostgreSQL.

`newswatch.migrate` runs migrations on a connection it opened and passes it in
``config.attributes["connection"]``; that connection's transaction is the migration's, so
the caller decides when it commits. Without one, the URL comes from the ``sqlalchemy.url``
option (which the caller sets from the settings). This module imports nothing from above
`schemas/`: the caller supplies the connection or the URL.

SQLite cannot alter most of a table in place, so migrations run in batch mode there
(copy, alter, swap); the same batch operations run as plain ALTERs on PostgreSQL.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from schemas.migrations.left_out import search_objects_left_out
from schemas.tables import metadata


def _database_url() -> str:
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database: run migrations through newswatch.migrate (newswatch "
                           "db upgrade), which passes the connection or sqlalchemy.url")
    return url


def _run(connection: Connection) -> None:
    # The full-text search objects are not SQLAlchemy tables: never drop them.
    left_out = search_objects_left_out(connection.dialect.name)
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=left_out["include_name"],
        include_object=left_out["include_object"],
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    """Print the SQL instead of running it (``--sql``), for a DBA to review and apply."""
    url = _database_url()
    context.configure(
        url=url,
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = context.config.attributes.get("connection")
    if isinstance(connection, Connection):
        _run(connection)
        return
    engine = create_engine(_database_url())
    try:
        with engine.connect() as own_connection:
            _run(own_connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
