"""Alembic migrations build exactly schemas.tables, and daemons refuse a database behind."""

from __future__ import annotations

from importlib.resources import files

import pytest
from sqlalchemy import Engine, inspect, text

from newswatch import migrate
from newswatch.daemon import StopFlag
from newswatch.db import make_engine
from newswatch.errors import SchemaVersionError, ServiceUnavailableError
from schemas import tables


def test_migrations_produce_exactly_the_declared_tables(engine: Engine) -> None:
    # What `alembic check` does: compare the migrated database with the metadata.
    assert migrate.schema_differences(engine) == []
    # The full-text search tables (SQLite's FTS5 table and its shadow tables) are the only
    # ones that are not SQLAlchemy tables; the comparison leaves them out by name.
    search = tables.SEARCH_TABLES.get(engine.dialect.name, set())
    assert set(inspect(engine).get_table_names()) == set(tables.metadata.tables) | {
        "alembic_version"} | search


def test_the_full_text_search_objects_exist_and_follow_the_articles(engine: Engine) -> None:
    # What the comparison leaves out is checked here instead: it exists and it searches.
    dialect = engine.dialect.name
    inspector = inspect(engine)
    if dialect == "postgresql":
        columns = {c["name"] for c in inspector.get_columns("articles")}
        assert {name for _, name in tables.SEARCH_COLUMNS["postgresql"]} <= columns
        indexes = {i["name"] for i in inspector.get_indexes("articles")}
        assert tables.SEARCH_INDEXES["postgresql"] <= indexes
        find = text("SELECT id FROM articles WHERE search_document @@ "
                    "websearch_to_tsquery('english', :q)")
    else:
        assert tables.SEARCH_TABLES["sqlite"] <= set(inspector.get_table_names())
        find = text("SELECT article_id FROM articles_fts WHERE articles_fts MATCH :q")
    row = {"id": "a1", "title": "Taliban seek recognition", "summary": "", "content": "Talks.",
           "published": "2021-10-21 12:00:00", "fetched_at": "2021-10-21 12:00:00",
           "feed_id": "f", "authors": "[]", "tags": "[]",
           "enriched_at": "2021-10-21 12:00:00", "stored_at": "2021-10-21 12:00:00"}
    insert = text(f"INSERT INTO articles ({', '.join(row)}) "
                  f"VALUES ({', '.join(':' + k for k in row)})")
    with engine.begin() as conn:
        conn.execute(insert, row)
        assert [r[0] for r in conn.execute(find, {"q": "talk"})] == ["a1"]
        conn.execute(text("UPDATE articles SET title = 'Moscow talks' WHERE id = 'a1'"))
        assert list(conn.execute(find, {"q": "recognition"})) == []
        assert [r[0] for r in conn.execute(find, {"q": "moscow"})] == ["a1"]
        conn.execute(text("DELETE FROM articles WHERE id = 'a1'"))
        assert list(conn.execute(find, {"q": "moscow"})) == []


def test_only_the_search_objects_are_left_out_of_the_comparison(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE articles_fts_extra (id INTEGER PRIMARY KEY)"))
        conn.execute(text("ALTER TABLE articles ADD COLUMN search_extra TEXT"))
    differences = [str(d) for d in migrate.schema_differences(engine)]
    assert any("articles_fts_extra" in d for d in differences)
    assert any("search_extra" in d for d in differences)


def test_a_table_missing_an_index_is_reported(engine: Engine) -> None:
    # The comparison above is only worth something if it notices a difference.
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_topic_hits_topic_published"))
    differences = migrate.schema_differences(engine)
    assert any("ix_topic_hits_topic_published" in str(d) for d in differences)


def test_upgrade_is_idempotent_and_downgrade_returns_to_empty(engine: Engine) -> None:
    head = migrate.head_revision()
    assert migrate.upgrade(engine) == head

    assert migrate.downgrade(engine, "base") is None
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    assert migrate.upgrade(engine) == head
    assert migrate.schema_differences(engine) == []


def test_check_schema_passes_at_head(engine: Engine) -> None:
    assert migrate.check_schema(engine) == migrate.head_revision()


def test_check_schema_names_the_fix_when_never_migrated(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with pytest.raises(SchemaVersionError, match="run newswatch db upgrade"):
            migrate.check_schema(engine)
    finally:
        engine.dispose()


def test_check_schema_fails_when_the_database_is_behind(db_url: str) -> None:
    head = migrate.head_revision()
    previous = migrate.script_directory().get_revision(head).down_revision
    assert isinstance(previous, str), "needs at least two revisions"
    engine = make_engine(db_url)
    try:
        migrate.upgrade(engine, previous)
        with pytest.raises(SchemaVersionError) as failure:
            migrate.check_schema(engine)
        assert str(failure.value) == (
            f"database is at {previous}, code needs {head}: run newswatch db upgrade")
        migrate.upgrade(engine)
        assert migrate.check_schema(engine) == head
    finally:
        engine.dispose()


def test_check_schema_fails_when_newer_code_migrated_the_database(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(SchemaVersionError, match="9999, which this code does not know"):
        migrate.check_schema(engine)


def test_an_unreachable_database_is_retryable_not_a_schema_error() -> None:
    engine = make_engine("postgresql+psycopg://nobody:x@127.0.0.1:1/none",
                         connect_args={"connect_timeout": 2})
    try:
        with pytest.raises(ServiceUnavailableError):
            migrate.check_schema(engine)
    finally:
        engine.dispose()


def test_wait_for_schema_raises_at_once_for_a_database_behind(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with pytest.raises(SchemaVersionError):
            migrate.wait_for_schema(engine, StopFlag())
    finally:
        engine.dispose()


def test_the_store_daemon_refuses_a_database_behind(db_url: str) -> None:
    from consumers.store.daemon import run_store
    from newswatch.settings import Settings

    engine = make_engine(db_url)
    try:
        with pytest.raises(SchemaVersionError, match="run newswatch db upgrade"):
            # Fails before it ever connects to Kafka: no broker is needed.
            run_store(Settings(kafka_bootstrap_servers="127.0.0.1:1"), StopFlag(),
                      engine=engine)
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


def test_migrations_ship_inside_the_package() -> None:
    # Alembic finds them as package data ("schemas:migrations"), not by a source path.
    folder = files("schemas") / "migrations"
    assert (folder / "env.py").is_file()
    assert (folder / "script.py.mako").is_file()
    assert any(entry.name.startswith("0001_") for entry in (folder / "versions").iterdir())
    assert migrate.SCRIPT_LOCATION == "schemas:migrations"


def test_db_revision_writes_nothing_while_tables_and_migrations_agree() -> None:
    # `newswatch db revision -m ...` (for developers) autogenerates from the difference.
    assert migrate.new_revision("nothing changed") is None
