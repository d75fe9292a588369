"""Rules at scale: an in-memory index of rules by entity, feed, title keyword, tag and topic,
so the cost of matching new hits is driven by the rules that can match them.

    rules_checked, pairs = match_batch(conn, rules, batch)   # (rule, article id) pairs

Percolator systems pre-filter stored queries the same way. Each rule is filed under the
one condition family that says most about it (every condition of a rule must hold, so
an article that lacks that family's value cannot match it), most selective first:
``entities.any`` (under each name), ``entities.all`` (its first name), ``feeds``,
``title_keywords`` (under each keyword's first three letters, as titles are matched by
substring), ``tags``, ``topics.all`` (its first topic, then by the whole set: an article
missing one of the set's topics does not check the rule), ``topics.any`` (under each). For
the articles of a batch the facts the conditions read (all their topic hits with scores,
entities, feed, tags, title, language) are loaded in three queries; the rules found under
an article's values are then checked against those facts in Python, condition by
condition, with the semantics of `consumers.alert.compile.match_condition`:

- topics and ``min_score``: a hit on one of ``any`` and on each of ``all``, each at or
  above ``min_score``; with no topic named, some hit at or above it;
- entities: compared by name case-insensitively, and by label when the rule gives one;
- feeds and tags: exact; languages: ``en`` matches ``en`` and ``en-*``, case-insensitive;
- title keywords: a case-insensitive substring of the title.

Case folding is Python's (Unicode, as PostgreSQL's ``lower``); SQLite's ``lower`` folds
ASCII only, so on SQLite a non-ASCII title keyword in another case now matches where the
SQL did not. The SQL expressions stay in use for count and spike windows and the
backtest's windows; `tests/alert/test_rule_index.py` checks both agree on varied rules.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Connection, and_, or_, select

from consumers.alert.compile import CompiledRule, CompiledRules
from newswatch.chunks import chunks
from schemas import tables
from schemas.rules_file import Match

if TYPE_CHECKING:
    from consumers.alert.evaluate import HitBatch

A, H = tables.articles, tables.topic_hits
AE, E = tables.article_entities, tables.entities
CHUNK = 500
GRAM = 3  # title keywords are filed under their first GRAM characters


@dataclass(frozen=True)
class ArticleFacts:
    """What rule conditions read of one article (names, titles and languages folded)."""

    id: str
    feed_id: str
    title: str
    language: str
    tags: frozenset[str]
    hits: tuple[tuple[str, float], ...]  # (topic, score) of every hit of the article
    entities: frozenset[tuple[str, str]]  # (folded name, label)
    # The names alone, made once: each rule check used to build the set again.
    entity_names: frozenset[str] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "entity_names",
                           frozenset(name for name, _ in self.entities))





def load_facts(conn: Connection, article_ids: Iterable[str]) -> dict[str, ArticleFacts]:
    """The facts of the given articles (those that exist), in three queries per 500."""
    ids = sorted(set(article_ids))
    rows: dict[str, tuple[str, str, str, frozenset[str]]] = {}
    hits: dict[str, list[tuple[str, float]]] = {}
    entities: dict[str, set[tuple[str, str]]] = {}
    for part in chunks(ids, CHUNK):
        for row in conn.execute(select(A.c.id, A.c.feed_id, A.c.title, A.c.language, A.c.tags)
                                .where(A.c.id.in_(part))):
            tags = frozenset(t for t in (row.tags or ()) if isinstance(t, str))
            rows[row.id] = (row.feed_id, (row.title or "").lower(),
                            (row.language or "").lower(), tags)
        for hit in conn.execute(select(H.c.article_id, H.c.topic, H.c.score)
                                .where(H.c.article_id.in_(part))):
            hits.setdefault(hit.article_id, []).append((hit.topic, float(hit.score)))
        for entity in conn.execute(select(AE.c.article_id, E.c.name, E.c.label)
                                   .select_from(AE.join(E, AE.c.entity_id == E.c.id))
                                   .where(AE.c.article_id.in_(part))):
            entities.setdefault(entity.article_id, set()).add((entity.name.lower(),
                                                               entity.label))
    return {aid: ArticleFacts(aid, feed, title, language, tags, tuple(hits.get(aid, ())),
                              frozenset(entities.get(aid, ())))
            for aid, (feed, title, language, tags) in rows.items()}


def matches(match: Match, facts: ArticleFacts) -> bool:
    """Whether ``facts`` meet every condition of ``match`` (see the module docstring)."""
    minimum = match.min_score
    topics = match.topics
    if topics is not None and topics.any:
        wanted = set(topics.any)
        if not any(t in wanted and s >= minimum for t, s in facts.hits):
            return False
    if topics is not None and topics.all:
        for topic in topics.all:
            if not any(t == topic and s >= minimum for t, s in facts.hits):
                return False
    if (topics is None or not topics.names()) and minimum > 0 and not any(
            s >= minimum for _, s in facts.hits):
        return False
    if match.entities is not None:
        refs = match.entities
        if refs.any and not any(_has_entity(facts, ref.name, ref.label) for ref in refs.any):
            return False
        if not all(_has_entity(facts, ref.name, ref.label) for ref in refs.all):
            return False
    if match.feeds and facts.feed_id not in match.feeds:
        return False
    if match.tags and facts.tags.isdisjoint(match.tags):
        return False
    if match.title_keywords and not any(k.lower() in facts.title for k in match.title_keywords):
        return False
    return not match.languages or any(
        facts.language == code.lower() or facts.language.startswith(code.lower() + "-")
        for code in match.languages)


def _has_entity(facts: ArticleFacts, name: str, label: str | None) -> bool:
    folded = name.lower()
    if label is not None:
        return (folded, label) in facts.entities
    return folded in facts.entity_names


def _grams(title: str) -> set[str]:
    return {title[i:i + GRAM] for i in range(len(title) - GRAM + 1)}


class RuleIndex:
    """Rules filed by the most selective condition each has (see the module docstring)."""

    def __init__(self, rules: Sequence[CompiledRule]) -> None:
        self.rules = tuple(rules)
        self._entity: dict[str, list[CompiledRule]] = {}
        self._feed: dict[str, list[CompiledRule]] = {}
        self._gram: dict[str, list[CompiledRule]] = {}
        self._short: dict[str, list[CompiledRule]] = {}  # keywords under GRAM letters
        self._tag: dict[str, list[CompiledRule]] = {}
        self._topic: dict[str, list[CompiledRule]] = {}
        # topics.all rules: first topic -> the whole set -> rules (an article checks only
        # the sets it has every topic of; filed under one topic, a third of 10,000 rules
        # were checked for every hit and none matched)
        self._all: dict[str, dict[frozenset[str], list[CompiledRule]]] = {}
        for rule in self.rules:
            self._file(rule)

    def _file(self, rule: CompiledRule) -> None:
        match = rule.rule.match
        entities, topics = match.entities, match.topics
        if entities is not None and entities.any:
            keys, table = [ref.name.lower() for ref in entities.any], self._entity
        elif entities is not None and entities.all:
            keys, table = [entities.all[0].name.lower()], self._entity
        elif match.feeds:
            keys, table = list(match.feeds), self._feed
        elif match.title_keywords:
            for keyword in match.title_keywords:
                folded = keyword.lower()
                table = self._gram if len(folded) >= GRAM else self._short
                table.setdefault(folded[:GRAM] if len(folded) >= GRAM else folded,
                                 []).append(rule)
            return
        elif match.tags:
            keys, table = list(match.tags), self._tag
        elif topics is not None and topics.all:
            self._all.setdefault(topics.all[0], {}).setdefault(
                frozenset(topics.all), []).append(rule)
            return
        else:
            assert topics is not None  # a match names one of the families above
            keys, table = list(topics.any), self._topic
        for key in dict.fromkeys(keys):
            table.setdefault(key, []).append(rule)

    def candidates(self, facts: ArticleFacts) -> dict[int, CompiledRule]:
        """The rules an article can match (by rule index); a superset of those it does."""
        found: dict[int, CompiledRule] = {}

        def add(rules: Iterable[CompiledRule]) -> None:
            for rule in rules:
                found[rule.index] = rule

        for name in facts.entity_names:
            add(self._entity.get(name, ()))
        add(self._feed.get(facts.feed_id, ()))
        for tag in facts.tags:
            add(self._tag.get(tag, ()))
        present = {topic for topic, _ in facts.hits}
        for topic in present:
            add(self._topic.get(topic, ()))
            for wanted, rules in self._all.get(topic, {}).items():
                if wanted <= present:
                    add(rules)
        if self._gram:
            for gram in _grams(facts.title):
                add(self._gram.get(gram, ()))
        for keyword, rules in self._short.items():
            if keyword in facts.title:
                add(rules)
        return found

    def match(self, facts: Iterable[ArticleFacts]) -> tuple[int, list[tuple[CompiledRule, str]]]:
        """(rule checks made, matching (rule, article id) pairs ordered by rule, article)."""
        checked = 0
        pairs: list[tuple[CompiledRule, str]] = []
        for article in facts:
            candidates = self.candidates(article)
            checked += len(candidates)
            pairs.extend((rule, article.id) for rule in candidates.values()
                         if matches(rule.rule.match, article))
        pairs.sort(key=lambda pair: (pair[0].index, pair[1]))
        return checked, pairs


_INDEXES: weakref.WeakKeyDictionary[CompiledRules, RuleIndex] = weakref.WeakKeyDictionary()


def index_of(rules: Sequence[CompiledRule]) -> RuleIndex:
    """The index of a rule set, built once per `CompiledRules` (a reload builds anew)."""
    if not isinstance(rules, CompiledRules):
        return RuleIndex(rules)
    index = _INDEXES.get(rules)
    if index is None:
        index = _INDEXES[rules] = RuleIndex(rules)
    return index


def batch_articles(conn: Connection, batch: HitBatch) -> list[str]:
    """The articles with a hit in the batch: ids in ``(low, high]`` and its late ids."""
    in_range = and_(H.c.id > batch.low, H.c.id <= batch.high)
    condition = or_(in_range, H.c.id.in_(batch.late_ids)) if batch.late_ids else in_range
    return list(conn.execute(select(H.c.article_id).where(condition).distinct()).scalars())


def match_batch(conn: Connection, rules: Sequence[CompiledRule], batch: HitBatch
                ) -> tuple[int, list[tuple[CompiledRule, str]]]:
    """(rule checks made, (rule, article id) pairs) for the articles with new hits."""
    return index_of(rules).match(load_facts(conn, batch_articles(conn, batch)).values())
