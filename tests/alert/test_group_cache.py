"""Group states kept in memory between evaluations (`consumers.alert.group_cache`).

The live evaluator keeps each group's state and held articles instead of reading them
back from SQL on every evaluation. These tests run it on SQLite and PostgreSQL: the
states it keeps equal the rows, a throttled group's held articles go out once when two
evaluators take turns (one of them releasing with no new hits, which must still tell
the other), and the alerts are those of an evaluator that reads SQL every time.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, select

from consumers.alert.compile import CompiledRules
from consumers.alert.group_cache import groups_for
from consumers.alert.outbox import SqlStore, run_tick
from schemas import tables
from tests.alert.conftest import (
    NOW,
    alert_article_ids,
    compiled_rules,
    forget_decisions,
    insert_article,
)

RULES = """
channels: {out: {type: terminal}}
rules:
  - name: throttled
    match: {topics: [is_threat]}
    group_by: [feed]
    throttle: 1h
    channels: [out]
"""


def compiled(engine: Engine) -> CompiledRules:
    return compiled_rules(engine, RULES)


def test_kept_states_equal_the_rows(engine: Engine) -> None:
    rules = compiled(engine)
    for minute in range(0, 150, 10):
        insert_article(engine, published=NOW + timedelta(minutes=minute),
                       feed_id=f"feed-{minute % 20}", topics={"is_threat": 0.9})
        run_tick(engine, rules, NOW + timedelta(minutes=minute))
    cache = groups_for(engine, rules)
    assert cache is not None
    assert len(cache) == 2
    by_rule = {rule.name: rule.rule for rule in rules}
    with engine.connect() as conn:
        keys = [(row.rule, row.group_key) for row in conn.execute(select(tables.alert_groups))]
        from_sql = SqlStore(conn).load_groups(keys, by_rule, NOW)
    for key, state in from_sql.items():
        kept = cache.get(key)
        assert kept is not None
        assert (kept.sequence, kept.last_alert_at, kept.release_at, kept.labels) == (
            state.sequence, state.last_alert_at, state.release_at, state.labels)
        assert sorted(r.article_id for r in kept.held) == sorted(
            r.article_id for r in state.held)
    assert any(state.held for state in from_sql.values())  # a throttle is holding some


def test_two_evaluators_taking_turns_send_held_articles_once(engine: Engine) -> None:
    first, second = compiled(engine), compiled(engine)  # two daemons' rule sets
    a = insert_article(engine, published=NOW, topics={"is_threat": 0.9})
    run_tick(engine, first, NOW)                       # alert 1: a
    b = insert_article(engine, published=NOW + timedelta(minutes=5), topics={"is_threat": 0.9})
    run_tick(engine, first, NOW + timedelta(minutes=5))  # b held by the throttle
    run_tick(engine, second, NOW + timedelta(hours=1, minutes=1))  # releases b, no new hit
    c = insert_article(engine, published=NOW + timedelta(hours=1, minutes=2),
                       topics={"is_threat": 0.9})
    run_tick(engine, first, NOW + timedelta(hours=1, minutes=2))  # c held (throttle again)
    run_tick(engine, first, NOW + timedelta(hours=2, minutes=2))  # releases c only
    assert alert_article_ids(engine) == [[a], [b], [c]]


def test_alerts_equal_those_of_an_evaluator_reading_sql_every_time(engine: Engine) -> None:
    def run(rules: list | CompiledRules) -> list[list[str]]:  # type: ignore[type-arg]
        forget_decisions(engine)
        for minute in range(0, 300, 7):
            run_tick(engine, rules, NOW + timedelta(minutes=minute))
        return alert_article_ids(engine)

    for minute in range(0, 300, 7):
        insert_article(engine, published=NOW + timedelta(minutes=minute),
                       feed_id=f"feed-{minute % 3}", topics={"is_threat": 0.9})
    kept = compiled(engine)
    assert run(list(kept)) == run(kept)  # a plain list has no cache: SQL every time
