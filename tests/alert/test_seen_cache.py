"""Seen (rule, article) pairs kept in memory, and the ledger rows they are read from.

`consumers.alert.seen_cache` answers "already held or alerted?" for count-window
articles of earlier batches from memory; `consumers.alert.ledger` writes one row per
article taken. These tests run both on SQLite and PostgreSQL: the kept pairs equal
the rows, ledger rows read back as written, two evaluators taking turns
alert each article once, an evaluation that dies mid-way (after its held rows were
written) keeps nothing in memory, and the alerts equal those of an evaluator that reads
SQL every time.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, select

from consumers.alert import outbox
from consumers.alert.compile import CompiledRules
from consumers.alert.group import ArticleRef
from consumers.alert.group_cache import groups_for
from consumers.alert.ledger import pairs_of_articles, record_groups
from consumers.alert.outbox import SqlStore, run_tick
from consumers.alert.seen_cache import seen_for
from newswatch.utc import as_utc
from schemas import tables
from tests.alert.conftest import (
    NOW,
    alert_article_ids,
    alerted_pairs,
    compiled_rules,
    forget_decisions,
    insert_article,
)

RULES = """
channels: {out: {type: terminal}}
rules:
  - name: burst
    match: {topics: [is_threat]}
    count: {at_least: 2, within: 2h}
    group_by: [feed]
    throttle: 30m
    channels: [out]
  - name: every
    match: {topics: [is_threat]}
    group_by: [feed]
    throttle: 1h
    channels: [out]
