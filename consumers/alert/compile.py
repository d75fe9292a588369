"""Rules -> SQLAlchemy queries. Nothing in a rule is evaluated as code.

A rule's ``match`` becomes one boolean expression over ``articles`` made of plain column
comparisons and correlated ``EXISTS`` subqueries on ``topic_hits`` and ``entities``; every
value from the file is a bound parameter. The same expression serves three queries:

- `match_query`: which of the articles with new topic hits match which rules (many rules
  in one ``UNION ALL`` statement, so 1,000 rules cost a few round trips, not 1,000);
- `window_query`: how many matching articles (and feeds) a group has in a time window;
- `window_articles_query`: which they are (a superset when the group is by topic or
  entity, which the evaluator narrows to the articles whose group it is);
- `published_query`: the publication times of matching articles, for spike baselines.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from types import MappingProxyType

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Executable,
    Select,
    and_,
    bindparam,
    distinct,
    exists,
    func,
    literal,
    not_,
    or_,
    select,
    true,
    union_all,
)

from schemas import tables
from schemas.rules_file import EntityRef, Match, Rule

A = tables.articles
H = tables.topic_hits
AE = tables.article_entities
E = tables.entities

# Rules per UNION ALL statement: SQLite allows 500 compound terms; 100 keeps plans small.
RULES_PER_STATEMENT = 100
NO_VALUE = "-"
BY_FEED = frozenset({"rule", "feed"})  # group_by keys a group by feed allows


@dataclass(frozen=True)
class CompiledRule:
    """A rule with its match as SQL. ``topics`` is None when the rule matches any topic.

    ``where`` is built on first use: matching new hits goes through the rule index
    (`consumers.alert.rule_index`), so only count/spike windows and the backtest need the
    SQL, and building it for every rule made compiling 10,000 rules take ~9 s.
    """

    index: int
    rule: Rule
    topics: frozenset[str] | None
    dialect: str

    @cached_property
    def where(self) -> ColumnElement[bool]:
        return match_condition(self.rule.match, self.dialect)

    @cached_property
    def name(self) -> str:
        # Cached: read ~650,000 times in an evaluation of 1,000 hits with 10,000 rules.
        return self.rule.name

    # Facts of the rule asked per match or per group (83,000 matches and ~8,000 groups in
    # an evaluation of 1,000 hits with 10,000 rules), each made once here instead of in
    # a memo of each step that asks.

    @cached_property
    def group_by(self) -> tuple[str, ...]:
        return tuple(self.rule.group_by)

    @cached_property
    def by_feed(self) -> bool:
        """Grouped by ``rule`` and ``feed`` only: the group follows from the feed."""
        return set(self.group_by) <= BY_FEED

    @cached_property
    def windowed(self) -> bool:
        """The rule has a count or spike window."""
        return self.rule.count is not None or self.rule.spike is not None

    @cached_property
    def feed_groups(self) -> dict[str, tuple[str, dict[str, str]]]:
        """Group key and labels by feed, for a `by_feed` rule (`windows.feed_group`
        fills it)."""
        return {}

    def group_filter(self, labels: Mapping[str, str]) -> ColumnElement[bool]:
        """Narrows the match to one group (its feed, its topic, its entity)."""
        conditions: list[ColumnElement[bool]] = []
        for key, value in labels.items():
            if key == "feed":
                conditions.append(A.c.feed_id == value)
            elif key == "story":
                # The story's articles; an article not placed yet is its own story.
                conditions.append(or_(A.c.story_id == value,
                                      and_(A.c.story_id.is_(None), A.c.id == value)))
            elif key == "topic" and value != NO_VALUE:
                conditions.append(_hit_exists([value], self.rule.match.min_score))
            elif key.startswith("entity:"):
                label = key.removeprefix("entity:")
                if value == NO_VALUE:
                    conditions.append(not_(_entity_exists([], label_only=label)))
                else:
                    conditions.append(_entity_exists([EntityRef(name=value, label=label)]))
        return and_(true(), *conditions)


class CompiledRules(Sequence[CompiledRule]):
    """The enabled rules of a file, compiled, with their match statements built once.

    Rules are grouped by the topics they need; the match statements of each group (a
    ``UNION ALL`` per `RULES_PER_STATEMENT` rules) take the new hits as parameters, so an
    evaluation only binds values and runs the groups whose topics it has hits for.
    """

    def __init__(self, rules: Sequence[CompiledRule]) -> None:
        self._rules = tuple(rules)
        by_topics: dict[frozenset[str] | None, list[CompiledRule]] = {}
        for rule in self._rules:
            by_topics.setdefault(rule.topics, []).append(rule)
        self._groups = tuple((topics, group) for topics, group in by_topics.items())
        self._plans: dict[bool, tuple[tuple[frozenset[str] | None, int,
                                            tuple[Executable, ...]], ...]] = {}

    def __getitem__(self, index: int) -> CompiledRule:  # type: ignore[override]
        return self._rules[index]

    def __len__(self) -> int:
        return len(self._rules)

    def __iter__(self) -> Iterator[CompiledRule]:
        # The tuple's own iterator: `Sequence`'s calls __getitem__ once per rule.
        return iter(self._rules)

    @cached_property
    def by_name(self) -> Mapping[str, CompiledRule]:
        """Each rule by name (read-only). Built once: with 10,000 rules, building it and
        `models` on every evaluation was a fifth of an evaluation's CPU."""
        return MappingProxyType({rule.name: rule for rule in self._rules})

    @cached_property
    def models(self) -> Mapping[str, Rule]:
        """Each rule's file model by name (read-only), built once."""
        return MappingProxyType({rule.name: rule.rule for rule in self._rules})

    def _plan(self, late: bool) -> tuple[tuple[frozenset[str] | None, int,
                                              tuple[Executable, ...]], ...]:
        plan = self._plans.get(late)
        if plan is None:
            candidates = CANDIDATES_WITH_LATE if late else CANDIDATES
            plan = tuple(
                (topics, len(group),
                 tuple(match_query(part, candidates) for part in chunks(group)))
                for topics, group in self._groups
            )
            self._plans[late] = plan
        return plan

    def statements(self, topics: frozenset[str], late: bool = False
                   ) -> tuple[int, list[Executable]]:
        """(rules checked, statements) for new hits on ``topics``; ``late``: the hits
        include late ids (parameter ``late``) besides the range ``low``..``high``."""
        checked, statements = 0, list[Executable]()
        for needed, count, group in self._plan(late):
            if needed is None or needed & topics:
                checked += count
                statements.extend(group)
        return checked, statements


