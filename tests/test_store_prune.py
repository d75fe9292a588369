"""Retention on SQLite and PostgreSQL: old articles go with their hits and entity links."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, Table, func, select

from consumers.store import store_batch
from consumers.store.prune import prune
from newswatch.daemon import StopFlag
from schemas import tables
from tests.factories import BASE_TIME, realistic_batch

NOW = BASE_TIME + timedelta(days=100)


def count(engine: Engine, table: Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def remaining_ids(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(tables.articles.c.id)).scalars())


@pytest.fixture
def stored(engine: Engine) -> tuple[list[str], list[str]]:
    """Ten articles published 100 days before NOW, and five published 10 days before."""
    old = realistic_batch(10, seed=20, vocabulary=30, start=BASE_TIME)
    new = realistic_batch(5, seed=21, vocabulary=30, start=NOW - timedelta(days=10))
    store_batch(engine, old + new)
    return [i.article.id for i in old], [i.article.id for i in new]


def test_prune_deletes_old_articles_and_what_hangs_off_them(
    engine: Engine, stored: tuple[list[str], list[str]]
) -> None:
    old, new = stored
    links_before = count(engine, tables.article_entities)
    hits_before = count(engine, tables.topic_hits)
    entities_before = count(engine, tables.entities)

    result = prune(engine, timedelta(days=90), now=NOW)

    assert result.articles == 10
    assert remaining_ids(engine) == set(new)
    assert count(engine, tables.article_entities) == links_before - result.entity_links
    assert count(engine, tables.topic_hits) == hits_before - result.topic_hits
    assert result.entity_links == 100
    with engine.connect() as conn:
        orphans = conn.execute(
            select(func.count()).select_from(tables.article_entities)
            .where(tables.article_entities.c.article_id.in_(old))).scalar_one()
    assert orphans == 0
    # Entities are a shared dictionary: they stay.
    assert count(engine, tables.entities) == entities_before


def test_prune_works_in_bounded_batches_and_again_finds_nothing(
    engine: Engine, stored: tuple[list[str], list[str]]
) -> None:
    result = prune(engine, timedelta(days=90), now=NOW, batch_size=3)

    assert result.articles == 10
    assert result.batches == 4  # 3 + 3 + 3 + 1
    assert prune(engine, timedelta(days=90), now=NOW, batch_size=3).articles == 0


def test_prune_stops_when_asked(engine: Engine, stored: tuple[list[str], list[str]]) -> None:
    stop = StopFlag()
    stop.stop()
    assert prune(engine, timedelta(days=90), now=NOW, stop=stop).articles == 0
    assert len(remaining_ids(engine)) == 15


def test_a_pruned_article_seen_again_is_stored_again(engine: Engine) -> None:
    # Replaying an old topic after a prune must not trip over leftovers.
    batch = realistic_batch(3, seed=22, vocabulary=10, start=BASE_TIME)
    store_batch(engine, batch)
    prune(engine, timedelta(days=90), now=NOW)

    assert store_batch(engine, batch).inserted == 3
    assert count(engine, tables.article_entities) == 30
