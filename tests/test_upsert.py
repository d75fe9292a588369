"""newswatch.upsert on SQLite and PostgreSQL: ignore, overwrite, conditional overwrite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, select
from sqlalchemy.exc import IntegrityError

from newswatch.db import make_engine
from newswatch.upsert import insert_for, insert_ignoring, insert_or_update

rows = Table("upsert_rows", MetaData(),
             Column("id", Integer, primary_key=True),
             Column("name", String(32), nullable=False, unique=True),
             Column("note", String(32), nullable=False),
             Column("revision", Integer, nullable=False))


@pytest.fixture
def table_engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    rows.metadata.create_all(engine)
    yield engine
    engine.dispose()


def stored(engine: Engine) -> list[tuple[int, str, str, int]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(select(rows).order_by(rows.c.id))]


def test_insert_ignoring_leaves_the_existing_row(table_engine: Engine) -> None:
    with table_engine.begin() as conn:
        conn.execute(insert_ignoring(conn, rows), [{"id": 1, "name": "a", "note": "first",
                                                    "revision": 0}])
        conn.execute(insert_ignoring(conn, rows),
                     [{"id": 1, "name": "b", "note": "second", "revision": 1},
                      {"id": 2, "name": "c", "note": "new", "revision": 0}])
    assert stored(table_engine) == [(1, "a", "first", 0), (2, "c", "new", 0)]


def test_insert_ignoring_without_key_ignores_any_unique_conflict(table_engine: Engine) -> None:
    with table_engine.begin() as conn:
        conn.execute(insert_ignoring(conn, rows).values(id=1, name="a", note="x", revision=0))
        # Another id, the same unique name: still ignored, as ON CONFLICT DO NOTHING does.
        conn.execute(insert_ignoring(conn, rows).values(id=2, name="a", note="y", revision=0))
    assert stored(table_engine) == [(1, "a", "x", 0)]


def test_insert_ignoring_with_key_ignores_only_that_conflict(table_engine: Engine) -> None:
    with table_engine.begin() as conn:
        conn.execute(insert_ignoring(conn, rows, key=["id"]).values(
            id=1, name="a", note="x", revision=0))
    with pytest.raises(IntegrityError), table_engine.begin() as conn:
        conn.execute(insert_ignoring(conn, rows, key=["id"]).values(
            id=2, name="a", note="y", revision=0))
    assert stored(table_engine) == [(1, "a", "x", 0)]


def test_insert_or_update_overwrites_only_the_named_columns(table_engine: Engine) -> None:
    with table_engine.begin() as conn:
        conn.execute(insert_or_update(conn, rows, key=["id"], update=["note"]),
                     [{"id": 1, "name": "a", "note": "first", "revision": 0}])
        conn.execute(insert_or_update(conn, rows, key=["id"], update=["note"]),
                     [{"id": 1, "name": "a", "note": "second", "revision": 5}])
    assert stored(table_engine) == [(1, "a", "second", 0)]


def test_insert_or_update_when_keeps_a_newer_row(table_engine: Engine) -> None:
    def upsert(engine: Engine, note: str, revision: int) -> None:
        with engine.begin() as conn:
            conn.execute(insert_or_update(
                conn, rows, key=["id"], update=["note", "revision"],
                when=lambda proposed: rows.c.revision <= proposed.revision),
                [{"id": 1, "name": "a", "note": note, "revision": revision}])

    upsert(table_engine, "r2", 2)
    upsert(table_engine, "r1 arriving late", 1)
    assert stored(table_engine) == [(1, "a", "r2", 2)]
    upsert(table_engine, "r3", 3)
    assert stored(table_engine) == [(1, "a", "r3", 3)]


def test_the_dialect_is_read_from_a_connection_or_a_name(table_engine: Engine) -> None:
    with table_engine.connect() as conn:
        by_connection = insert_for(conn, rows)
    by_name = insert_for(table_engine.dialect.name, rows)
    assert type(by_connection) is type(by_name)


def test_another_dialect_is_refused_by_name() -> None:
    with pytest.raises(NotImplementedError, match="mysql"):
        insert_for("mysql", rows)
    with pytest.raises(NotImplementedError, match="oracle"):
        insert_ignoring("oracle", rows)
