"""Rules at scale: an in-memory index of rules by entity, feed, title keyword, tag and topic,
so the cost of matching new hits is driven by the rules that can match them.

    rules_checked, pairs = match_batch(conn, rules, batch)   # (rule, article id) pairs

Percolator systems pre-filter stored queries the same way. Each rule is filed under the
one condition family that says most about it (every condition of a rule must hold, so
an article that lacks that family's value cannot match it), most selective first:
``entities.any`` (under each name), ``entities.all`` (its first name), ``feeds``,
``title_keywords`` (under each keyword's first three letters, as titles are matched by
substring), ``tags``, ``topics.all`` (its first topic, then by the whole set: an article
missing one of the set's topics does not check the rule), ``topics.any`` (under each).
Within its family a rule is filed again by the topic it needs (each of ``topics.any``, else
the first of ``topics.all``, else none), so an article reaches only the rules filed under
one of its values and one of its topics. For the articles of a batch the facts the
conditions read (all their topic hits with scores, entities, feed, tags, title, language)
are loaded in three queries; the rules found under an article's values are then checked
against those facts by one function per rule made when the index is built
(`compile_match`: set and dict look-ups, the family's condition left out when filing
implies it), with the semantics of `consumers.alert.compile.match_condition`:

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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
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
BY_ID = attrgetter("id")
NONE = float("-inf")  # the best score of a topic the article has no hit on


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
    # Made once per article for the compiled checks: the names alone, each topic's best
    # score (a hit at or above a minimum exists iff the best is), the best of all, the
    # topics, and the index's topic keys (the topics and None).
    entity_names: frozenset[str] = field(init=False, compare=False)
    best: dict[str, float] = field(init=False, compare=False)
    top: float = field(init=False, compare=False)
    topics: frozenset[str] = field(init=False, compare=False)
    topic_keys: tuple[str | None, ...] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        best: dict[str, float] = {}
        for topic, score in self.hits:
            if score > best.get(topic, NONE):
                best[topic] = score
        setattr_ = object.__setattr__
        setattr_(self, "entity_names", frozenset(name for name, _ in self.entities))
        setattr_(self, "best", best)
        setattr_(self, "top", max(best.values(), default=NONE))
        setattr_(self, "topics", frozenset(best))
        setattr_(self, "topic_keys", (*best, None))


def load_facts(conn: Connection, article_ids: Iterable[str]) -> dict[str, ArticleFacts]:
    """The facts of the given articles (those that exist), in three queries per 500."""
    ids = sorted(set(article_ids))
    rows: dict[str, tuple[str, str, str, frozenset[str]]] = {}
    hits: dict[str, list[tuple[str, float]]] = {}
    entities: dict[str, set[tuple[str, str]]] = {}
    # Rows fetched all at once (`.all()`: the driver's fetchall) and unpacked as tuples:
    # iterating the result fetched row by row, and ~45 entity rows per full-text article
    # made that a sixth of a busy evaluation.
    for part in chunks(ids, CHUNK):
        for aid, feed_id, title, language, tag_list in conn.execute(
                select(A.c.id, A.c.feed_id, A.c.title, A.c.language, A.c.tags)
                .where(A.c.id.in_(part))).all():
            tags = frozenset(t for t in (tag_list or ()) if isinstance(t, str))
            rows[aid] = (feed_id, (title or "").lower(), (language or "").lower(), tags)
        for aid, topic, score in conn.execute(select(H.c.article_id, H.c.topic, H.c.score)
                                              .where(H.c.article_id.in_(part))).all():
            hits.setdefault(aid, []).append((topic, float(score)))
        for aid, name, label in conn.execute(
                select(AE.c.article_id, E.c.name, E.c.label)
                .select_from(AE.join(E, AE.c.entity_id == E.c.id))
                .where(AE.c.article_id.in_(part))).all():
            entities.setdefault(aid, set()).add((name.lower(), label))
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


# --- compiled conditions ---------------------------------------------------------------

Check = Callable[[ArticleFacts], bool]


def _scores(topic: str, minimum: float) -> Check:
    return lambda f: f.best.get(topic, NONE) >= minimum


def _names(name: str) -> Check:
    return lambda f: name in f.entity_names


def _entity(entity: tuple[str, str]) -> Check:
    return lambda f: entity in f.entities


def _all_of(checks: Sequence[Check]) -> Check | None:
    if not checks:
        return None
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks
        return lambda f: first(f) and second(f)
    return lambda f: all(check(f) for check in checks)


def compile_match(match: Match, implied: frozenset[str] = frozenset()) -> Check | None:
    """``match`` as one function of an article's facts, equal to `matches` (None: always
    true). ``implied``: condition families the caller already knows hold (the index's
    family of the rule: ``feeds``, ``tags``, ``entities.any``), left out."""
    checks: list[Check] = []
    minimum = match.min_score
    topics = match.topics
    if topics is not None and topics.any:
        wanted = tuple(dict.fromkeys(topics.any))
        if len(wanted) == 1:
            checks.append(_scores(wanted[0], minimum))
        else:
            checks.append(lambda f: any(f.best.get(t, NONE) >= minimum for t in wanted))
    if topics is not None and topics.all:
        checks.extend(_scores(topic, minimum) for topic in dict.fromkeys(topics.all))
    if (topics is None or not topics.names()) and minimum > 0:
        checks.append(lambda f: f.top >= minimum)
    refs = match.entities
    if refs is not None and refs.any and "entities.any" not in implied:
        if all(ref.label is None for ref in refs.any):
            names = frozenset(ref.name.lower() for ref in refs.any)
            checks.append(lambda f: not names.isdisjoint(f.entity_names))
        else:
            pairs = tuple((ref.name.lower(), ref.label) for ref in refs.any)
            checks.append(lambda f: any(
                ((name, label) in f.entities) if label is not None
                else (name in f.entity_names) for name, label in pairs))
    if refs is not None:
        for ref in refs.all:
            folded = ref.name.lower()
            checks.append(_names(folded) if ref.label is None else _entity((folded, ref.label)))
    if match.feeds and "feeds" not in implied:
        feeds = frozenset(match.feeds)
        checks.append(lambda f: f.feed_id in feeds)
    if match.tags and "tags" not in implied:
        tags = frozenset(match.tags)
        checks.append(lambda f: not tags.isdisjoint(f.tags))
    if match.title_keywords:
        keywords = tuple(dict.fromkeys(k.lower() for k in match.title_keywords))
        checks.append(lambda f: any(k in f.title for k in keywords))
    if match.languages:
        codes = frozenset(code.lower() for code in match.languages)
        prefixes = tuple(code + "-" for code in codes)
        checks.append(lambda f: f.language in codes or f.language.startswith(prefixes))
    return _all_of(checks)


# A rule as filed: its index, itself and its compiled check (None: filing implies it).
Filed = tuple[CompiledRule, Check | None]
Bucket = dict[int, Filed]  # by rule index: merged into an article's candidates at C speed


class RuleIndex:
    """Rules filed by the most selective condition each has (see the module docstring),
    and within it by the topic the rule needs (one of ``topics.any``, else the first of
    ``topics.all``; ``None`` for a rule that names none): an article reaches only the
    rules filed under its values and one of its topics."""

    def __init__(self, rules: Sequence[CompiledRule]) -> None:
        self.rules = tuple(rules)
        # family -> value -> topic (or None) -> rules
        self._tables: dict[str, dict[str, dict[str | None, Bucket]]] = {
            family: {} for family in ("entity", "feed", "gram", "short", "tag", "topic")}
        # topics.all rules: first topic -> the whole set -> rules (an article checks only
        # the sets it has every topic of; filed under one topic, a third of 10,000 rules
        # were checked for every hit and none matched)
        self._all: dict[str, dict[frozenset[str], Bucket]] = {}
        # Whole matches by rule index (the filed checks leave the family's condition
        # out), compiled on first use: `check` serves pairs not found through the index.
        self._checks: dict[int, Check | None] = {}
        for rule in self.rules:
            self._file(rule)

    def check(self, rule: CompiledRule, facts: ArticleFacts) -> bool:
        """Whether the article matches ``rule``: its whole condition, as `matches` says,
        compiled once (`compile_match`)."""
        try:
            compiled = self._checks[rule.index]
        except KeyError:
            compiled = self._checks[rule.index] = compile_match(rule.rule.match)
        return compiled is None or compiled(facts)

    def _file(self, rule: CompiledRule) -> None:
        match = rule.rule.match
        entities, topics = match.entities, match.topics
        implied: frozenset[str] = frozenset()
        if entities is not None and entities.any:
            keys, family = [ref.name.lower() for ref in entities.any], "entity"
            if all(ref.label is None for ref in entities.any):
                implied = frozenset({"entities.any"})
        elif entities is not None and entities.all:
            keys, family = [entities.all[0].name.lower()], "entity"
        elif match.feeds:
            keys, family, implied = list(match.feeds), "feed", frozenset({"feeds"})
        elif match.title_keywords:
            folded = [keyword.lower() for keyword in match.title_keywords]
            filed: Filed = (rule, compile_match(match))
            for keyword in folded:
                long = len(keyword) >= GRAM
                self._put("gram" if long else "short", keyword[:GRAM] if long else keyword,
                          _topics_of(match), rule, filed)
            return
        elif match.tags:
            keys, family, implied = list(match.tags), "tag", frozenset({"tags"})
        elif topics is not None and topics.all:
            self._all.setdefault(topics.all[0], {}).setdefault(
                frozenset(topics.all), {})[rule.index] = (rule, compile_match(match))
            return
        else:
            assert topics is not None  # a match names one of the families above
            keys, family = list(topics.any), "topic"
        filed = (rule, compile_match(match, implied))
        subtopics = [None] if family == "topic" else _topics_of(match)
        for key in dict.fromkeys(keys):
            self._put(family, key, subtopics, rule, filed)

    def _put(self, family: str, key: str, subtopics: Sequence[str | None],
             rule: CompiledRule, filed: Filed) -> None:
        by_topic = self._tables[family].setdefault(key, {})
        for topic in dict.fromkeys(subtopics):
            by_topic.setdefault(topic, {})[rule.index] = filed

    def filed(self) -> set[int]:
        """The indexes of every rule filed somewhere (each rule is)."""
        found = {index for table in self._tables.values() for by_topic in table.values()
                 for bucket in by_topic.values() for index in bucket}
        found.update(index for by_set in self._all.values() for bucket in by_set.values()
                     for index in bucket)
        return found

    def _filed(self, facts: ArticleFacts) -> dict[int, Filed]:
        found: dict[int, Filed] = {}
        keys = facts.topic_keys
        tables = self._tables

        def add(by_topic: dict[str | None, Bucket] | None) -> None:
            if by_topic:
                for topic in keys:
                    bucket = by_topic.get(topic)
                    if bucket:
                        found.update(bucket)

        entity, tag = tables["entity"], tables["tag"]
        for name in facts.entity_names:
            add(entity.get(name))
        add(tables["feed"].get(facts.feed_id))
        for value in facts.tags:
            add(tag.get(value))
        topic_table = tables["topic"]
        present = facts.topics
        for topic in present:
            add(topic_table.get(topic))
            for wanted, bucket in self._all.get(topic, {}).items():
                if wanted <= present:
                    found.update(bucket)
        gram = tables["gram"]
        if gram:
            for piece in _grams(facts.title):
                add(gram.get(piece))
        for keyword, by_topic in tables["short"].items():
            if keyword in facts.title:
                add(by_topic)
        return found

    def candidates(self, facts: ArticleFacts) -> dict[int, CompiledRule]:
        """The rules an article can match (by rule index); a superset of those it does."""
        return {index: rule for index, (rule, _) in self._filed(facts).items()}

    def match(self, facts: Iterable[ArticleFacts]) -> tuple[int, list[tuple[CompiledRule, str]]]:
        """(rule checks made, matching (rule, article id) pairs ordered by rule, article)."""
        checked = 0
        # Each rule's matching articles, filled in article order: the pairs come out in
        # order without sorting all of them (83,000 with 10,000 selective rules).
        found: dict[int, list[str]] = {}
        by_index: dict[int, CompiledRule] = {}
        for article in sorted(facts, key=BY_ID):
            filed = self._filed(article)
            checked += len(filed)
            aid = article.id
            for index, (rule, check) in filed.items():
                if check is None or check(article):
                    ids = found.get(index)
                    if ids is None:
                        ids = found[index] = []
                        by_index[index] = rule
                    ids.append(aid)
        pairs = [(by_index[index], aid) for index in sorted(found) for aid in found[index]]
        return checked, pairs


def _topics_of(match: Match) -> list[str | None]:
    """The topics a rule is filed under within its family: an article needs one of them."""
    topics = match.topics
    if topics is not None and topics.any:
        return list(topics.any)
    if topics is not None and topics.all:
        return [topics.all[0]]
    return [None]


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
