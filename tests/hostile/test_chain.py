"""Hostile feed items all the way: HTTP -> producer (`refresh`) -> Kafka -> enrich (`serve`)
-> Kafka -> store (`run_store`) -> PostgreSQL. Script tags, NUL and control characters,
absurd dates and non-English text arrive in SQL as clean plain text with the fetch time
as a flagged estimate, each article once, none with a false topic hit, and nothing is
dead-lettered: repaired input is not poison.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from consumers.enrich.enrich import Enricher
from newswatch.daemon import StopFlag
from newswatch.db import make_engine
from producers.daemon import build_context, close_context
from producers.refresh import refresh
from producers.state import Store
from schemas import tables
from schemas.feeds_file import FeedConfig
from schemas.topics import TopicNames
from tests.hostile.harness import (
    DEMO_FEEDS,
    FEEDS,
    Metrics,
    enrich_until_caught_up,
    prefix,
    read_all,
    store_until_caught_up,
)
from tests.producer_fixtures import articles_topic, producer_settings
from tests.support.feed_server import FeedServer

pytestmark = pytest.mark.integration

SOURCES = [FEEDS / "script-tags.xml", FEEDS / "control-chars.xml", FEEDS / "absurd-dates.xml",
           DEMO_FEEDS / "oren-ru-regional-russia.xml", DEMO_FEEDS / "qq-tech-china.xml"]
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


@pytest.fixture
def produced(kafka_bootstrap: str, tmp_path: Path, feed_server: FeedServer
             ) -> Iterator[tuple[str, int]]:
    """The hostile feeds published by the producer; (topic prefix, articles published)."""
    topics = prefix()
    config = producer_settings(kafka_bootstrap, f"sqlite:///{tmp_path / 'p.db'}", topics)
    articles_topic(config)
    engine = make_engine(config.sqlalchemy_url())
    tables.metadata.create_all(engine)
    store = Store(engine)
    ctx = build_context(config, store, StopFlag())
    try:
        feeds = [FeedConfig(id=f"chain-{path.stem[:40]}",
                            url=feed_server.feed(f"/{path.name}", path.read_bytes()))
                 for path in SOURCES]
        store.sync_feeds(feeds)
        outcomes = [refresh(feed, ctx) for feed in feeds]
        assert [o.status for o in outcomes] == ["published"] * len(feeds)
        yield topics, sum(o.published for o in outcomes)
    finally:
        close_context(ctx)
        engine.dispose()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_hostile_items_reach_postgresql_clean_once_and_without_false_hits(
        kafka_bootstrap: str, produced: tuple[str, int], engine: Engine,
        enricher: Enricher) -> None:
    topics, published = produced
    config = producer_settings(kafka_bootstrap, "sqlite://", topics)
    names = TopicNames.with_prefix(topics)
    counted = Metrics()

    enrich_until_caught_up(config, enricher)
    store_until_caught_up(config, engine, f"chain-{topics}")

    with engine.connect() as conn:
        rows = list(conn.execute(select(tables.articles)))
        hits = conn.execute(select(func.count()).select_from(tables.topic_hits)).scalar()
    assert len(rows) == published == len({row.id for row in rows})
    for row in rows:
        for value in (row.title, row.summary, row.content, row.url or ""):
            assert "\x00" not in value
            assert not CONTROL.search(value), (row.guid, value)
            assert not re.search(r"<\s*script|onerror|javascript:", value, re.IGNORECASE)
    absurd = [row for row in rows if row.feed_id == "chain-absurd-dates"
              and (row.guid or "").startswith("hostile-")]
    assert len(absurd) == 8
    assert all(row.published_estimated and row.published == row.fetched_at for row in absurd)
    assert hits == 0  # nothing here is about the three topics, in any language
    assert read_all(kafka_bootstrap, names.dlq) == []
    assert counted.delta("newswatch_dead_lettered_total", stage="enrich",
                         error="ValidationError") == 0
