"""Rule evaluation on SQL (SQLite and PostgreSQL): matching, windows, dedup, watermark."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, func, select

from consumers.alert.backtest import backtest
from consumers.alert.compile import compile_rules
from consumers.alert.evaluate import Cursor, mark_evaluated, next_batch
from consumers.alert.outbox import load_cursor, run_tick, skip_history
from consumers.alert.rules import default_rules_path, load_rules, parse_rules
from newswatch.errors import ConfigError
from schemas import tables
from schemas.alert_payload import AlertPayload
from tests.alert.conftest import (
    NOW,
    SEED_EVIDENCE,
    alerted_pairs,
    held_pairs,
    insert_article,
    insert_seed,
    later,
    ledger_pairs,
)


def _rules(engine: Engine, text: str):  # type: ignore[no-untyped-def]
    return compile_rules(parse_rules(text).rules, engine.dialect.name)


def _one(body: str, name: str = "r") -> str:
    return (f"channels: {{out: {{type: terminal}}}}\nrules:\n  - name: {name}\n"
            f"    channels: [out]\n{body}")


def _alerts(engine: Engine) -> list[AlertPayload]:
    with engine.connect() as conn:
        rows = conn.execute(select(tables.alerts).order_by(tables.alerts.c.id)).all()
    return [AlertPayload.model_validate({**r.payload, "alert_id": r.id}) for r in rows]


def test_the_seed_article_fires_one_alert_per_matching_rule_with_evidence(
        engine: Engine) -> None:
    rules = compile_rules(load_rules(default_rules_path()).rules, engine.dialect.name)
    seed = insert_seed(engine)
    result = run_tick(engine, rules, NOW)
    assert sorted(rule for _, rule in result.alerts) == [
        "drug-trafficking", "islamic-state-threat", "regime-recognition"]
    alerts = {a.rule.name: a for a in _alerts(engine)}
    for rule, topic in (("islamic-state-threat", "is_threat"),
                        ("drug-trafficking", "drug_trafficking"),
                        ("regime-recognition", "recognition")):
        alert = alerts[rule]
        # The demo rules group by story; not placed yet, the seed is its own story.
        assert alert.group == {"rule": rule, "story": seed}
        (article,) = alert.articles
        assert article.topics[0].topic == topic  # the rule's topic leads
        sentences = [e.sentence for e in article.topics[0].evidence]
        assert sentences == [SEED_EVIDENCE[topic][0][1]]
        assert article.source == "Seed source"
        assert article.url
    with engine.connect() as conn:
        sends = conn.execute(select(tables.alert_sends.c.channel, tables.alert_sends.c.status)
                             ).all()
    assert sorted(sends) == sorted([("alerts-file", "pending"), ("terminal", "pending")] * 3)
    # Evaluated once: the watermark moved past the hits.
    assert run_tick(engine, rules, later(1)).alerts == []
    with engine.connect() as conn:
        assert load_cursor(conn).watermark == conn.execute(
            select(func.max(tables.topic_hits.c.id))).scalar()


def _replace_hits(engine: Engine, aid: str) -> None:
    """What the store does when an article is enriched again: its hits get new rows."""
    with engine.begin() as conn:
        rows = [dict(r._mapping) for r in conn.execute(
            select(tables.topic_hits).where(tables.topic_hits.c.article_id == aid))]
        conn.execute(delete(tables.topic_hits).where(tables.topic_hits.c.article_id == aid))
        for row in rows:
            row.pop("id")
            row.pop("evaluated")  # a new row, as the store writes it: not evaluated yet
            conn.execute(tables.topic_hits.insert().values(**row))


def test_hits_stored_again_for_the_same_article_do_not_alert_twice(engine: Engine) -> None:
    rules = _rules(engine, _one("    match: {topics: [recognition]}\n"))
    aid = insert_seed(engine)
    insert_article(engine, topics={"is_threat": 0.7})
    assert len(run_tick(engine, rules, NOW).alerts) == 1
    _replace_hits(engine, aid)
    result = run_tick(engine, rules, later(5))
    assert result.hits == 3
    assert result.alerts == []


def test_newest_hits_replaced_are_evaluated_again(engine: Engine) -> None:
    """Re-enrichment replaces the newest article's hits; the new rows must be seen (on
    SQLite this needs AUTOINCREMENT on topic_hits, or deleted newest ids are reused)."""
    rules = _rules(engine, _one("    match: {topics: [drug_trafficking]}\n"))
    aid = insert_article(engine, topics={"is_threat": 0.7})
    run_tick(engine, rules, NOW)
    with engine.begin() as conn:  # enriched again, now also about drug trafficking
        conn.execute(delete(tables.topic_hits).where(tables.topic_hits.c.article_id == aid))
        conn.execute(tables.topic_hits.insert().values(
            article_id=aid, topic="drug_trafficking", score=0.8, evidence=[],
            topics_version="v2", published=NOW, created_at=NOW))
    assert len(run_tick(engine, rules, later(5)).alerts) == 1


CASES = [
    ("topics any", "{topics: [is_threat, recognition]}", {"seed", "threat", "both"}),
    ("topics all", "{topics: {all: [is_threat, recognition]}}", {"seed", "both"}),
    ("min score", "{topics: [is_threat], min_score: 0.9}", {"seed"}),
    ("entity by name", "{topics: [is_threat], entities: [islamic state]}", {"seed"}),
    ("entity with label", "{entities: [{name: Afghanistan, label: GPE}]}", {"seed", "drugs"}),
    ("entity wrong label", "{entities: [{name: Afghanistan, label: ORG}]}", set()),
    ("entities all", "{entities: {all: [Taliban, Moscow]}}", {"seed"}),
    ("feeds", "{topics: [is_threat, drug_trafficking], feeds: [other]}", {"threat", "drugs"}),
    ("tags", "{tags: [crime]}", {"drugs"}),
    ("title keyword", "{title_keywords: [TALIBAN, '100%']}", {"seed", "both"}),
    ("language", "{topics: [is_threat, recognition], languages: [en]}",
     {"seed", "threat", "both"}),
    ("language exact", "{topics: [is_threat, recognition], languages: [en-gb]}", {"threat"}),
    ("language prefix", "{topics: [drug_trafficking], languages: [pt]}", {"drugs"}),
]


@pytest.mark.parametrize(("case", "match", "expected"), CASES, ids=[c[0] for c in CASES])
def test_match_conditions(engine: Engine, case: str, match: str, expected: set[str]) -> None:
    articles = {
        "seed": insert_seed(engine),
        "threat": insert_article(engine, title="IS claims attack", feed_id="other",
                                 topics={"is_threat": 0.6}, language="en-GB"),
        "drugs": insert_article(engine, title="Cocaine seized", feed_id="other",
                                topics={"drug_trafficking": 0.8}, tags=["crime", "world"],
                                entities=[("Afghanistan", "GPE", 1)], language="pt-BR"),
        "both": insert_article(engine, title="Taliban: 100% recognised?",
                               topics={"is_threat": 0.55, "recognition": 0.7}, language="EN"),
    }
    names = {aid: name for name, aid in articles.items()}
    rules = _rules(engine, _one(f"    match: {match}\n    group_by: [feed]\n"))
    run_tick(engine, rules, NOW)
    fired = {names[a.id] for alert in _alerts(engine) for a in alert.articles}
    assert fired == expected


def test_count_fires_when_enough_articles_from_enough_feeds_are_in_the_window(
        engine: Engine) -> None:
    rules = _rules(engine, _one(
        "    match: {topics: [is_threat]}\n"
        "    count: {at_least: 3, within: 6h, distinct_feeds: 2}\n"))
    insert_article(engine, topics={"is_threat": 0.7}, feed_id="a",
                   published=NOW - timedelta(hours=8))  # outside the window
    first = insert_article(engine, topics={"is_threat": 0.7}, feed_id="a",
                           published=NOW - timedelta(hours=2))
    assert run_tick(engine, rules, NOW).alerts == []
    second = insert_article(engine, topics={"is_threat": 0.7}, feed_id="a",
                            published=NOW - timedelta(hours=1))
    assert run_tick(engine, rules, NOW).alerts == []  # 2 articles
    third = insert_article(engine, topics={"is_threat": 0.7}, feed_id="a", published=NOW)
    assert run_tick(engine, rules, NOW).alerts == []  # 3 articles but 1 feed
    fourth = insert_article(engine, topics={"is_threat": 0.7}, feed_id="b", published=NOW)
    assert len(run_tick(engine, rules, NOW).alerts) == 1
    (alert,) = _alerts(engine)
    assert {a.id for a in alert.articles} == {first, second, third, fourth}
    assert "4 matching article(s) from 2 feed(s) within 6h" in alert.reason


def test_a_count_alert_carries_exactly_the_window_articles_not_old_ones_stored_with_them(
        engine: Engine) -> None:
    """Issue 18: two archive articles stored in the same poll rode along in the payload."""
    rules = _rules(engine, _one(
        "    match: {topics: [is_threat]}\n"
        "    count: {at_least: 3, within: 6h, distinct_feeds: 2}\n"))
    old = [insert_article(engine, topics={"is_threat": 0.7}, feed_id="archive",
                          published=NOW - timedelta(days=3 * 365 + d)) for d in (1, 2)]
    fresh = [insert_article(engine, topics={"is_threat": 0.7}, feed_id=feed,
                            published=NOW - timedelta(minutes=m))
             for feed, m in (("a", 50), ("a", 20), ("b", 5))]
    assert len(run_tick(engine, rules, NOW).alerts) == 1
    (alert,) = _alerts(engine)
    assert {a.id for a in alert.articles} == set(fresh)
    assert alert.articles_total == 3
    assert alert.reason.startswith("3 matching article(s) from 2 feed(s) within 6h")
    decided = {aid for _, aid in ledger_pairs(engine)}
    assert decided == set(fresh)  # the old ones are neither alerted nor held
    assert not decided & set(old)
    (report,) = backtest(engine, rules, NOW - timedelta(days=1), NOW)
    assert report.alerts == 1
    assert report.decided[0].articles_total == 3


def test_an_article_in_two_groups_of_a_count_rule_counts_in_its_own_group_only(
        engine: Engine) -> None:
    """Grouped by topic, an article with hits on both topics is in its best topic's group."""
    rules = _rules(engine, _one(
        "    match: {topics: [is_threat, recognition]}\n"
        "    count: {at_least: 2, within: 6h}\n    group_by: [topic]\n"))
    both = insert_article(engine, topics={"is_threat": 0.9, "recognition": 0.6})
    assert run_tick(engine, rules, NOW).alerts == []
    insert_article(engine, topics={"recognition": 0.7})  # recognition's first of its own
    assert run_tick(engine, rules, later(1)).alerts == []
    second = insert_article(engine, topics={"is_threat": 0.8})
    assert len(run_tick(engine, rules, later(2)).alerts) == 1
    (alert,) = _alerts(engine)
    assert alert.group == {"topic": "is_threat"}
    assert {a.id for a in alert.articles} == {both, second}
    assert alert.reason.startswith("2 matching article(s)")


