"""The rule index: the rules it finds and checks in Python match exactly the articles the
compiled SQL of the same rules matches, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from consumers.alert.compile import (
    CANDIDATES,
    CompiledRules,
    chunks,
    compile_rules,
    match_query,
)
from consumers.alert.evaluate import HitBatch
from consumers.alert.rule_index import (
    ArticleFacts,
    RuleIndex,
    compile_match,
    index_of,
    load_facts,
    match_batch,
    matches,
)
from consumers.alert.rules import parse_rules
from schemas import tables
from tests.alert.conftest import insert_article

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from bench_alert import many_rules

pytestmark = pytest.mark.integration

TOPICS = ("is_threat", "drug_trafficking", "recognition")
ENTITIES = [("Taliban", "ORG"), ("Afghanistan", "GPE"), ("Russia", "GPE"),
            ("Islamic State", "ORG"), ("Moscow", "GPE"), ("Entity 3", "ORG"),
            ("Entity 7", "ORG"), ("Entity 7", "PERSON"), ("Kabul", "GPE")]
TITLES = ["Taliban talks in Moscow", "KEYWORD-7 and keyword-12 news", "Ports strike",
          "100% sure: under_score title", "Moscow hosts Russia-Taliban talks",
          "Opium trade up", "A quiet day", "Ta"]

HANDWRITTEN = """
channels:
  file: {type: jsonl, path: x.jsonl}
rules:
  - {name: any-topic, match: {topics: [is_threat, recognition]}, channels: [file]}
  - {name: all-topics, match: {topics: {all: [is_threat, drug_trafficking]}}, channels: [file]}
  - {name: any-and-all, match: {topics: {any: [recognition], all: [is_threat]}, min_score: 0.5},
     channels: [file]}
  - {name: score, match: {topics: [is_threat], min_score: 0.8}, channels: [file]}
  - {name: entity-name, match: {entities: [taliban]}, channels: [file]}
  - {name: entity-label, match: {entities: [{name: Entity 7, label: PERSON}]}, channels: [file]}
  - {name: entity-all, match: {entities: {all: [Taliban, Moscow]}}, channels: [file]}
  - {name: entity-any-all, match: {entities: {any: [Kabul, Russia], all: [Taliban]}},
     channels: [file]}
  - {name: feeds, match: {feeds: [feed-1, feed-2], topics: [recognition]}, channels: [file]}
  - {name: tags, match: {tags: [world, asia]}, channels: [file]}
  - {name: keyword, match: {title_keywords: [MOSCOW]}, channels: [file]}
  - {name: keyword-short, match: {title_keywords: [ta]}, channels: [file]}
  - {name: keyword-like, match: {title_keywords: ["100%", "under_s"]}, channels: [file]}
  - {name: keyword-miss, match: {title_keywords: ["under%s"]}, channels: [file]}
  - {name: languages, match: {topics: [is_threat], languages: [en]}, channels: [file]}
  - {name: language-de, match: {tags: [world], languages: [DE]}, channels: [file]}
  - {name: everything, match: {topics: [is_threat], min_score: 0.3, entities: [Taliban],
     feeds: [feed-0, feed-3], tags: [world], title_keywords: [talks], languages: [en]},
     channels: [file]}
"""


def _stock(engine: Engine, count: int, seed: int) -> None:
    """``count`` articles with varied hits, entities, feeds, tags, titles and languages."""
    rng = random.Random(seed)
    for n in range(count):
        topics = {t: round(rng.uniform(0.2, 1.0), 2) for t in TOPICS if rng.random() < 0.5}
        entities = [(name, label, 1) for name, label in rng.sample(ENTITIES, rng.randint(0, 4))]
        insert_article(engine, title=rng.choice(TITLES) + f" {n}", feed_id=f"feed-{n % 5}",
                       topics=topics, entities=entities,
                       tags=rng.sample(["world", "asia", "sport"], rng.randint(0, 2)),
                       language=rng.choice(["en", "en-GB", "EN", "de", "de-AT", "fr", None]))


def _by_sql(engine: Engine, rules_text: str) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(pairs matched by the compiled SQL, pairs matched by the index) over every article."""
    rules = compile_rules(parse_rules(rules_text).rules, engine.dialect.name)
    with engine.connect() as conn:
        high = conn.execute(select(func.max(tables.topic_hits.c.id))).scalar_one()
        sql: set[tuple[str, str]] = set()
        for part in chunks(list(rules)):
            for index, aid in conn.execute(match_query(part, CANDIDATES),
                                           {"low": 0, "high": high}):
                sql.add((rules[index].name, aid))
        checked, pairs = match_batch(conn, rules, HitBatch(low=0, high=high, count=1))
    indexed = {(rule.name, aid) for rule, aid in pairs}
    assert len(pairs) == len(indexed)  # no pair twice
    assert checked >= len(pairs)
    return sql, indexed


def test_handwritten_rules_match_what_the_sql_matches(engine: Engine) -> None:
    _stock(engine, 160, seed=1)
    sql, indexed = _by_sql(engine, HANDWRITTEN)
    assert indexed == sql
    matched_rules = {name for name, _ in sql}
    # The corpus exercises nearly every rule, so agreement means something.
    assert len(matched_rules) >= 14, matched_rules


