"""Analysts' verdicts on topics (the ``feedback`` table), and their export as training data.

    row_id = record_feedback(engine, article_id=..., topic="recognition",
                             verdict="not_relevant", who="ana", note="awards story")
    for record in export_feedback(engine): ...      # labelled JSON-lines records
    latest_verdicts(engine, article_id)              # {"recognition": "not_relevant"}

Every verdict is kept (an audit trail); for an article and topic the newest one wins
(by time, then by row id). A row keeps the article's title and text as they were judged,
so an export still trains after the article was pruned. The text is what enrichment
reads after the title (summary and content as paragraphs), so a model trained on the
export sees what it will see in the stream.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select

from newswatch.db_errors import unavailable_as_retryable
from newswatch.errors import ArticleNotFoundError, FeedbackError
from schemas import tables
from schemas.topics_file import TOPIC_NAME

VERDICTS = ("relevant", "not_relevant")
MAX_WHO = 128
MAX_NOTE = 4000


def record_feedback(engine: Engine, *, article_id: str, topic: str, verdict: str, who: str,
                    note: str = "", clock: Callable[[], datetime] | None = None) -> int:
    """Record one verdict (``relevant`` or ``not_relevant``) on ``topic`` for an article.

    Copies the article's title and text into the row. Raises `ArticleNotFoundError` when
    the article is not stored, `FeedbackError` for an invalid verdict, topic name, empty
    ``who`` or an overlong note; returns the new row's id.
    """
    if verdict not in VERDICTS:
        raise FeedbackError(f"verdict {verdict!r} is not one of {', '.join(VERDICTS)}")
    if not re.match(TOPIC_NAME, topic) or len(topic) > 64:
        raise FeedbackError(f"topic {topic!r} is not a topic name (lower_snake_case)")
    who = who.strip()
    if not who or len(who) > MAX_WHO:
        raise FeedbackError(f"who must be a name of 1 to {MAX_WHO} characters")
    if len(note) > MAX_NOTE:
        raise FeedbackError(f"note is longer than {MAX_NOTE} characters")
    # Imported here: the enrichment module pulls in spaCy, which a web process recording
    # a verdict should not pay for at import time.
    from consumers.enrich.enrich import document_text

    a = tables.articles.c
    now = (clock or (lambda: datetime.now(UTC)))()
    with unavailable_as_retryable("recording feedback"), engine.begin() as connection:
        found = connection.execute(
            select(a.title, a.summary, a.content).where(a.id == article_id)).first()
        if found is None:
            raise ArticleNotFoundError(f"article {article_id!r} is not in the database")
        text = document_text("", found.summary, found.content).text
        result = connection.execute(insert(tables.feedback).values(
            article_id=article_id, topic=topic, verdict=verdict, who=who, note=note,
            created_at=now, title=found.title, text=text))
        key = result.inserted_primary_key
        assert key is not None  # an INSERT of one row always has one
        return int(key[0])


def latest_verdicts(engine: Engine, article_id: str) -> dict[str, str]:
    """Topic -> the newest verdict on it for one article (empty when none)."""
    f = tables.feedback.c
    with unavailable_as_retryable("reading feedback"), engine.connect() as connection:
        rows = connection.execute(
            select(f.topic, f.verdict).where(f.article_id == article_id)
            .order_by(f.created_at, f.id)).all()
    return {row.topic: row.verdict for row in rows}


def export_feedback(engine: Engine) -> Iterator[dict[str, Any]]:
    """One record per judged article, in the labelled JSON-lines format of
    tests/data/labelled (``id``, ``title``, ``text``, ``labels``), plus ``judged`` (the
    topics its labels speak for: a verdict on one topic says nothing of the others),
    ``why`` (the notes) and ``source: feedback``. The newest verdict per topic wins.

    Rows are read in article order, so memory holds one article's verdicts at a time.
    """
    f = tables.feedback.c
    query = select(f.article_id, f.topic, f.verdict, f.who, f.note, f.created_at,
                   f.title, f.text).order_by(f.article_id, f.created_at, f.id)
    with unavailable_as_retryable("exporting feedback"), engine.connect() as connection:
        current: list[Any] = []
        for row in connection.execution_options(yield_per=500).execute(query):
            if current and row.article_id != current[0].article_id:
                yield _record(current)
                current = []
            current.append(row)
        if current:
            yield _record(current)


def _record(rows: list[Any]) -> dict[str, Any]:
    """The labelled record of one article's verdicts (``rows`` oldest first)."""
    newest: dict[str, Any] = {}
    for row in rows:
        newest[row.topic] = row
    last = rows[-1]
    return {
        "id": last.article_id,
        "title": last.title,
        "text": last.text,
        "labels": sorted(topic for topic, row in newest.items() if row.verdict == "relevant"),
        "judged": sorted(newest),
        "why": "; ".join(f"{topic}: {row.note}" for topic, row in sorted(newest.items())
                         if row.note),
        "source": "feedback",
        "verdicts": [
            {"topic": topic, "verdict": row.verdict, "who": row.who,
             "at": _iso(row.created_at)}
            for topic, row in sorted(newest.items())
        ],
    }


def _iso(moment: datetime) -> str:
    return (moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment).isoformat()
