"""Fault 2 of issue 16: a hit committed late, below the evaluator's watermark.

Two store processes; one frozen (SIGSTOP) for 150 s while its open transaction held a new
topic hit. The other's hits, with higher ids, committed and were evaluated; the frozen
one's hit committed after the watermark's gap allowance (2 min) expired and never
alerted. Here two real PostgreSQL transactions commit out of id order, the evaluator's
clock moving an hour between: the late hit still alerts, once.
"""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from consumers.alert.outbox import run_tick
from schemas import tables
from tests.alert.conftest import NOW, insert_article, later, ledger_pairs
from tests.alert.test_evaluate import _one, _rules
from tests.fault.chaos import report

pytestmark = pytest.mark.integration


def test_a_hit_committed_an_hour_late_below_the_watermark_still_alerts(
        engine: Engine) -> None:
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite has one writer at a time: ids cannot commit out of order; "
                    "tests/alert/test_evaluate.py covers it there with explicit ids")
    rules = _rules(engine, _one("    match: {topics: [is_threat]}\n"))
    frozen_article = insert_article(engine, topics={})
    other_article = insert_article(engine, topics={})
    hit = {"topic": "is_threat", "score": 0.7, "evidence": [], "topics_version": "v1",
           "published": NOW, "created_at": NOW}
    frozen = engine.connect()
    frozen_tx = frozen.begin()
    try:
        # The frozen store's transaction takes its id first and does not commit.
        frozen.execute(tables.topic_hits.insert().values(article_id=frozen_article, **hit))
        with engine.begin() as conn:  # the other store process: a higher id, committed
            conn.execute(tables.topic_hits.insert().values(article_id=other_article, **hit))
        assert len(run_tick(engine, rules, NOW).alerts) == 1
        for seconds in (60, 150, 600):  # the evaluator ticks on while the store is frozen
            assert run_tick(engine, rules, later(seconds)).alerts == []
        frozen_tx.commit()  # resumed long after any gap allowance
    finally:
        frozen.close()
    late = run_tick(engine, rules, later(3600))
    assert len(late.alerts) == 1, "the hit committed late below the watermark was skipped"
    assert run_tick(engine, rules, later(3601)).alerts == []
    alerted = [aid for _, aid in ledger_pairs(engine)]
    assert sorted(alerted) == sorted([frozen_article, other_article])
    report("Store transaction committed an hour late below the watermark",
           faults="1 late commit", volume="2 alerts", lost=0,
           duplicated=len(alerted) - len(set(alerted)), recovery="next tick")
