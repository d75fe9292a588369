"""Schema migrations: bring a database to the schema this code needs, and check it is there.

The migrations live in `schemas/migrations` (package data, so they ship with the
package). Daemons call `check_schema` at start and refuse to run on a database that is
behind or ahead of the code, instead of creating tables on the side; ``newswatch db
upgrade`` calls `upgrade`.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from newswatch.daemon import StopFlag
from newswatch.db import make_engine
from newswatch.db_errors import unavailable_as_retryable
from newswatch.errors import ConfigError, SchemaVersionError
from newswatch.retry import RetryPolicy, retry_call
from schemas.migrations.left_out import search_objects_left_out
from schemas.tables import metadata

log = logging.getLogger(__name__)
# Alembic announces its context ("Context impl SQLiteImpl.") at INFO on every schema
# check, that is at every daemon start; our own log line says what a migration changed.
logging.getLogger("alembic").setLevel(logging.WARNING)

SCRIPT_LOCATION = "schemas:migrations"
# Any constant will do: two processes upgrading one PostgreSQL database at once take
# turns on this advisory lock instead of both creating the same tables.
_PG_UPGRADE_LOCK = 7_310_575_243


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration for our migrations; ``connection`` is the one to migrate."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The revision this code needs: the newest migration."""
    head = script_directory().get_current_head()
    if head is None:
        raise SchemaVersionError("no migrations found in schemas/migrations/versions")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at; None when it was never migrated."""
    with unavailable_as_retryable(), engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Migrate the database to ``revision`` in one transaction; return where it is now.

    Idempotent: a database already there is left alone. On PostgreSQL concurrent upgrades
    are serialised, and a failed migration leaves the database where it was.
    """
    with unavailable_as_retryable(), engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                               {"key": _PG_UPGRADE_LOCK})
        before = MigrationContext.configure(connection).get_current_revision()
        command.upgrade(alembic_config(connection), revision)
        after = MigrationContext.configure(connection).get_current_revision()
    if before != after:
        log.info("database migrated", extra={"from_revision": before, "to_revision": after})
    return after


def downgrade(engine: Engine, revision: str) -> str | None:
    """Migrate the database back to ``revision`` (``base`` drops every table)."""
    with unavailable_as_retryable(), engine.begin() as connection:
        command.downgrade(alembic_config(connection), revision)
        return MigrationContext.configure(connection).get_current_revision()


def check_schema(engine: Engine) -> str:
    """Return the database's revision when it is the one this code needs.

    Raises `SchemaVersionError` naming both revisions and the fix when the database is
    behind (or was never migrated, or is at a revision this code does not know, which
    means newer code migrated it). Raises `ServiceUnavailableError` when the database
    cannot be reached, so a caller may wait for it.
    """
    head = head_revision()
    current = current_revision(engine)
    if current == head:
        return head
    if current is None:
        raise SchemaVersionError(
            f"database has no Newswatch schema, code needs {head}: run newswatch db upgrade"
        )
    known = {script.revision for script in script_directory().walk_revisions()}
    if current not in known:
        raise SchemaVersionError(
            f"database is at {current}, which this code does not know (newer code migrated "
            f"it?); code needs {head}: run the newer code or downgrade the database"
        )
    raise SchemaVersionError(
        f"database is at {current}, code needs {head}: run newswatch db upgrade"
    )


def wait_for_schema(engine: Engine, stop: StopFlag, backoff: RetryPolicy | None = None
                    ) -> str | None:
    """`check_schema`, waiting with backoff while the database cannot be reached.

    For daemons at start: a database that is still starting is waited for (logged once,
    `newswatch.retry`), a database at the wrong revision raises `SchemaVersionError` at
    once. Returns None when ``stop`` was set while waiting.
    """
    if stop.stopping:
        return None
    return retry_call(lambda: check_schema(engine), backoff or RetryPolicy(),
                      "database schema check", wait=stop.wait, logger=log)


def schema_differences(engine: Engine) -> list[Any]:
    """What `schemas.tables` has that the database does not, or the other way round.

    Empty when the migrations produce exactly the tables the code declares; this is what
    ``alembic check`` compares (tables, columns, types, nullability, indexes, constraints).
    """
    with engine.connect() as connection:
        # Server defaults read back reliably from PostgreSQL only; SQLite reports ''
        # defaults in another spelling, which would be noise.
        dialect = connection.dialect.name
        options = {"compare_type": True,
                   "compare_server_default": dialect == "postgresql",
                   **search_objects_left_out(dialect)}
        context = MigrationContext.configure(connection, opts=options)
        return list(compare_metadata(context, metadata))


def new_revision(message: str) -> Path | None:
    """Write a migration for what `schemas.tables` changed since the newest revision.

    For developers: it migrates a scratch SQLite database to head, compares it with the
    tables and writes ``versions/NNNN_<message>.py`` for a person to review. Returns None
    when there is nothing to migrate. The operations are batch operations, which run on
    SQLite and PostgreSQL alike.
    """
    scripts = script_directory()
    with tempfile.TemporaryDirectory() as scratch:
        engine = make_engine(f"sqlite:///{Path(scratch) / 'scratch.db'}")
        try:
            upgrade(engine)
            if not schema_differences(engine):
                return None
            rev_id = f"{sum(1 for _ in scripts.walk_revisions()) + 1:04d}"
            with engine.begin() as connection:
                written = command.revision(alembic_config(connection), message=message,
                                           autogenerate=True, rev_id=rev_id)
        finally:
            engine.dispose()
    if written is None or isinstance(written, list):
        raise ConfigError("alembic wrote no single revision file")
    return Path(written.path)