def rules_by_name(rules: Sequence[CompiledRule]) -> Mapping[str, CompiledRule]:
    """``rules`` by name: `CompiledRules.by_name` (built once), or built now."""
    if isinstance(rules, CompiledRules):
        return rules.by_name
    return {rule.name: rule for rule in rules}


def models_by_name(rules: Sequence[CompiledRule]) -> Mapping[str, Rule]:
    """Each rule's file model by name: `CompiledRules.models` (built once), or built now."""
    if isinstance(rules, CompiledRules):
        return rules.models
    return {rule.name: rule.rule for rule in rules}


def compile_rules(rules: Sequence[Rule], dialect: str) -> CompiledRules:
    """Compile the enabled rules for a database dialect (``sqlite`` or ``postgresql``)."""
    return CompiledRules([
        compile_rule(rule, index, dialect)
        for index, rule in enumerate(r for r in rules if r.enabled)
    ])


def compile_rule(rule: Rule, index: int, dialect: str) -> CompiledRule:
    match = rule.match
    topics = match.topics.names() if match.topics is not None else set()
    return CompiledRule(
        index=index,
        rule=rule,
        topics=frozenset(topics) if topics else None,
        dialect=dialect,
    )


def match_condition(match: Match, dialect: str) -> ColumnElement[bool]:
    """The article-level condition of a ``match`` block; every part must hold."""
    parts: list[ColumnElement[bool]] = []
    if match.topics is not None and match.topics.any:
        parts.append(_hit_exists(match.topics.any, match.min_score))
    if match.topics is not None and match.topics.all:
        parts.extend(_hit_exists([topic], match.min_score) for topic in match.topics.all)
    if (match.topics is None or not match.topics.names()) and match.min_score > 0:
        parts.append(_hit_exists(None, match.min_score))
    if match.entities is not None and match.entities.any:
        parts.append(_entity_exists(match.entities.any))
    if match.entities is not None and match.entities.all:
        parts.extend(_entity_exists([ref]) for ref in match.entities.all)
    if match.feeds:
        parts.append(A.c.feed_id.in_(match.feeds))
    if match.tags:
        parts.append(_tags_any(match.tags, dialect))
    if match.title_keywords:
        title = func.lower(A.c.title)
        parts.append(or_(*(
            title.contains(keyword.lower(), autoescape=True) for keyword in match.title_keywords
        )))
    if match.languages:
        language = func.lower(A.c.language)
        parts.append(or_(*(
            or_(language == code.lower(), language.like(code.lower() + "-%"))
            for code in match.languages
        )))
    return and_(true(), *parts)


