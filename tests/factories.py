"""Test-only builders of valid Kafka messages (Article, EnrichedArticle) with sane defaults.

Every builder takes keyword overrides, so a test states only what it is about:

    make_enriched(make_article(title="Taliban recognised"), topics=[make_hit("recognition", 0.9)])

Ids are derived from the URL the way producers derive them, and URLs are unique per call
unless given, so two calls never collide by accident. `realistic_batch` makes messages of
the size and shape the pipeline sees (a few KB of text, ~10 entities, 1-2 topic hits).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.ids import article_id
from schemas.messages import (
    Article,
    EnrichedArticle,
    EntityCount,
    EvidenceSpan,
    TopicHit,
)

BASE_TIME = datetime(2021, 10, 21, 12, 0, tzinfo=UTC)
TOPICS_VERSION = "topics-v1"
_counter = itertools.count(1)


def make_article(**overrides: Any) -> Article:
    """A valid Article; ``url`` defaults to a unique one and ``id`` follows from it."""
    n = next(_counter)
    url = overrides.pop("url", f"https://news.example.org/story/{n}")
    fields: dict[str, Any] = {
        "id": article_id(url) if url else article_id(None, f"guid-{n}"),
        "url": url,
        "guid": None,
        "title": f"Story {n}",
        "summary": f"Summary of story {n}.",
        "content": "",
        "published": BASE_TIME,
        "fetched_at": BASE_TIME + timedelta(minutes=5),
        "feed_id": "demo",
        "feed_name": "Demo feed",
        "language": "en",
        "revision": 0,
        "content_hash": f"hash-{n}",
    }
    fields.update(overrides)
    return Article(**fields)


def make_entity(name: str = "Taliban", label: str = "ORG", count: int = 1,
           texts: Sequence[str] = ()) -> EntityCount:
    return EntityCount(name=name, label=label, count=count, texts=tuple(texts) or (name,))


def make_hit(topic: str = "recognition", score: float = 0.8,
        phrases: Iterable[str] = ("recognise the Taliban",)) -> TopicHit:
    """A topic hit whose evidence quotes each phrase in a sentence of its own."""
    spans = []
    for phrase in phrases:
        sentence = f"Officials said they would {phrase} soon."
        start = sentence.index(phrase)
        spans.append(EvidenceSpan(phrase=phrase, start=start, end=start + len(phrase),
                                  sentence=sentence, rule=phrase))
    return TopicHit(topic=topic, score=score, evidence=tuple(spans))


def make_enriched(article: Article | None = None, *, entities: Sequence[EntityCount] | None = None,
             topics: Sequence[TopicHit] | None = None, topics_version: str = TOPICS_VERSION,
             enriched_at: datetime | None = None, **article_overrides: Any) -> EnrichedArticle:
    """An EnrichedArticle; ``article_overrides`` go to `make_article` when none is given."""
    base = article if article is not None else make_article(**article_overrides)
    return EnrichedArticle(
        article=base,
        entities=tuple(entities) if entities is not None else (make_entity(),),
        topic_hits=tuple(topics) if topics is not None else (make_hit(),),
        topics_version=topics_version,
        enriched_at=enriched_at or BASE_TIME + timedelta(minutes=6),
    )


_WORDS = (
    "government", "talks", "minister", "border", "police", "report", "security", "ministry",
    "officials", "recognition", "regime", "cartel", "seized", "shipment", "cocaine", "attack",
    "province", "capital", "statement", "election", "council", "week", "former", "leaders",
    "meeting", "agreement",
)
_LABELS = ("PERSON", "ORG", "GPE", "LOC", "NORP", "EVENT")
_TOPICS = ("is_threat", "drug_trafficking", "recognition")


def realistic_batch(count: int, *, seed: int = 0, vocabulary: int = 3000,
                    entities_per_article: int = 10, start: datetime = BASE_TIME,
                    spacing: timedelta = timedelta(seconds=7)) -> list[EnrichedArticle]:
    """``count`` messages shaped like production: ~3 KB text, entities from a shared
    vocabulary (so most already exist after a while), one or two topic hits each.

    Deterministic for a given ``seed``; URLs embed the seed so two seeds never share ids.
    """
    rng = random.Random(seed)
    names = [(f"Entity {i} {rng.choice(_WORDS).title()}", _LABELS[i % len(_LABELS)])
             for i in range(vocabulary)]
    out: list[EnrichedArticle] = []
    for i in range(count):
        url = f"https://bench.example.org/{seed}/{i}"
        published = start + spacing * i
        body = " ".join(rng.choice(_WORDS) for _ in range(450))
        picked = rng.sample(names, entities_per_article)
        topics = rng.sample(_TOPICS, rng.choice((1, 1, 2)))
        out.append(EnrichedArticle(
            article=Article(
                id=article_id(url), url=url, title=body[:80].title(), summary=body[:300],
                content=body, published=published, fetched_at=published + timedelta(minutes=2),
                feed_id=f"feed-{i % 12}", feed_name=f"Feed {i % 12}", language="en",
                authors=("A. Reporter",), tags=("world",), content_hash=f"h{seed}-{i}",
            ),
            entities=tuple(EntityCount(name=n, label=lb, count=rng.randint(1, 5), texts=(n,))
                           for n, lb in picked),
            topic_hits=tuple(make_hit(t, round(rng.uniform(0.5, 1.0), 3),
                                 phrases=(rng.choice(_WORDS), rng.choice(_WORDS)))
                             for t in topics),
            topics_version=TOPICS_VERSION,
            enriched_at=published + timedelta(minutes=3),
        ))
    return out