@pytest.mark.parametrize("profile", ["selective", "broad", "none"])
def test_generated_rule_sets_match_what_the_sql_matches(engine: Engine, profile: str) -> None:
    _stock(engine, 120, seed=2)
    with engine.begin() as conn:  # the bench's entity names and feeds
        for n in range(0, 120, 3):
            aid = conn.execute(select(tables.articles.c.id).order_by(tables.articles.c.id)
                               .offset(n).limit(1)).scalar_one()
            conn.execute(tables.articles.update().where(tables.articles.c.id == aid)
                         .values(feed_id=f"feed-{n % 12}", title=f"keyword-{n % 100} story"))
    insert_article(engine, title="keyword-3 x", feed_id="feed-2", topics={"is_threat": 0.95},
                   entities=[("Entity 2", "ORG", 1)], tags=["world"])
    sql, indexed = _by_sql(engine, many_rules(600, profile))
    assert indexed == sql
    if profile != "none":
        assert sql


def test_an_article_is_checked_only_against_rules_that_can_match(engine: Engine) -> None:
    aid = insert_article(engine, title="Quiet day", feed_id="feed-2",
                         topics={"recognition": 0.9}, entities=[("Entity 4", "ORG", 1)])
    rules = compile_rules(parse_rules(many_rules(3000, "selective")).rules, "sqlite")
    with engine.connect() as conn:
        facts = load_facts(conn, [aid])[aid]
    candidates = index_of(rules).candidates(facts)
    assert 0 < len(candidates) < len(rules) / 5
    assert index_of(rules) is index_of(rules)  # built once per rule set


def test_a_rule_needing_all_of_its_topics_is_checked_only_with_all_of_them(
        engine: Engine) -> None:
    text = ("channels:\n  file: {type: jsonl, path: x.jsonl}\nrules:\n"
            "  - name: both\n    match: {topics: {all: [is_threat, recognition]}}\n"
            "    channels: [file]\n")
    rules = compile_rules(parse_rules(text).rules, "sqlite")
    one = insert_article(engine, title="One", feed_id="feed-1", topics={"is_threat": 0.9})
    two = insert_article(engine, title="Two", feed_id="feed-1",
                         topics={"is_threat": 0.9, "recognition": 0.8})
    with engine.connect() as conn:
        facts = load_facts(conn, [one, two])
    index = index_of(rules)
    assert index.candidates(facts[one]) == {}
    assert list(index.candidates(facts[two])) == [rules[0].index]
    assert index.match(facts.values())[1] == [(rules[0], two)]


def test_every_rule_is_filed_where_an_article_can_reach_it() -> None:
    rules = compile_rules(parse_rules(many_rules(2000, "selective")
                                      + many_rules(600, "broad").split("rules:\n", 1)[1]
                                      .replace("name: rule-", "name: broad-")).rules, "sqlite")
    assert RuleIndex(rules).filed() == {rule.index for rule in rules}


def test_a_rule_is_checked_only_by_articles_with_one_of_its_topics(engine: Engine) -> None:
    """Within its family (here the feed) a rule is filed by the topic it needs."""
    text = ("channels:\n  file: {type: jsonl, path: x.jsonl}\nrules:\n"
            "  - name: feed-threat\n    match: {feeds: [feed-1], topics: [is_threat]}\n"
            "    channels: [file]\n"
            "  - name: feed-only\n    match: {feeds: [feed-1]}\n    channels: [file]\n")
    rules = compile_rules(parse_rules(text).rules, "sqlite")
    other = insert_article(engine, title="One", feed_id="feed-1", topics={"recognition": 0.9})
    threat = insert_article(engine, title="Two", feed_id="feed-1", topics={"is_threat": 0.2})
    with engine.connect() as conn:
        facts = load_facts(conn, [other, threat])
    index = index_of(rules)
    assert list(index.candidates(facts[other])) == [rules[1].index]
    assert sorted(index.candidates(facts[threat])) == [rules[0].index, rules[1].index]
    assert index.match(facts.values())[1] == sorted(
        [(rules[0], threat), (rules[1], other), (rules[1], threat)],
        key=lambda pair: (pair[0].index, pair[1]))


def _stocked_facts(engine: Engine, seed: int) -> tuple[CompiledRules, dict[str, ArticleFacts]]:
    """The handwritten and 300 generated rules, and the facts of 120 stocked articles."""
    _stock(engine, 120, seed=seed)
    text = HANDWRITTEN + many_rules(300, "selective").split("rules:\n", 1)[1]
    rules = compile_rules(parse_rules(text).rules, "sqlite")
    with engine.connect() as conn:
        ids = list(conn.execute(select(tables.articles.c.id)).scalars())
        return rules, load_facts(conn, ids)


def test_compiled_checks_equal_the_reference_conditions(engine: Engine) -> None:
    """`compile_match` (what the index runs) against `matches` (what windows verify
    with), every rule on every article, nothing left implied."""
    rules, facts = _stocked_facts(engine, seed=3)
    agreed = 0
    for rule in rules:
        check = compile_match(rule.rule.match)
        for article in facts.values():
            expected = matches(rule.rule.match, article)
            assert (check is None or check(article)) == expected, (rule.name, article.id)
            agreed += expected
    assert agreed > 100


def test_index_pairs_equal_the_reference_in_rule_and_article_order(engine: Engine) -> None:
    """`RuleIndex.match` fills each rule's articles in article order instead of sorting
    all pairs: given the articles in any order, its pairs are the reference `matches`'s,
    ordered by rule, then article id (the order grouping, the ledger and alerts see)."""
    rules, facts = _stocked_facts(engine, seed=5)
    shuffled = list(facts.values())
    random.Random(5).shuffle(shuffled)
    _, pairs = RuleIndex(rules).match(shuffled)
    expected = [(rule, aid) for rule in rules for aid in sorted(facts)
                if matches(rule.rule.match, facts[aid])]
    assert len(expected) > 100
    assert [(rule.index, aid) for rule, aid in pairs] == [
        (rule.index, aid) for rule, aid in expected]