"""


def compiled(engine: Engine) -> CompiledRules:
    return compiled_rules(engine, RULES)


def stream(engine: Engine, minutes: range) -> list[str]:
    return [insert_article(engine, published=NOW + timedelta(minutes=minute),
                           feed_id=f"feed-{minute % 2}", topics={"is_threat": 0.9})
            for minute in minutes]


def by_rule(engine: Engine) -> dict[str, list[str]]:
    """Every alerted article id, by rule (a repeat shows up twice)."""
    with engine.connect() as conn:
        rows = conn.execute(select(tables.alerts.c.rule, tables.alerts.c.payload)
                            .order_by(tables.alerts.c.id)).all()
    out: dict[str, list[str]] = {}
    for rule, payload in rows:
        out.setdefault(rule, []).extend(a["id"] for a in payload["articles"])
    return out


def test_kept_pairs_equal_the_rows(engine: Engine) -> None:
    rules = compiled(engine)
    for minute in range(0, 240, 10):
        stream(engine, range(minute, minute + 10, 5))
        run_tick(engine, rules, NOW + timedelta(minutes=minute + 9))
    cache = seen_for(engine, rules)
    assert cache is not None
    assert len(cache) > 0
    with engine.connect() as conn:
        ids = list(conn.execute(select(tables.articles.c.id)).scalars())
        rows = set(pairs_of_articles(conn, ids))
    known = cache.known(ids)
    assert set(known) == set(ids)  # every article was matched by the count rule
    for aid, rules_seen in known.items():
        assert set(rules_seen) == {rule for rule, a in rows if a == aid and rule == "burst"}
    assert any(rules_seen for rules_seen in known.values())  # some are held or alerted


def test_ledger_rows_read_back_as_written(engine: Engine) -> None:
    published = NOW + timedelta(seconds=1, microseconds=5)
    first = insert_article(engine, published=published, topics={"is_threat": 0.9})
    second = insert_article(engine, published=published, topics={"is_threat": 0.9})

    def ref(aid: str, key: str) -> ArticleRef:
        return ArticleRef(article_id=aid, published=published, group_key=key, labels={})

    with engine.begin() as conn:
        mark = record_groups(conn, [("every", [ref(first, "feed=demo")]),
                                    ("burst", [ref(first, "feed=demo")]),
                                    ("other", [ref(first, "feed=x")]),
                                    ("every", [ref(second, "feed=demo")])], NOW)
        assert record_groups(conn, [], NOW) == mark  # nothing new: the same mark
    with engine.connect() as conn:
        rows = conn.execute(select(tables.alert_ledger).order_by(tables.alert_ledger.c.id)
                            ).all()
        pairs = sorted(pairs_of_articles(conn, [first, second]))
    assert len(rows) == 2  # one row per article, not per rule
    assert max(row.id for row in rows) == mark
    assert rows[0].matches == {"feed=demo": ["every", "burst"], "feed=x": ["other"]}
    assert (as_utc(rows[0].published), as_utc(rows[0].decided_at)) == (published, NOW)
    assert pairs == sorted([("every", first), ("burst", first), ("other", first),
                            ("every", second)])


def test_two_evaluators_taking_turns_alert_each_article_once(engine: Engine) -> None:
    first, second = compiled(engine), compiled(engine)  # two daemons' rule sets
    ids: list[str] = []
    for step, minute in enumerate(range(0, 300, 10)):
        ids += stream(engine, range(minute, minute + 10, 5))
        run_tick(engine, (first, second)[step % 3 == 2], NOW + timedelta(minutes=minute + 9))
    run_tick(engine, first, NOW + timedelta(hours=10))  # release what is still held
    alerted = by_rule(engine)
    for rule in ("burst", "every"):
        assert sorted(alerted[rule]) == sorted(ids)  # each article once, none lost


def test_an_article_another_evaluator_alerted_is_not_alerted_again(engine: Engine) -> None:
    text_rules = RULES.replace("throttle: 30m", "throttle: 0s")
    first, second = compiled_rules(engine, text_rules), compiled_rules(engine, text_rules)
    a = insert_article(engine, published=NOW, topics={"is_threat": 0.9})
    run_tick(engine, first, NOW)                           # burst: 1 of 2, a not held
    b = insert_article(engine, published=NOW + timedelta(minutes=5), topics={"is_threat": 0.9})
    run_tick(engine, second, NOW + timedelta(minutes=5))   # burst: a and b go out
    c = insert_article(engine, published=NOW + timedelta(minutes=10),
                       topics={"is_threat": 0.9})
    run_tick(engine, first, NOW + timedelta(minutes=10))   # first knew a as not seen
    assert sorted(by_rule(engine)["burst"]) == sorted([a, b, c])  # each once


def test_an_evaluation_that_dies_after_writing_keeps_nothing(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    rules = compiled(engine)
    ids = stream(engine, range(0, 20, 5))
    run_tick(engine, rules, NOW + timedelta(minutes=19))
    ids += stream(engine, range(20, 40, 5))
    real = SqlStore._save_groups

    def dies(self: SqlStore, states: object) -> None:  # after the held rows went in
        raise RuntimeError("killed mid-evaluation")

    monkeypatch.setattr(SqlStore, "_save_groups", dies)
    with pytest.raises(RuntimeError):
        run_tick(engine, rules, NOW + timedelta(minutes=39))
    monkeypatch.setattr(SqlStore, "_save_groups", real)
    with engine.connect() as conn:  # rolled back: no ledger row of the second batch
        held = set(conn.execute(select(tables.alert_ledger.c.article_id)).scalars())
    assert not held & set(ids[4:])
    run_tick(engine, rules, NOW + timedelta(minutes=39))   # the same evaluator goes on
    groups = groups_for(engine, rules)
    assert groups is not None
    assert len(groups) > 0
    with engine.connect() as conn:  # what memory kept is what SQL holds
        keys = [(row.rule, row.group_key) for row in conn.execute(select(tables.alert_groups))]
        from_sql = SqlStore(conn).load_groups(keys, {r.name: r.rule for r in rules},
                                              NOW + timedelta(minutes=39))
    for key, state in from_sql.items():
        kept = groups.get(key)
        assert kept is not None
        assert (kept.sequence, kept.last_alert_at, sorted(r.article_id for r in kept.held)) == (
            state.sequence, state.last_alert_at, sorted(r.article_id for r in state.held))
    groups.unchanged()
    run_tick(engine, rules, NOW + timedelta(hours=10))
    alerted = by_rule(engine)
    recorded = alerted_pairs(engine)
    for rule in ("burst", "every"):
        assert sorted(alerted[rule]) == sorted(ids)
        assert sorted(a for r, a in recorded if r == rule) == sorted(ids)


def test_alerts_equal_those_of_an_evaluator_reading_sql_every_time(engine: Engine) -> None:
    def run(rules: list | CompiledRules) -> list[list[str]]:  # type: ignore[type-arg]
        forget_decisions(engine, hits_evaluated=True)
        hits = tables.topic_hits
        for minute in range(0, 360, 7):  # the hits "arrive" as the clock passes them
            now = NOW + timedelta(minutes=minute)
            with engine.begin() as conn:
                conn.execute(hits.update().where(hits.c.published > now - timedelta(minutes=7),
                                                 hits.c.published <= now)
                             .values(evaluated=False))
            run_tick(engine, rules, now)
        return alert_article_ids(engine)

    stream(engine, range(0, 360, 4))
    kept = compiled(engine)
    with_memory = run(kept)
    assert outbox.seen_for(engine, kept) is not None
    assert run(list(kept)) == with_memory  # a plain list has no cache: SQL every time
    assert len(with_memory) > 4
