"""Analysts' verdicts on topic hits, in the ``feedback`` table.

A minimal version of the contract the topic-quality issue owns (its module replaces
this one at merge): every verdict is a new row, so the table is an audit trail, and the
newest row per article and topic is the verdict in force. The article's title and text
are copied into the row, so an export still trains after the article is pruned.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, select

from newswatch.db_errors import unavailable_as_retryable
from newswatch.errors import ConfigError
from schemas import tables

VERDICTS = ("relevant", "not_relevant")
F, A = tables.feedback.c, tables.articles.c


def record_feedback(engine: Engine, *, article_id: str, topic: str, verdict: str, who: str,
                    note: str = "") -> int:
    """Store one verdict ('relevant' or 'not_relevant'); returns the new row's id.

    Raises `ConfigError` for an unknown verdict or an article that is not stored.
    """
    if verdict not in VERDICTS:
        raise ConfigError(f"verdict must be one of {', '.join(VERDICTS)}, not {verdict!r}")
    with unavailable_as_retryable(), engine.begin() as conn:
        article = conn.execute(
            select(A.title, A.summary, A.content).where(A.id == article_id)).first()
        if article is None:
            raise ConfigError(f"no stored article {article_id!r}")
        text = "\n\n".join(part for part in (article.summary, article.content) if part)
        inserted = conn.execute(tables.feedback.insert().values(
            article_id=article_id, topic=topic, verdict=verdict, who=who, note=note,
            created_at=datetime.now(UTC), title=article.title, text=text,
        ).returning(F.id))
        return int(inserted.scalar_one())


def latest_verdicts(engine: Engine, article_id: str) -> dict[str, str]:
    """The verdict in force per topic for one article (the newest row wins)."""
    newest = (select(F.topic, func.max(F.id).label("id")).where(F.article_id == article_id)
              .group_by(F.topic).subquery())
    query = select(F.topic, F.verdict).join(newest, newest.c.id == F.id)
    with unavailable_as_retryable(), engine.connect() as conn:
        return {row.topic: row.verdict for row in conn.execute(query)}


def export_feedback(engine: Engine) -> Iterator[dict[str, Any]]:
    """Every verdict, oldest first, as plain data (JSON-ready)."""
    columns = (F.id, F.article_id, F.topic, F.verdict, F.who, F.note, F.created_at,
               F.title, F.text)
    with unavailable_as_retryable(), engine.connect() as conn:
        for row in conn.execute(select(*columns).order_by(F.id)):
            created = row.created_at
            if created.tzinfo is None:
                created = created.replace(tzinfo=UTC)
            yield {"id": row.id, "article_id": row.article_id, "topic": row.topic,
                   "verdict": row.verdict, "who": row.who, "note": row.note,
                   "created_at": created.isoformat(), "title": row.title, "text": row.text}
