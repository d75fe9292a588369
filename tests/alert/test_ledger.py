"""The alert ledger (`consumers.alert.ledger`): one row per article and evaluation.

On SQLite and PostgreSQL: an article taken by many rules is one row; what a throttle
holds goes out once when it falls due, with every article listed on its alert; a
restarted evaluator (a new rule set: empty caches) rebuilds what is held and what waits
for a digest from SQL alone and sends it once; nothing taken is ever taken again; a rule
removed from the rules file gives up what its groups held (retention frees it).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, func, select

from consumers.alert.ledger import hold_floor, top
from consumers.alert.outbox import run_tick
from consumers.store.prune import prune
from schemas import tables
from tests.alert.conftest import (
    NOW,
    alerted_pairs,
    compiled_rules,
    held_pairs,
    insert_article,
    ledger_pairs,
)

RULES = """
channels: {out: {type: terminal}}
rules:
""" + "".join(f"""
  - name: r{i}
    match: {{topics: [is_threat]}}
    group_by: [rule, feed]
    throttle: 1h
    channels: [out]
""" for i in range(5))

DIGEST = """
channels: {out: {type: terminal}}
rules:
  - name: daily
    match: {topics: [is_threat]}
    group_by: [rule, feed]
    throttle: 10m
    digest: 1d
    channels: [out]
"""


def _articles(engine: Engine, minutes: range, feeds: int = 2) -> list[str]:
    return [insert_article(engine, published=NOW + timedelta(minutes=m),
                           feed_id=f"feed-{m % feeds}", topics={"is_threat": 0.8})
            for m in minutes]


def _ledger_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(tables.alert_ledger)
                                ).scalar_one())


def test_an_article_taken_by_many_rules_is_one_row_and_each_rule_sends_it_once(
        engine: Engine) -> None:
    rules = compiled_rules(engine, RULES)
    first = _articles(engine, range(0, 2))  # one per feed: each group's first alert
    assert len(run_tick(engine, rules, NOW + timedelta(minutes=2)).alerts) == 10
    held = _articles(engine, range(10, 16))
    assert run_tick(engine, rules, NOW + timedelta(minutes=20)).alerts == []
    assert _ledger_rows(engine) == 8  # one per article, for all five rules
    assert held_pairs(engine) == {(f"r{i}", aid) for i in range(5) for aid in held}
    released = run_tick(engine, rules, NOW + timedelta(hours=1, minutes=3)).alerts
    assert len(released) == 10  # each group once, with what it held
    assert held_pairs(engine) == set()
    pairs = alerted_pairs(engine)
    assert sorted(pairs) == sorted({(f"r{i}", aid) for i in range(5)
                                    for aid in first + held})  # each once, none lost
    assert sorted(ledger_pairs(engine)) == sorted(pairs)
    assert run_tick(engine, rules, NOW + timedelta(hours=3)).alerts == []


def test_a_restarted_evaluator_rebuilds_what_is_held_and_sends_it_once(
        engine: Engine) -> None:
    rules = compiled_rules(engine, RULES)
    first = _articles(engine, range(0, 2))
    run_tick(engine, rules, NOW + timedelta(minutes=2))
    held = _articles(engine, range(10, 14))
    run_tick(engine, rules, NOW + timedelta(minutes=20))
    restarted = compiled_rules(engine, RULES)  # new caches: only SQL is left
    more = _articles(engine, range(30, 32))
    assert run_tick(engine, restarted, NOW + timedelta(minutes=40)).alerts == []
    assert held_pairs(engine) == {(f"r{i}", aid) for i in range(5) for aid in held + more}
    again = compiled_rules(engine, RULES)  # and once more, at the release
    assert len(run_tick(engine, again, NOW + timedelta(hours=1, minutes=5)).alerts) == 10
    assert sorted(alerted_pairs(engine)) == sorted(
        {(f"r{i}", aid) for i in range(5) for aid in first + held + more})
    # The first evaluator is stale (another one evaluated since): it reads SQL afresh
    # and sends nothing again.
    assert run_tick(engine, rules, NOW + timedelta(hours=3)).alerts == []
    assert len(alerted_pairs(engine)) == 5 * len(first + held + more)


def test_a_digest_waits_across_restarts_and_goes_out_once(engine: Engine) -> None:
    rules = compiled_rules(engine, DIGEST)
    first = _articles(engine, range(0, 2))  # released into the digest at once
    assert run_tick(engine, rules, NOW + timedelta(minutes=1)).alerts == []
    held = _articles(engine, range(3, 5))  # held by the throttle
    run_tick(engine, rules, NOW + timedelta(minutes=5))
    assert held_pairs(engine) == {("daily", aid) for aid in first + held}
    restarted = compiled_rules(engine, DIGEST)
    run_tick(engine, restarted, NOW + timedelta(minutes=15))  # the throttle releases
    later = compiled_rules(engine, DIGEST)
    fired = run_tick(engine, later, NOW + timedelta(days=1, minutes=2)).alerts
    assert len(fired) == 1
    assert sorted(alerted_pairs(engine)) == sorted(("daily", aid) for aid in first + held)
    with engine.connect() as conn:
        kind = conn.execute(select(tables.alerts.c.kind)).scalar_one()
    assert kind == "digest"
    assert held_pairs(engine) == set()
    assert run_tick(engine, compiled_rules(engine, DIGEST),
                    NOW + timedelta(days=3)).alerts == []


GONE = """
channels: {out: {type: terminal}}
rules:
  - name: gone
    match: {topics: [is_threat]}
    group_by: [rule, feed]
    throttle: 1h
    channels: [out]
  - name: other
    match: {topics: [drug_trafficking]}
    channels: [out]
