"""Held ``alert_articles`` rows written in bulk through the driver, and read by article.

With 10,000 selective rules an evaluation of 1,000 hits holds ~85,000 (rule, article)
pairs. Through SQLAlchemy's executemany each row's five parameters went through
per-row bind processing (as long as SQLite's own insert loop); here the rows are made
as tuples, each distinct timestamp is converted once, and the driver gets them in one
call: SQLite's executemany (its loop runs in C), PostgreSQL one ``INSERT ... SELECT FROM
unnest`` per 20,000 rows (arrays travel in binary, one statement to plan). Both run on
the caller's connection, inside its transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from newswatch.chunks import chunks
from schemas import tables

T_ARTICLES = tables.alert_articles
ROWS_PER_STATEMENT = 20_000
# Articles per IN list: far below SQLite's 32,766 and PostgreSQL's 65,535 parameters.
ARTICLES_PER_QUERY = 500

POSTGRES_INSERT = (
    "INSERT INTO alert_articles (rule, article_id, group_key, state, alert_id, published, "
    "decided_at) SELECT r, a, g, 'held', NULL, p, %s FROM unnest("
    "%s::text[], %s::text[], %s::text[], %s::timestamptz[]) AS t(r, a, g, p)")
SQLITE_INSERT = (
    "INSERT INTO alert_articles (rule, article_id, group_key, state, alert_id, published, "
    "decided_at) VALUES (?, ?, ?, 'held', NULL, ?, ?)")


def insert_held(conn: Connection, rows: Sequence[tuple[str, str, str, datetime]],
                decided_at: datetime) -> None:
    """Insert ``rows`` of (rule, article id, group key, published) as held."""
    if not rows:
        return
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        if conn.dialect.name == "postgresql":
            for part in chunks(rows, ROWS_PER_STATEMENT):
                rules, ids, keys, published = zip(*part, strict=True)
                cursor.execute(POSTGRES_INSERT, (decided_at, list(rules), list(ids), list(keys),
                                           list(published)))
            return
        stamp = _datetime_processor(conn)
        decided = stamp(decided_at)
        converted: dict[datetime, Any] = {}

        def when(value: datetime) -> Any:
            out = converted.get(value)
            if out is None:
                out = converted[value] = stamp(value)
            return out

        cursor.executemany(
            SQLITE_INSERT,
            [(rule, aid, key, when(published), decided) for rule, aid, key, published in rows])
    finally:
        cursor.close()


def rows_of_articles(conn: Connection, article_ids: Sequence[str]) -> list[tuple[str, str]]:
    """Every (rule, article id) ``alert_articles`` holds for ``article_ids`` (by the
    article index: one query per 500 articles, whatever the number of rules)."""
    found: list[tuple[str, str]] = []
    for part in chunks(article_ids, ARTICLES_PER_QUERY):
        found.extend((row.rule, row.article_id) for row in conn.execute(
            select(T_ARTICLES.c.rule, T_ARTICLES.c.article_id)
            .where(T_ARTICLES.c.article_id.in_(part))))
    return found


def _datetime_processor(conn: Connection) -> Any:
    """How SQLAlchemy stores a ``published`` value on this dialect (SQLite: a string)."""
    column_type = T_ARTICLES.c.published.type
    process = column_type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    return process if process is not None else (lambda value: value)
