"""`rules test` (the backtest) and the daemon decide the same alerts on the same history.

One history of articles over three days (several feeds, topics and places, with bursts)
is fed to the live evaluator as a daemon would see it: each article stored at the moment
it was published, an evaluation (`outbox.run_tick`, the daemon's transaction) right
after, and evaluations at the moments throttled groups and digests fall due. Then the
backtest replays the same stored history in memory. The alerts must be the same, one for
one: rule, kind, group, reason, articles, dedup key and time. Every rule type that
docs/alerts.md describes is in the rules file: per article, group_by (topic, feed,
entity), throttle, digest, count window with distinct feeds, and spike.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select

from consumers.alert.backtest import backtest
from consumers.alert.compile import CompiledRules, compile_rules
from consumers.alert.outbox import run_tick
from consumers.alert.rules import parse_rules
from newswatch.utc import as_utc
from schemas import tables
from tests.alert.conftest import NOW, insert_article

RULES = """
channels: {out: {type: terminal}}
rules:
  - name: per-article
    match: {topics: [is_threat]}
    channels: [out]
  - name: by-topic
    match: {topics: [is_threat, drug_trafficking], min_score: 0.5}
    group_by: [topic]
    channels: [out]
  - name: by-feed-throttled
    match: {topics: [recognition]}
    group_by: [feed]
    throttle: 3h
    channels: [out]
  - name: by-place
    match: {entities: {any: [Afghanistan, Syria, Russia]}}
    group_by: ["entity:GPE"]
    throttle: 1h
    channels: [out]
  - name: daily-digest
    match: {topics: [drug_trafficking]}
    group_by: [feed]
    digest: 12h
    channels: [out]
  - name: burst
    match: {topics: [is_threat]}
    count: {at_least: 3, within: 2h, distinct_feeds: 2}
    group_by: [rule]
    throttle: 1h
    channels: [out]
  - name: burst-by-place
    match: {topics: [is_threat, drug_trafficking]}
    count: {at_least: 2, within: 3h}
    group_by: [topic, "entity:GPE"]
    channels: [out]
  - name: surge
    match: {topics: [recognition]}
    spike: {within: 2h, baseline: 1d, ratio: 2, min_count: 3, min_history: 12h}
    channels: [out]
  - name: surge-z
    match: {topics: [is_threat]}
    spike: {within: 1h, baseline: 1d, z_score: 2, min_count: 3}
    channels: [out]
"""

FEEDS = ("reuters", "bbc", "aljazeera", "tass")
PLACES = ("Afghanistan", "Syria", "Russia")
TOPICS = ("is_threat", "drug_trafficking", "recognition")


@dataclass(frozen=True)
class Story:
    published: datetime
    feed: str
    topics: dict[str, float]
    places: tuple[str, ...]


def history(seed: int = 18) -> list[Story]:
    """About 200 articles over three days: a steady trickle and four bursts."""
    rng = random.Random(seed)
    stories: list[Story] = []

    def story(at: datetime) -> Story:
        topics = {topic: round(rng.uniform(0.3, 0.95), 2)
                  for topic in rng.sample(TOPICS, rng.choice((1, 1, 2)))}
        places = tuple(rng.sample(PLACES, rng.choice((0, 1, 1, 2))))
        return Story(at, rng.choice(FEEDS), topics, places)

    for _ in range(150):  # the trickle, to the minute
        stories.append(story(NOW + timedelta(minutes=rng.randrange(0, 3 * 24 * 60))))
    for hours in (20, 31, 50, 66):  # bursts of a dozen articles within an hour
        start = NOW + timedelta(hours=hours)
        for _ in range(12):
            stories.append(story(start + timedelta(minutes=rng.randrange(0, 60))))
    # Several articles at one moment (one poll of a busy feed).
    moment = NOW + timedelta(hours=40)
    stories.extend(story(moment) for _ in range(4))
    return sorted(stories, key=lambda s: s.published)


def store(engine: Engine, item: Story) -> None:
    insert_article(engine, title=f"{item.feed} at {item.published:%d %H:%M}",
                   published=item.published, feed_id=item.feed, feed_name=item.feed,
                   topics=item.topics, entities=[(p, "GPE", 3 - i)
                                                 for i, p in enumerate(item.places)])


def next_release(engine: Engine, before: datetime | None) -> datetime | None:
    """When the daemon would next release a throttled group or digest, if before ``before``."""
    groups = tables.alert_groups
    query = select(func.min(groups.c.release_at)).where(groups.c.release_at.is_not(None))
    if before is not None:
        query = query.where(groups.c.release_at < before)
    value = engine.connect().execute(query).scalar()
    return None if value is None else as_utc(value)


def tick(engine: Engine, rules: CompiledRules, now: datetime) -> None:
    while run_tick(engine, rules, now).more:
        pass


def run_live(engine: Engine, rules: CompiledRules, stories: Sequence[Story],
             until: datetime) -> None:
    """The daemon on this history: stored as published, evaluated at once and when due."""
    moments = sorted({s.published for s in stories})
    for moment in moments:
        while (due := next_release(engine, moment)) is not None:
            tick(engine, rules, due)
        for item in stories:
            if item.published == moment:
                store(engine, item)
        tick(engine, rules, moment)
    while (due := next_release(engine, None)) is not None and due <= until:
        tick(engine, rules, due)


def comparable(payload: dict[str, Any]) -> tuple[Any, ...]:
    return (payload["created_at"], payload["rule"]["name"], payload["kind"],
            sorted(payload["group"].items()), payload["reason"], payload["dedup_key"],
            [a["id"] for a in payload["articles"]], payload["articles_total"])


def live_alerts(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        rows = conn.execute(select(tables.alerts.c.payload)).scalars().all()
    return sorted(comparable(payload) for payload in rows)


def test_the_backtest_decides_the_daemons_alerts_one_for_one(engine: Engine) -> None:
    rules = compile_rules(parse_rules(RULES).rules, engine.dialect.name)
    stories = history()
    until = NOW + timedelta(days=4)
    run_live(engine, rules, stories, until)
    live = live_alerts(engine)

    reports = backtest(engine, rules, NOW - timedelta(days=1), until)
    replayed = sorted(comparable(payload.model_dump(mode="json"))
                      for report in reports for payload in report.decided)

    by_rule = {report.rule: report.alerts for report in reports}
    # The history exercises every rule: each fired (a digest and a spike included).
    print(by_rule)
    assert all(by_rule[name] > 0 for name in by_rule), by_rule
    assert any(alert[2] == "digest" for alert in live)
    assert len(live) == len(replayed)
    for mine, theirs in zip(live, replayed, strict=True):
        assert mine == theirs
