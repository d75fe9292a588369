"""Alerts on stories (SQLite and PostgreSQL): a rule grouped by story fires once for the
story, names it, and later articles of the story update the group instead of firing new
alerts; a spike fires on a story's growth."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from sqlalchemy import Engine, select

from consumers.alert.compile import compile_rules
from consumers.alert.outbox import run_tick
from consumers.alert.render import render_text, subject
from consumers.alert.rules import parse_rules
from consumers.store.write import store_batch
from consumers.stories.cluster import ClusterConfig
from consumers.stories.daemon import StoriesHandler, rebuild
from consumers.stories.record import take_lease
from schemas import tables
from schemas.alert_payload import AlertPayload
from schemas.messages import EnrichedArticle
from tests.factories import make_article, make_enriched, make_hit

T0 = datetime(2026, 7, 13, 22, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)
SHRINK = ["Trump signs order shrinking Bears Ears and Grand Staircase-Escalante monuments",
          "Trump shrinks Bears Ears, Grand Staircase-Escalante national monuments again",
          "Trump slashes Bears Ears, Grand Staircase-Escalante monuments in Utah",
          "President Trump shrinks Bears Ears and Grand Staircase-Escalante, again"]
FIRE = "Babylon Fire grows past 70,000 acres, remains 0% contained"


def _article(title: str, minutes: int, outlet: str) -> EnrichedArticle:
    return make_enriched(make_article(title=title, summary="", feed_id=outlet,
                                      feed_name=outlet,
                                      published=T0 + timedelta(minutes=minutes)),
                         entities=[], topics=[make_hit("monuments", 0.9, ["monuments"])])


def _pipeline(engine: Engine, items: list[EnrichedArticle]) -> None:
    """What store and the stories stage do with these articles (stored as they are
    published, so that a spike's baseline sees the history they make)."""
    store_batch(engine, items, now=max(item.article.published for item in items))
    with engine.begin() as connection:
        take_lease(connection, "test:1", datetime.now(UTC), LEASE)
    handler = StoriesHandler(engine, rebuild(engine, ClusterConfig()), "test:1", LEASE)
    handler([SimpleNamespace(value=item.to_bytes(), key=b"k", topic="t", partition=0,
                             offset=i) for i, item in enumerate(items)])


def _rules(engine: Engine, body: str):  # type: ignore[no-untyped-def]
    text = ("channels: {out: {type: terminal}}\nrules:\n  - name: r\n    channels: [out]\n"
            f"    match: {{topics: [monuments]}}\n{body}")
    return compile_rules(parse_rules(text).rules, engine.dialect.name)


def _alerts(engine: Engine) -> list[AlertPayload]:
    with engine.connect() as conn:
        rows = conn.execute(select(tables.alerts).order_by(tables.alerts.c.id)).all()
    return [AlertPayload.model_validate({**r.payload, "alert_id": r.id}) for r in rows]


def test_a_story_alert_fires_once_names_the_story_and_updates(engine: Engine) -> None:
    rules = _rules(engine, "    group_by: [rule, story]\n    throttle: 1h\n")
    first = [_article(SHRINK[0], 0, "ap"), _article(SHRINK[1], 5, "ksl"),
             _article(FIRE, 6, "moab")]
    _pipeline(engine, first)
    now = T0 + timedelta(minutes=10)
    assert len(run_tick(engine, rules, now).alerts) == 2  # one per story, not per article
    story_alert = next(a for a in _alerts(engine) if a.story and a.story.articles == 2)
    assert story_alert.story is not None
    assert story_alert.story.id == first[0].article.id
    assert story_alert.story.title == SHRINK[0]
    assert (story_alert.story.outlets, story_alert.articles_total) == (2, 2)
    assert story_alert.story.first_seen == T0
    assert story_alert.story.last_seen == T0 + timedelta(minutes=5)
    assert story_alert.articles[0].topics[0].evidence  # the best evidence travels along
    assert SHRINK[0] in subject(story_alert)
    assert "2 article(s) from 2 outlet(s)" in render_text(story_alert)

    # Two more outlets run the story: the group is updated, no new alert within 1h...
    _pipeline(engine, [_article(SHRINK[2], 20, "azcentral"), _article(SHRINK[3], 25, "kpvi")])
    assert run_tick(engine, rules, now + timedelta(minutes=30)).alerts == []
    # ...then one repeat that carries the two new articles and the story's new size.
    assert len(run_tick(engine, rules, now + timedelta(hours=1)).alerts) == 1
    repeat = _alerts(engine)[-1]
    assert repeat.story is not None
    assert repeat.story.id == story_alert.story.id
    assert (repeat.story.articles, repeat.story.outlets) == (4, 4)
    assert {a.title for a in repeat.articles} == {SHRINK[2], SHRINK[3]}
    assert "since the last alert" in repeat.reason
    assert run_tick(engine, rules, now + timedelta(hours=3)).alerts == []


def test_a_spike_fires_on_a_storys_growth(engine: Engine) -> None:
    rules = _rules(engine, "    group_by: [rule, story]\n"
                           "    spike: {within: 1h, baseline: 6h, ratio: 3, min_count: 3,"
                           " min_history: 4h}\n")
    _pipeline(engine, [_article(SHRINK[0], -300, "ap")])  # the story starts, quietly
    assert run_tick(engine, rules, T0 - timedelta(minutes=290)).alerts == []
    # Breaking: three more outlets within the hour.
    _pipeline(engine, [_article(title, minutes, outlet) for title, minutes, outlet in
                       ((SHRINK[1], 0, "ksl"), (SHRINK[2], 10, "az"), (SHRINK[3], 20, "kpvi"))])
    assert len(run_tick(engine, rules, T0 + timedelta(minutes=30)).alerts) == 1
    (alert,) = _alerts(engine)
    assert alert.story is not None
    assert alert.story.articles == 4
    assert "ratio" in alert.reason
