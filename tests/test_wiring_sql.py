"""SQLAlchemy round-trips a row on SQLite and on PostgreSQL with the real tables."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from newswatch.db import make_engine
from schemas import tables


def test_article_row_round_trips(db_url: str) -> None:
    engine = make_engine(db_url)
    tables.metadata.create_all(engine)
    now = datetime(2021, 10, 21, 12, 0, tzinfo=UTC)
    row = {
        "id": "a" * 32, "url": "https://example.org/x", "title": "Taliban talks in Moscow",
        "summary": "Russia hosts talks", "content": "", "published": now,
        "fetched_at": now, "feed_id": "demo", "feed_name": "Demo", "language": "en",
        "authors": ["A. Writer"], "tags": ["world"], "enriched_at": now, "stored_at": now,
    }
    with engine.begin() as conn:
        conn.execute(tables.articles.insert(), row)
    with engine.connect() as conn:
        got = conn.execute(select(tables.articles)).mappings().one()
    engine.dispose()
    assert got["title"] == "Taliban talks in Moscow"
    assert got["authors"] == ["A. Writer"]
    assert got["published"].replace(tzinfo=got["published"].tzinfo or UTC) == now