def test_a_spike_against_the_baseline_fires_once(engine: Engine) -> None:
    rules = _rules(engine, _one(
        "    match: {topics: [recognition]}\n"
        "    spike: {within: 1h, baseline: 1d, ratio: 3, min_count: 3}\n"))
    insert_article(engine, topics={"drug_trafficking": 0.7},  # the store watches since
                   published=NOW - timedelta(hours=26))
    for hours in range(2, 24, 3):  # a quiet baseline: 8 articles in 22 hours
        insert_article(engine, topics={"recognition": 0.7},
                       published=NOW - timedelta(hours=hours))
    assert run_tick(engine, rules, NOW).alerts == []
    for minutes in (50, 30):
        insert_article(engine, topics={"recognition": 0.7},
                       published=NOW - timedelta(minutes=minutes))
    assert run_tick(engine, rules, NOW).alerts == []  # 2 < min_count
    insert_article(engine, topics={"recognition": 0.7}, published=NOW)
    assert len(run_tick(engine, rules, NOW).alerts) == 1
    (alert,) = _alerts(engine)
    assert alert.articles_total == 3
    assert "ratio" in alert.reason
    assert "over 1d of history (24 window(s))" in alert.reason
    insert_article(engine, topics={"recognition": 0.7}, published=later(60))
    assert run_tick(engine, rules, later(120)).alerts == []  # same episode


