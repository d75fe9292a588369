"""Count and spike windows kept in memory (`consumers.alert.windows`) equal the SQL's.

The live evaluator answers count and spike windows from a cache fed by each batch's
matches. These tests run it on SQLite and PostgreSQL and compare it with the SQL window
query the evaluator used to run on every evaluation: tick by tick on a three-day history,
after a re-enrichment that makes an article stop matching, with two evaluators taking
turns on one database, and after an article in a window is deleted.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, delete

from consumers.alert.compile import CompiledRules, compile_rules, window_articles_query
from consumers.alert.outbox import run_tick
from consumers.alert.payload import as_utc
from consumers.alert.rules import parse_rules
from consumers.alert.windows import cacheable, horizon, windows_for
from schemas import tables
from tests.alert.conftest import NOW, alert_article_ids, insert_article
from tests.alert.test_backtest_equals_live import RULES, history, store

BURST = """
channels: {out: {type: terminal}}
rules:
  - name: burst
    match: {topics: [is_threat]}
    count: {at_least: ARG, within: 2h}
    group_by: [feed]
    channels: [out]
"""


def burst(engine: Engine, at_least: int) -> CompiledRules:
    text = BURST.replace("ARG", str(at_least))
    return compile_rules(parse_rules(text).rules, engine.dialect.name)


def test_memory_windows_equal_sql_windows_tick_by_tick(engine: Engine) -> None:
    rules = compile_rules(parse_rules(RULES).rules, engine.dialect.name)
    by_name = {rule.name: rule for rule in rules}
    assert {rule.name for rule in rules if cacheable(rule)} == {"burst", "surge", "surge-z"}
    cache = windows_for(engine, rules)
    assert cache is not None
    compared = 0
    for item in history():
        store(engine, item)
        now = item.published
        run_tick(engine, rules, now)
        for rule_name, key in cache.groups():
            rule = by_name[rule_name]
            labels = {"rule": rule_name}
            entries = cache.window(engine.connect(), rule, key, labels, now)
            assert entries is not None
            with engine.connect() as conn:
                rows = conn.execute(window_articles_query(
                    rule, labels, now - horizon(rule), None, 5000)).all()
            assert [(e.article_id, e.published, e.feed_id) for e in entries] == [
                (row.id, as_utc(row.published), row.feed_id) for row in rows]
            compared += 1
    assert compared > 300
    # Windows were read from SQL once per group, then answered from memory.
    assert cache.cold_loads == 3
    assert cache.reads > 100


def test_an_article_that_stops_matching_leaves_the_window(engine: Engine) -> None:
    rules = burst(engine, 2)
    first = insert_article(engine, published=NOW, feed_id="bbc", topics={"is_threat": 0.9})
    run_tick(engine, rules, NOW)
    # Re-enriched: the store replaces the article's hits; it no longer names the topic.
    with engine.begin() as conn:
        conn.execute(delete(tables.topic_hits).where(tables.topic_hits.c.article_id == first))
        conn.execute(tables.topic_hits.insert().values(
            article_id=first, topic="recognition", score=0.8, evidence=[],
            topics_version="v2", published=NOW, created_at=NOW))
    run_tick(engine, rules, NOW + timedelta(minutes=1))
    insert_article(engine, published=NOW + timedelta(minutes=2), feed_id="bbc",
                   topics={"is_threat": 0.9})
    run_tick(engine, rules, NOW + timedelta(minutes=2))
    assert alert_article_ids(engine) == []  # one matching article in the window: the rule needs two
    third = insert_article(engine, published=NOW + timedelta(minutes=3), feed_id="bbc",
                           topics={"is_threat": 0.9})
    run_tick(engine, rules, NOW + timedelta(minutes=3))
    assert len(alert_article_ids(engine)) == 1
    assert first not in alert_article_ids(engine)[0]
    assert third in alert_article_ids(engine)[0]


def test_alerted_articles_that_stop_matching_stop_counting(engine: Engine) -> None:
    # Already alerted, they are not checked again before riding along: the batch that
    # carries their new hits must take them out of the window.
    rules = burst(engine, 3)
    ids = [insert_article(engine, published=NOW, feed_id="bbc", topics={"is_threat": 0.9})
           for _ in range(3)]
    run_tick(engine, rules, NOW)
    assert alert_article_ids(engine) == [sorted(ids)]
    with engine.begin() as conn:
        for aid in ids[:2]:
            conn.execute(delete(tables.topic_hits)
                         .where(tables.topic_hits.c.article_id == aid))
            conn.execute(tables.topic_hits.insert().values(
                article_id=aid, topic="recognition", score=0.8, evidence=[],
                topics_version="v2", published=NOW, created_at=NOW))
    insert_article(engine, published=NOW + timedelta(minutes=1), feed_id="bbc",
                   topics={"is_threat": 0.9})
    run_tick(engine, rules, NOW + timedelta(minutes=1))
    assert len(alert_article_ids(engine)) == 1  # two matching articles in the window: no alert


def test_two_evaluators_taking_turns_see_each_others_matches(engine: Engine) -> None:
    one, two = burst(engine, 3), burst(engine, 3)  # two rule sets: two caches
    ids = []
    for n, rules in enumerate((one, two, one)):
        at = NOW + timedelta(minutes=n)
        ids.append(insert_article(engine, published=at, feed_id="bbc",
                                  topics={"is_threat": 0.9}))
        run_tick(engine, rules, at)
    # The third evaluation (by the first evaluator) counts the article the second saw.
    assert alert_article_ids(engine) == [sorted(ids)]


def test_a_deleted_article_neither_counts_nor_rides_along(engine: Engine) -> None:
    rules = burst(engine, 2)
    first = insert_article(engine, published=NOW, feed_id="bbc", topics={"is_threat": 0.9})
    run_tick(engine, rules, NOW)  # one article: no alert, the article waits in the window
    with engine.begin() as conn:
        conn.execute(delete(tables.topic_hits).where(tables.topic_hits.c.article_id == first))
        conn.execute(delete(tables.articles).where(tables.articles.c.id == first))
    insert_article(engine, published=NOW + timedelta(minutes=1), feed_id="bbc",
                   topics={"is_threat": 0.9})
    run_tick(engine, rules, NOW + timedelta(minutes=1))
    assert alert_article_ids(engine) == []  # as SQL: one article left in the window


def test_an_article_stored_anew_after_retention_rides_along_again(engine: Engine) -> None:
    """Window entries the rule took are not looked up again (`WindowCache.taken`), except
    an article that comes back with a new hit after retention deleted it and its ledger
    rows: the ledger no longer says the rule took it, so it rides along again."""
    rules = burst(engine, 2)
    url = "https://news.example.org/comes-back"
    first = insert_article(engine, published=NOW, feed_id="bbc", topics={"is_threat": 0.9},
                           url=url)
    second = insert_article(engine, published=NOW + timedelta(minutes=1), feed_id="bbc",
                            topics={"is_threat": 0.9})
    run_tick(engine, rules, NOW + timedelta(minutes=1))
    third = insert_article(engine, published=NOW + timedelta(minutes=2), feed_id="bbc",
                           topics={"is_threat": 0.9})
    run_tick(engine, rules, NOW + timedelta(minutes=2))  # the two taken ones only count
    with engine.begin() as conn:  # what `db prune` deletes with an article
        conn.execute(delete(tables.alert_ledger)
                     .where(tables.alert_ledger.c.article_id == first))
        conn.execute(delete(tables.topic_hits).where(tables.topic_hits.c.article_id == first))
        conn.execute(delete(tables.articles).where(tables.articles.c.id == first))
    again = insert_article(engine, published=NOW + timedelta(minutes=3), feed_id="bbc",
                           topics={"is_threat": 0.9}, url=url)
    assert again == first
    run_tick(engine, rules, NOW + timedelta(minutes=3))
    assert [sorted(ids) for ids in alert_article_ids(engine)] == [
        sorted([first, second]), [third], [first]]
