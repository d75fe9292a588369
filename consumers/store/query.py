"""Looking articles up: recent ones by topic, entity and feed, with their topic scores.

Serves ``newswatch articles``; each filter uses an index of `schemas.tables` (topic hits
by topic and time, article_entities by entity and time, articles by feed and time).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Select, exists, func, or_, select

from newswatch.db_errors import unavailable_as_retryable
from newswatch.utc import as_utc
from schemas import tables


@dataclass(frozen=True)
class TopicScore:
    topic: str
    score: float
    evidence: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class ArticleMatch:
    """An article found, with every topic hit it has (the one asked for first)."""

    id: str
    title: str
    url: str | None
    feed_id: str
    feed_name: str
    published: datetime
    topics: tuple[TopicScore, ...]
    language: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "title": self.title, "url": self.url, "feed_id": self.feed_id,
            "feed_name": self.feed_name, "published": self.published.isoformat(),
            "language": self.language,
            "topics": [{"topic": t.topic, "score": t.score, "evidence": t.evidence}
                       for t in self.topics],
        }





def recent_articles(engine: Engine, *, since: datetime, topic: str | None = None,
                    entity: str | None = None, feed: str | None = None,
                    language: str | None = None, limit: int = 50) -> list[ArticleMatch]:
    """Articles published at or after ``since``, newest first, at most ``limit``.

    ``topic`` keeps articles with a hit on that topic; ``entity`` those naming an entity
    of that name (any label, case-insensitive); ``feed`` those of that feed id;
    ``language`` those in that language ("pt" also finds "pt-BR", case-insensitive), as
    enrichment decided it.
    """
    a = tables.articles.c
    query: Select[Any] = select(a.id, a.title, a.url, a.feed_id, a.feed_name, a.published,
                                a.language)
    if topic is not None:
        # Driven from topic hits by (topic, published), the rule queries' index.
        th = tables.topic_hits.c
        query = query.join(tables.topic_hits, th.article_id == a.id).where(
            th.topic == topic, th.published >= since)
    query = query.where(a.published >= since)
    if feed is not None:
        query = query.where(a.feed_id == feed)
    if language is not None:
        code = language.lower()
        query = query.where(or_(func.lower(a.language) == code,
                                func.lower(a.language).like(code + "-%")))
    if entity is not None:
        e, ae = tables.entities.c, tables.article_entities.c
        entity_ids = select(e.id).where(func.lower(e.name) == entity.lower())
        query = query.where(exists().where(ae.article_id == a.id,
                                           ae.entity_id.in_(entity_ids),
                                           ae.published >= since))
    query = query.order_by(a.published.desc(), a.id).limit(limit)
    with unavailable_as_retryable(), engine.connect() as connection:
        rows = connection.execute(query).all()
        ids = [row.id for row in rows]
        hits: dict[str, list[TopicScore]] = {article_id: [] for article_id in ids}
        if ids:
            th = tables.topic_hits.c
            for hit in connection.execute(
                select(th.article_id, th.topic, th.score, th.evidence)
                .where(th.article_id.in_(ids)).order_by(th.score.desc(), th.topic)
            ):
                hits[hit.article_id].append(TopicScore(hit.topic, hit.score, hit.evidence))
    return [
        ArticleMatch(
            id=row.id, title=row.title, url=row.url, feed_id=row.feed_id,
            feed_name=row.feed_name, published=as_utc(row.published), language=row.language,
            topics=tuple(sorted(hits[row.id], key=lambda t: (t.topic != topic, -t.score))),
        )
        for row in rows
    ]