@pytest.mark.parametrize(("min_history", "fires"), [("", False), ("min_history: 4h", True)])
def test_no_spike_is_decided_before_the_baseline_holds_enough_history(
        engine: Engine, min_history: str, fires: bool) -> None:
    """Issue 18: minutes after a new install an empty baseline made every burst a spike."""
    rules = _rules(engine, _one(
        "    match: {topics: [recognition]}\n"
        f"    spike: {{within: 1h, baseline: 1w, ratio: 3, min_count: 3, {min_history}}}\n"))
    insert_article(engine, topics={"is_threat": 0.7}, published=NOW - timedelta(hours=6))
    for minutes in (40, 20, 0):  # a burst, six hours after the first article was stored
        insert_article(engine, topics={"recognition": 0.7},
                       published=NOW - timedelta(minutes=minutes))
    alerts = run_tick(engine, rules, NOW).alerts
    assert bool(alerts) == fires
    if fires:
        (alert,) = _alerts(engine)
        assert "over 5h of history (5 window(s))" in alert.reason
        assert "ratio inf" in alert.reason  # an empty but watched baseline
    (report,) = backtest(engine, rules, NOW - timedelta(days=1), NOW)
    assert report.alerts == (1 if fires else 0)


def test_spike_min_history_must_lie_between_within_and_baseline() -> None:
    with pytest.raises(ConfigError, match="spike: min_history must be between"):
        parse_rules(_one("    match: {topics: [recognition]}\n"
                         "    spike: {within: 1h, baseline: 1d, ratio: 3, min_history: 2d}\n"))


