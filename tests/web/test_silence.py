"""Silences in the alert evaluator (`outbox.run_tick`), on both databases: a silenced rule
decides nothing, is logged and counted; an expired silence lets the rule fire again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import REGISTRY
from sqlalchemy import Engine, select

from consumers.alert.outbox import run_tick
from consumers.alert.ruleset import build_ruleset
from consumers.alert.silence import (
    active_silences,
    create_silence,
    expire_silence,
    list_silences,
)
from consumers.store.write import store_batch
from schemas import tables
from tests.alert.conftest import ledger_pairs
from tests.factories import make_article, make_enriched, make_hit

RULES = """
version: 1
channels:
  out: {type: jsonl, path: alerts.jsonl}
rules:
  - name: recog
    match: {topics: [recognition]}
    group_by: [rule, topic]
    channels: [out]
  - name: drugs
    match: {topics: [drug_trafficking]}
    channels: [out]
"""


def _store(engine: Engine, title: str, topic: str, when: datetime) -> str:
    item = make_enriched(make_article(title=title, published=when),
                         topics=[make_hit(topic, 0.9, phrases=(topic,))])
    store_batch(engine, [item])
    return item.article.id


def _silenced(rule: str) -> float:
    return REGISTRY.get_sample_value("newswatch_alerts_silenced_total", {"rule": rule}) or 0.0


def test_a_silenced_rule_decides_nothing_until_the_silence_ends(engine: Engine,
                                                                tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES, encoding="utf-8")
    rules = build_ruleset(path, dialect=engine.dialect.name, state_dir=tmp_path).rules
    now = datetime.now(UTC)
    _store(engine, "First recognition", "recognition", now)
    assert [r for _, r in run_tick(engine, rules, now).alerts] == ["recog"]

    silence_id = create_silence(engine, rule="recog", group_key=None,
                                duration=timedelta(hours=1), comment="maintenance",
                                who="ana", now=now)
    assert [s.id for s in list_silences(engine, now)] == [silence_id]
    before = _silenced("recog")
    _store(engine, "Second recognition", "recognition", now)
    _store(engine, "Drug case", "drug_trafficking", now)
    fired = run_tick(engine, rules, now + timedelta(minutes=1)).alerts
    assert [r for _, r in fired] == ["drugs"]  # the other rule is not silenced
    assert _silenced("recog") == before + 1
    held = [aid for rule, aid in ledger_pairs(engine) if rule == "recog"]
    assert len(held) == 1  # the match during the silence was not held for later

    expire_silence(engine, silence_id, who="ana")
    with engine.connect() as conn:
        assert active_silences(conn, datetime.now(UTC) + timedelta(seconds=1)) == []
    third = _store(engine, "Third recognition", "recognition", datetime.now(UTC))
    fired = run_tick(engine, rules, datetime.now(UTC) + timedelta(seconds=1)).alerts
    assert [r for _, r in fired] == ["recog"]
    with engine.connect() as conn:
        payload = conn.execute(select(tables.alerts.c.payload).where(
            tables.alerts.c.id == fired[0][0])).scalar_one()
    assert [a["id"] for a in payload["articles"]] == [third]
    with engine.connect() as conn:
        actions = list(conn.execute(select(tables.audit_log.c.action)
                                    .order_by(tables.audit_log.c.id)).scalars())
    assert actions == ["silence", "unsilence"]