"""
WITHOUT_GONE = GONE[:GONE.index("  - name: gone")] + GONE[GONE.index("  - name: other"):]


def test_a_removed_rule_gives_up_what_it_held_and_no_longer_pins_retention(
        engine: Engine) -> None:
    rules = compiled_rules(engine, GONE)
    first = _articles(engine, range(0, 2))
    assert len(run_tick(engine, rules, NOW + timedelta(minutes=2)).alerts) == 2
    held = _articles(engine, range(10, 14))
    run_tick(engine, rules, NOW + timedelta(minutes=20))
    assert held_pairs(engine) == {("gone", aid) for aid in held}
    with engine.connect() as conn:
        assert hold_floor(conn) < top(conn)  # the held articles pin retention

    # The rules file loses "gone" (a reload: a new rule set whose groups are rebuilt).
    reloaded = compiled_rules(engine, WITHOUT_GONE)
    assert run_tick(engine, reloaded, NOW + timedelta(minutes=30)).alerts == []
    assert held_pairs(engine) == set()
    with engine.connect() as conn:
        assert hold_floor(conn) == top(conn)
        due = conn.execute(select(tables.alert_groups.c.rule).where(
            tables.alert_groups.c.release_at <= NOW + timedelta(days=1))).all()
    assert due == []  # no group of the removed rule is read as due on every tick
    assert run_tick(engine, reloaded, NOW + timedelta(hours=2)).alerts == []

    # The rule comes back: its groups alert what is new, never what they held before.
    back = compiled_rules(engine, GONE)
    new = _articles(engine, range(40, 41))
    fired = run_tick(engine, back, NOW + timedelta(hours=3)).alerts
    assert len(fired) == 1
    assert sorted(alerted_pairs(engine)) == sorted(("gone", aid) for aid in first + new)

    # Nothing holds the old articles: prune frees them (and their ledger rows).
    result = prune(engine, timedelta(days=1), by="published", now=NOW + timedelta(days=3))
    assert result.kept_held == 0
    with engine.connect() as conn:
        left = set(conn.execute(select(tables.articles.c.id)).scalars())
    assert left.isdisjoint(held)