def test_a_throttled_group_alerts_again_only_after_the_interval(engine: Engine) -> None:
    rules = _rules(engine, _one("    match: {topics: [is_threat]}\n    throttle: 10m\n"))
    insert_article(engine, topics={"is_threat": 0.7})
    assert len(run_tick(engine, rules, NOW).alerts) == 1
    held = insert_article(engine, topics={"is_threat": 0.7})
    assert run_tick(engine, rules, later(60)).alerts == []
    assert run_tick(engine, rules, later(599)).alerts == []
    assert len(run_tick(engine, rules, later(600)).alerts) == 1
    assert [a.id for a in _alerts(engine)[-1].articles] == [held]
    assert run_tick(engine, rules, later(1800)).alerts == []


def test_a_held_article_matched_again_is_held_once_and_alerted_once(engine: Engine) -> None:
    """`group.decide` trusts the seen check: an article already held, whose hits come
    again (re-enrichment) or which a count window brings back, is not held twice."""
    rules = _rules(engine, _one("    match: {topics: [is_threat]}\n"
                                "    count: {at_least: 1, within: 6h}\n    throttle: 10m\n"))
    insert_article(engine, topics={"is_threat": 0.7})
    assert len(run_tick(engine, rules, NOW).alerts) == 1
    held = insert_article(engine, topics={"is_threat": 0.7})
    assert run_tick(engine, rules, later(60)).alerts == []
    _replace_hits(engine, held)  # the held article's hits again
    other = insert_article(engine, topics={"is_threat": 0.7})  # its window brings `held`
    assert run_tick(engine, rules, later(120)).alerts == []
    assert sorted(aid for _, aid in held_pairs(engine)) == sorted([held, other])
    assert sorted(aid for _, aid in ledger_pairs(engine)) == sorted(  # each taken once
        [*(aid for _, aid in alerted_pairs(engine)), held, other])
    assert len(run_tick(engine, rules, later(600)).alerts) == 1
    assert sorted(a.id for a in _alerts(engine)[-1].articles) == sorted([held, other])
    assert run_tick(engine, rules, later(1300)).alerts == []


