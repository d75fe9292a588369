"""Articles as the alert path sees them, their group in a rule, and the alert payload.

`load_articles` reads articles with their topic hits (and evidence) and entities in a
few statements. `group_of` says which group of a rule an article falls in. `build_payload`
makes the `schemas.alert_payload.AlertPayload` that is stored with the alert, so what is
sent never depends on rows that may change or be pruned later.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, select

from consumers.alert.compile import NO_VALUE
from newswatch.chunks import chunks
from newswatch.utc import as_utc
from schemas import tables
from schemas.alert_payload import (
    AlertPayload,
    ArticleItem,
    EvidenceItem,
    RuleItem,
    StoryItem,
    TopicItem,
)
from schemas.rules_file import Rule

# Bounds that keep a message readable and a payload small.
MAX_ARTICLES = 50
MAX_EVIDENCE_PER_TOPIC = 3
MAX_SENTENCE_CHARS = 600
MAX_GROUP_KEY = 255
CHUNK = 500
A, H, AE, E = tables.articles, tables.topic_hits, tables.article_entities, tables.entities
S = tables.stories

T = TypeVar("T")





@dataclass(frozen=True)
class HitView:
    topic: str
    score: float
    evidence: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True)
class ArticleView:
    """One article with its hits (best first) and entities (most named first)."""

    id: str
    title: str
    url: str | None
    feed_id: str
    feed_name: str
    published: datetime
    language: str | None
    hits: tuple[HitView, ...] = ()
    story_id: str | None = None
    entities: tuple[tuple[str, str, int], ...] = field(default=())





def load_articles(conn: Connection, ids: Iterable[str]) -> dict[str, ArticleView]:
    """Articles by id with hits and entities; ids that no longer exist are left out."""
    wanted = sorted(set(ids))
    rows: dict[str, Any] = {}
    hits: dict[str, list[HitView]] = {}
    ents: dict[str, list[tuple[str, str, int]]] = {}
    # Fetched with `.all()` (the driver's fetchall) and unpacked as tuples, as in
    # `rule_index.load_facts`: row-by-row iteration was most of this function's time.
    for part in chunks(wanted, CHUNK):
        for row in conn.execute(
            select(A.c.id, A.c.title, A.c.url, A.c.feed_id, A.c.feed_name, A.c.published,
                   A.c.language, A.c.story_id).where(A.c.id.in_(part))
        ).all():
            rows[row.id] = row
        for aid, topic, score, evidence in conn.execute(
            select(H.c.article_id, H.c.topic, H.c.score, H.c.evidence)
            .where(H.c.article_id.in_(part))
        ).all():
            hits.setdefault(aid, []).append(HitView(topic, float(score), tuple(evidence or ())))
        for aid, name, label, mentions in conn.execute(
            select(AE.c.article_id, E.c.name, E.c.label, AE.c.count.label("mentions"))
            .select_from(AE.join(E, AE.c.entity_id == E.c.id))
            .where(AE.c.article_id.in_(part))
        ).all():
            ents.setdefault(aid, []).append((name, label, int(mentions)))
    return {
        article_id: ArticleView(
            id=article_id, title=row.title or "", url=row.url, feed_id=row.feed_id,
            feed_name=row.feed_name or row.feed_id, published=as_utc(row.published),
            language=row.language, story_id=row.story_id,
            hits=tuple(sorted(hits.get(article_id, []), key=lambda h: (-h.score, h.topic))),
            entities=tuple(sorted(ents.get(article_id, []), key=lambda e: (-e[2], e[0]))),
        )
        for article_id, row in rows.items()
    }


def group_of(rule: Rule, view: ArticleView) -> tuple[str, dict[str, str]]:
    """The group key and labels of ``view`` in ``rule``; one article is in one group.

    ``topic`` is the article's best-scoring topic among the rule's (any topic when the
    rule names none); ``entity:LABEL`` is its most-named entity with that label; ``-``
    stands for none.
    """
    labels: dict[str, str] = {}
    rule_topics = rule.match.topics.names() if rule.match.topics is not None else set()
    for key in rule.group_by:
        if key == "rule":
            labels["rule"] = rule.name
        elif key == "feed":
            labels["feed"] = view.feed_id
        elif key == "story":
            # Not placed yet (the stories stage runs beside the store): the article stands
            # for the story it would start, whose id is its own.
            labels["story"] = view.story_id or view.id
        elif key == "topic":
            best = next((h.topic for h in view.hits
                         if (not rule_topics or h.topic in rule_topics)
                         and h.score >= rule.match.min_score), NO_VALUE)
            labels["topic"] = best
        elif key.startswith("entity:"):
            label = key.removeprefix("entity:")
            labels[key] = next((name for name, lab, _ in view.entities if lab == label),
                               NO_VALUE)
    return group_key(labels), labels


def group_key(labels: Mapping[str, str]) -> str:
    """``topic=is_threat|feed=bbc``; long keys end in a hash so they fit the column."""
    key = "|".join(f"{k}={v}" for k, v in labels.items()) or "rule"
    if len(key) > MAX_GROUP_KEY:
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
        key = key[:MAX_GROUP_KEY - 17] + "#" + digest
    return key


def _evidence(hit: HitView) -> list[EvidenceItem]:
    seen: set[str] = set()
    items: list[EvidenceItem] = []
    for span in hit.evidence:
        sentence = str(span.get("sentence", "")).strip()[:MAX_SENTENCE_CHARS]
        if sentence in seen:
            continue
        seen.add(sentence)
        items.append(EvidenceItem(phrase=str(span.get("phrase", "")), sentence=sentence))
        if len(items) >= MAX_EVIDENCE_PER_TOPIC:
            break
    return items


# Topic items already made in one evaluation, by (article id, the rule's topics): an
# article matching 200 rules is in up to 200 payloads, and its items are the same in each.
TopicMemo = dict[tuple[str, frozenset[str]], list[TopicItem]]


def topic_items(view: ArticleView, first: frozenset[str] = frozenset(),
                memo: TopicMemo | None = None) -> list[TopicItem]:
    """The article's topics as sent: those in ``first`` (the rule's) lead, then by score."""
    key = (view.id, first)
    if memo is not None and key in memo:
        return memo[key]
    hits = sorted(view.hits, key=lambda h: (h.topic not in first, -h.score, h.topic))
    items = [TopicItem(topic=h.topic, score=round(min(max(h.score, 0.0), 1.0), 4),
                       evidence=_evidence(h)) for h in hits]
    if memo is not None:
        memo[key] = items
    return items


def article_item(view: ArticleView, labels: Mapping[str, str],
                 first: frozenset[str] = frozenset(),
                 memo: TopicMemo | None = None) -> ArticleItem:
    """The article as sent; the topics in ``first`` (the rule's) lead, then by score."""
    return ArticleItem(
        id=view.id, title=view.title, url=view.url, source=view.feed_name,
        feed_id=view.feed_id, published=view.published, language=view.language,
        group=dict(labels), topics=topic_items(view, first, memo),
    )


def load_story(conn: Connection, story_id: str | None) -> StoryItem | None:
    """The story row as the alert names it; None when the stage has not recorded it."""
    if story_id is None:
        return None
    row = conn.execute(select(S.c.id, S.c.title, S.c.articles, S.c.outlets, S.c.first_seen,
                              S.c.last_seen).where(S.c.id == story_id)).first()
    if row is None:
        return None
    return StoryItem(id=row.id, title=row.title, articles=row.articles, outlets=row.outlets,
                     first_seen=as_utc(row.first_seen), last_seen=as_utc(row.last_seen))


def build_payload(*, rule: Rule, kind: str, labels: Mapping[str, str], dedup_key: str,
                  reason: str, created_at: datetime,
                  articles: Sequence[tuple[ArticleView, Mapping[str, str]]],
                  story: StoryItem | None = None,
                  memo: TopicMemo | None = None) -> AlertPayload:
    """The alert as it will be sent (``alert_id`` is filled in at delivery).

    Articles are newest first and capped at `MAX_ARTICLES`; ``articles_total`` says how
    many there were. ``memo``: topic items shared by the payloads of one evaluation
    (`topic_items`); the payload is the same with or without it.
    """
    ordered = sorted(articles, key=lambda pair: (pair[0].published, pair[0].id), reverse=True)
    first = frozenset(rule.match.topics.names()) if rule.match.topics is not None else frozenset()
    return AlertPayload(
        dedup_key=dedup_key,
        kind="digest" if kind == "digest" else "alert",
        rule=RuleItem(name=rule.name, description=rule.description),
        group=dict(labels),
        reason=reason,
        created_at=as_utc(created_at),
        articles=[article_item(view, lab, first, memo)
                  for view, lab in ordered[:MAX_ARTICLES]],
        articles_total=len(ordered),
        story=story,
    )