def _hit_exists(topics: Sequence[str] | None, min_score: float) -> ColumnElement[bool]:
    conditions: list[ColumnElement[bool]] = [H.c.article_id == A.c.id]
    if topics is not None:
        conditions.append(H.c.topic.in_(list(topics)))
    if min_score > 0:
        conditions.append(H.c.score >= min_score)
    return exists().where(*conditions)


def _entity_exists(refs: Sequence[EntityRef], label_only: str | None = None
                   ) -> ColumnElement[bool]:
    """An entity of the article is one of ``refs`` (names compared case-insensitively)."""
    options: list[ColumnElement[bool]] = []
    for ref in refs:
        same = func.lower(E.c.name) == ref.name.lower()
        options.append(and_(same, E.c.label == ref.label) if ref.label else same)
    if label_only is not None:
        options.append(E.c.label == label_only)
    return (
        exists()
        .select_from(AE.join(E, AE.c.entity_id == E.c.id))
        .where(AE.c.article_id == A.c.id, or_(*options))
    )


def _tags_any(tags: Sequence[str], dialect: str) -> ColumnElement[bool]:
    """One of the article's tags (a JSON array of strings) is in ``tags``."""
    if dialect == "postgresql":
        elements = func.json_array_elements_text(A.c.tags).table_valued("value")
    else:
        elements = func.json_each(A.c.tags).table_valued("value")
    return exists().select_from(elements).where(elements.c.value.in_(list(tags)))


# --- queries ---------------------------------------------------------------------------


# Articles with a topic hit in (low, high] (and among the late ids): the candidates.
_RANGE = and_(H.c.id > bindparam("low"), H.c.id <= bindparam("high"))
CANDIDATES: Select[str] = select(H.c.article_id).where(_RANGE)
CANDIDATES_WITH_LATE: Select[str] = select(H.c.article_id).where(or_(
    _RANGE, H.c.id.in_(bindparam("late", expanding=True)),
))


def match_query(rules: Sequence[CompiledRule], candidates: Select[str]
                ) -> Select[int, str] | CompoundSelect[int, str]:
    """(rule index, article id) for each candidate article matching each rule.

    The candidates are a materialised CTE read once per statement, and each rule's branch
    starts from them (a handful of articles), whatever plan the database caches.
    """
    found = candidates.distinct().cte("candidates").prefix_with("MATERIALIZED",
                                                                 dialect="postgresql")
    selects = [
        select(literal(rule.index).label("rule_index"), A.c.id.label("article_id"))
        .select_from(found.join(A, A.c.id == found.c.article_id))
        .where(rule.where)
        for rule in rules
    ]
    if len(selects) == 1:
        return selects[0]
    return union_all(*selects)


def chunks(rules: Sequence[CompiledRule], size: int = RULES_PER_STATEMENT
           ) -> list[Sequence[CompiledRule]]:
    return [rules[i:i + size] for i in range(0, len(rules), size)]


def _in_window(start: datetime, end: datetime | None) -> ColumnElement[bool]:
    condition = A.c.published >= start
    return condition if end is None else and_(condition, A.c.published <= end)


def window_query(rule: CompiledRule, labels: Mapping[str, str], start: datetime,
                 end: datetime | None) -> Select[int, int]:
    """(matching articles, distinct feeds) of one group published in ``[start, end]``."""
    return select(func.count(), func.count(distinct(A.c.feed_id))).where(
        rule.where, rule.group_filter(labels), _in_window(start, end)
    )


def window_articles_query(rule: CompiledRule, labels: Mapping[str, str], start: datetime,
                          end: datetime | None, limit: int) -> Select[str, datetime, str]:
    """The newest matching articles of one group in the window: (id, published, feed)."""
    return (
        select(A.c.id, A.c.published, A.c.feed_id)
        .where(rule.where, rule.group_filter(labels), _in_window(start, end))
        .order_by(A.c.published.desc(), A.c.id)
        .limit(limit)
    )


def first_stored_query() -> Select[datetime]:
    """When the store wrote its oldest article still kept: how long it has been watching."""
    return select(func.min(A.c.stored_at))


def published_query(rule: CompiledRule, labels: Mapping[str, str], start: datetime,
                    end: datetime) -> Select[datetime]:
    """Publication times of one group's matching articles in ``[start, end)``."""
    return select(A.c.published).where(
        rule.where, rule.group_filter(labels), A.c.published >= start, A.c.published < end
    )