def test_a_late_hit_below_the_watermark_is_still_evaluated(engine: Engine) -> None:
    """PostgreSQL may commit id 5 after id 6, even an hour later (issue 16): unevaluated
    rows are read whatever their id."""
    rules = _rules(engine, _one("    match: {topics: [is_threat]}\n"))
    early = insert_article(engine, topics={})
    late = insert_article(engine, topics={})
    with engine.begin() as conn:
        conn.execute(tables.topic_hits.insert().values(
            id=1006, article_id=early, topic="is_threat", score=0.7, evidence=[],
            topics_version="v1", published=NOW, created_at=NOW))
    assert len(run_tick(engine, rules, NOW).alerts) == 1
    with engine.connect() as conn:
        cursor = load_cursor(conn)
    assert cursor.watermark == 1006
    with engine.begin() as conn:
        conn.execute(tables.topic_hits.insert().values(
            id=1005, article_id=late, topic="is_threat", score=0.7, evidence=[],
            topics_version="v1", published=NOW, created_at=NOW))
    assert len(run_tick(engine, rules, later(3600)).alerts) == 1
    assert run_tick(engine, rules, later(3601)).alerts == []


def test_evaluated_hits_are_marked_and_not_read_again(engine: Engine) -> None:
    insert_article(engine, topics={"is_threat": 0.7})
    with engine.begin() as conn:
        batch, _ = next_batch(conn, Cursor(), NOW)
        assert batch.count == 1
        mark_evaluated(conn, batch)
        again, _ = next_batch(conn, Cursor(), NOW)
        assert again.count == 0


def test_skip_history_starts_after_the_newest_hit(engine: Engine) -> None:
    rules = _rules(engine, _one("    match: {topics: [is_threat]}\n"))
    insert_seed(engine)
    assert skip_history(engine, NOW) > 0
    assert run_tick(engine, rules, NOW).alerts == []
    insert_article(engine, topics={"is_threat": 0.7})
    assert len(run_tick(engine, rules, NOW).alerts) == 1


def test_backtest_counts_alerts_per_day_and_writes_nothing(engine: Engine,
                                                           tmp_path: Path) -> None:
    rules = _rules(engine, _one("    match: {topics: [is_threat]}\n    throttle: 6h\n"
                                "  - name: quiet\n    channels: [out]\n"
                                "    match: {topics: [nothing_like_it]}\n"))
    for day, hours in ((0, (1, 2, 9)), (1, (3,)), (3, (5, 6))):
        for hour in hours:
            insert_article(engine, title=f"day {day} hour {hour}", topics={"is_threat": 0.8},
                           published=NOW + timedelta(days=day, hours=hour))
    reports = backtest(engine, rules, NOW, NOW + timedelta(days=5), samples=2)
    by_rule = {r.rule: r for r in reports}
    threat = by_rule["r"]
    # Oct 21 13:00 fires; 14:00 is held until 19:05; 21:00 until 01:05 on Oct 22. Oct 22
    # 15:00 fires. Oct 24 17:00 fires; 18:00 is held until 23:05.
    assert {d.isoformat(): n for d, n in threat.per_day.items()} == {
        "2021-10-21": 2, "2021-10-22": 2, "2021-10-24": 2}
    assert threat.alerts == 6
    assert threat.articles == 6
    assert [s.title for s in threat.samples] == ["day 0 hour 1", "day 0 hour 2"]
    assert by_rule["quiet"].alerts == 0
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(tables.alerts)).scalar() == 0
        assert conn.execute(select(func.count()).select_from(tables.alert_state)).scalar() == 0
