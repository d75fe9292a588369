"""INSERT ... ON CONFLICT for the two databases Newswatch runs on, chosen in one place.

SQLAlchemy has no dialect-neutral ON CONFLICT: SQLite and PostgreSQL each have their own
``insert`` construct, with the same ``on_conflict_do_nothing`` / ``on_conflict_do_update``
methods. Every idempotent write in the project goes through `insert_for` (the construct
for a connection's dialect) or the two shorthands built on it, so a third database would
be added here and nowhere else.

Contract: `insert_for` raises `NotImplementedError` for any dialect other than
``sqlite`` and ``postgresql``, naming it, instead of emitting SQL that would fail later.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table
from sqlalchemy.dialects import postgresql, sqlite

Insert = postgresql.Insert | sqlite.Insert
# Reads the proposed row (``excluded``) and says whether the existing one is overwritten.
UpdateWhen = Callable[[Any], ColumnElement[bool]]


def insert_for(dialect: str | Connection, table: Table) -> Insert:
    """The INSERT of ``dialect`` (a name, or a connection's) that knows ON CONFLICT."""
    name = dialect if isinstance(dialect, str) else dialect.dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"no upsert for the {name} dialect")


def insert_ignoring(dialect: str | Connection, table: Table,
                    key: Sequence[str] | None = None) -> Any:
    """INSERT that leaves an existing row alone: ON CONFLICT (``key``) DO NOTHING.

    Without ``key``, a conflict on any unique constraint is ignored.
    """
    return insert_for(dialect, table).on_conflict_do_nothing(
        index_elements=list(key) if key is not None else None)


def insert_or_update(dialect: str | Connection, table: Table, key: Sequence[str],
                     update: Iterable[str], when: UpdateWhen | None = None) -> Any:
    """INSERT that, on a conflict on ``key``, overwrites the ``update`` columns of the
    existing row with the proposed row's values; only where ``when(excluded)`` holds,
    when given (e.g. "unless the stored row is newer")."""
    insert = insert_for(dialect, table)
    excluded = insert.excluded
    return insert.on_conflict_do_update(
        index_elements=list(key),
        set_={name: excluded[name] for name in update},
        where=when(excluded) if when is not None else None)
