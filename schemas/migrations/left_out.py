"""What Alembic must leave alone when it compares the database with `schemas.tables`.

The full-text search objects of migration 0007 (`schemas.tables.SEARCH_TABLES` and the
rest) are not SQLAlchemy tables: comparisons and autogenerate skip them instead of
proposing to drop them. Used by the migration environment and by `newswatch.migrate`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from schemas.tables import SEARCH_COLUMNS, SEARCH_INDEXES, SEARCH_TABLES


def search_objects_left_out(dialect: str) -> dict[str, Callable[..., bool]]:
    """Alembic's ``include_name`` and ``include_object`` options that leave the full-text
    search objects of migration 0007 out of comparisons and autogenerate."""
    return {"include_name": _search_names_left_out(dialect),
            "include_object": _search_columns_left_out(dialect)}


def _search_names_left_out(dialect: str) -> Callable[..., bool]:
    """Alembic's ``include_name``: skip the full-text search tables and indexes of
    migration 0007, which are not SQLAlchemy tables (`schemas.tables.SEARCH_TABLES`)."""
    skipped = SEARCH_TABLES.get(dialect, set()) | SEARCH_INDEXES.get(dialect, set())

    def include(name: str | None, type_: str, _parent: Any) -> bool:
        return not (type_ in {"table", "index"} and name in skipped)

    return include


def _search_columns_left_out(dialect: str) -> Callable[..., bool]:
    """Alembic's ``include_object``: skip the generated search column (PostgreSQL)."""
    skipped = SEARCH_COLUMNS.get(dialect, set())

    def include(obj: Any, name: str | None, type_: str, reflected: bool, _other: Any
                ) -> bool:
        if type_ == "column" and reflected:
            return (obj.table.name, name) not in skipped
        return True

    return include
