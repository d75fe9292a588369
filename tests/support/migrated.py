"""Databases at the code's schema for the tests, migrated once per session, then copied.

Running the twenty migrations costs ~0.15 s on SQLite and ~0.3 s on PostgreSQL (plus a
wait on the advisory lock every upgrade takes on the shared server), and hundreds of
tests start from a migrated, empty database. `MigratedTemplates` runs the real migrations
(`newswatch.migrate.upgrade`) once per session and per dialect and hands each test a copy:

- SQLite: the migrated file, checkpointed, is copied to the test's path;
- PostgreSQL: the statements the upgrade sent are recorded (schema names appear in none:
  the schema is the connection's search_path) and replayed in the test's empty schema, in
  one transaction. The advisory lock the upgrade takes is left out of the replay: the
  test's schema is its own.

A database that is not empty (a file that exists, a schema with tables) is migrated for
real instead, as is any dialect whose recording cannot be replayed safely.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, text
from sqlalchemy.engine import make_url

from newswatch.db import make_engine
from newswatch.migrate import upgrade


@dataclass(frozen=True)
class _Statement:
    sql: str
    parameters: Any
    many: bool


@dataclass
class MigratedTemplates:
    """Copies of a database the real migrations brought to head (see the module doc)."""

    folder: Path
    _sqlite: Path | None = None
    _postgres: list[_Statement] | None = field(default=None)
    _postgres_replayable: bool = True

    def engine(self, url: str) -> Engine:
        """An engine on ``url`` (an empty database) at the code's schema."""
        dialect = make_url(url).get_backend_name()
        if dialect == "sqlite":
            return self._sqlite_copy(url)
        if dialect == "postgresql":
            return self._postgres_copy(url)
        eng = make_engine(url)
        upgrade(eng)
        return eng

    def _sqlite_copy(self, url: str) -> Engine:
        target = make_url(url).database
        if not target or target == ":memory:" or Path(target).exists():
            eng = make_engine(url)
            upgrade(eng)
            return eng
        if self._sqlite is None:
            template = self.folder / "migrated.db"
            eng = make_engine(f"sqlite:///{template}")
            upgrade(eng)
            # WAL mode: fold the log into the file so the copy holds everything.
            with eng.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            eng.dispose()
            self._sqlite = template
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self._sqlite, target)
        return make_engine(url)

    def _postgres_copy(self, url: str) -> Engine:
        eng = make_engine(url)
        with eng.connect() as conn:
            schema = conn.execute(text("SELECT current_schema()")).scalar_one()
            tables = conn.execute(text("SELECT count(*) FROM pg_tables WHERE schemaname = "
                                       "current_schema()")).scalar_one()
        if tables or not self._postgres_replayable:
            upgrade(eng)
            return eng
        if self._postgres is None:
            # The first empty schema is migrated for real, and what it was sent recorded.
            self._postgres = _recorded_upgrade(eng)
            self._postgres_replayable = not any(
                schema in statement.sql or schema in repr(statement.parameters)
                for statement in self._postgres)
            return eng
        with eng.begin() as conn:
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            for statement in self._postgres:
                if statement.many:
                    cursor.executemany(statement.sql, statement.parameters)
                else:
                    # Exactly as SQLAlchemy called it: with parameters, psycopg reads
                    # ``%%`` as ``%``; without, as two.
                    if statement.parameters is None:
                        cursor.execute(statement.sql)
                    else:
                        cursor.execute(statement.sql, statement.parameters)
            cursor.close()
        return eng


def _recorded_upgrade(eng: Engine) -> list[_Statement]:
    """`upgrade` ``eng``, returning every statement it sent but the advisory lock."""
    sent: list[_Statement] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, context: Any,
               executemany: bool) -> None:
        if "pg_advisory_xact_lock" in statement:
            return
        if context is not None and context.no_parameters:
            parameters = None  # SQLAlchemy called cursor.execute(statement) alone
        sent.append(_Statement(statement, parameters, executemany))

    event.listen(eng, "before_cursor_execute", record)
    try:
        upgrade(eng)
    finally:
        event.remove(eng, "before_cursor_execute", record)
    return sent
