"""The relevance probability of a topic hit is stored beside its rule score (SQLite and
PostgreSQL); a hit decided by rules alone stores NULL."""

from __future__ import annotations

from sqlalchemy import Engine, select

from consumers.store import store_batch
from schemas import tables
from tests.factories import make_enriched, make_hit


def test_the_probability_is_stored_beside_the_score(engine: Engine) -> None:
    judged = make_hit("recognition", score=0.62).model_copy(update={"probability": 0.91})
    rules_only = make_hit("is_threat", score=0.7)
    item = make_enriched(topics=[judged, rules_only])
    store_batch(engine, [item])
    th = tables.topic_hits.c
    with engine.connect() as connection:
        rows = {row.topic: row for row in connection.execute(
            select(th.topic, th.score, th.probability)
            .where(th.article_id == item.article.id))}
    assert (rows["recognition"].score, rows["recognition"].probability) == (0.62, 0.91)
    assert (rows["is_threat"].score, rows["is_threat"].probability) == (0.7, None)
