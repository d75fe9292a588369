"""store_batch on SQLite and PostgreSQL: idempotent, replaces on re-enrichment, atomic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import SQLAlchemyError

from consumers.store import StoreResult, store_batch
from schemas import tables
from tests.factories import (
    BASE_TIME,
    make_article,
    make_enriched,
    make_entity,
    make_hit,
    realistic_batch,
)


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            table.name: conn.execute(select(func.count()).select_from(table)).scalar_one()
            for table in (tables.articles, tables.entities, tables.article_entities,
                          tables.topic_hits)
        }


def hits_of(engine: Engine, article_id: str) -> dict[str, Any]:
    th = tables.topic_hits.c
    with engine.connect() as conn:
        rows = conn.execute(select(th.topic, th.score, th.topics_version, th.id, th.evidence)
                            .where(th.article_id == article_id)).all()
    return {row.topic: row for row in rows}


def entities_of(engine: Engine, article_id: str) -> dict[tuple[str, str], int]:
    e, ae = tables.entities.c, tables.article_entities.c
    with engine.connect() as conn:
        rows = conn.execute(select(e.name, e.label, ae.count.label("n"))
                            .join(tables.article_entities, ae.entity_id == e.id)
                            .where(ae.article_id == article_id)).all()
    return {(row.name, row.label): row.n for row in rows}


def article_row(engine: Engine, article_id: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(tables.articles)
                            .where(tables.articles.c.id == article_id)).one()


def test_a_batch_is_stored_with_entities_and_hits(engine: Engine) -> None:
    batch = realistic_batch(40, seed=1, vocabulary=60)

    result = store_batch(engine, batch)

    assert result.inserted == 40
    assert result.replaced == result.unchanged == 0
    wanted_links = sum(len(item.entities) for item in batch)
    wanted_hits = sum(len(item.topic_hits) for item in batch)
    assert result.entity_links == wanted_links
    assert result.hits == wanted_hits
    got = counts(engine)
    assert got["articles"] == 40
    assert got["article_entities"] == wanted_links
    assert got["topic_hits"] == wanted_hits
    assert got["entities"] == len({(e.name, e.label) for i in batch for e in i.entities})
    first = batch[0]
    stored_hits = hits_of(engine, first.article.id)
    assert {hit.topic: hit.score for hit in first.topic_hits} == {
        topic: row.score for topic, row in stored_hits.items()}
    evidence = stored_hits[first.topic_hits[0].topic].evidence
    assert evidence[0]["sentence"] == first.topic_hits[0].evidence[0].sentence
    assert entities_of(engine, first.article.id) == {
        (e.name, e.label): e.count for e in first.entities}


def test_the_article_row_keeps_every_field(engine: Engine) -> None:
    item = make_enriched(make_article(
        title="Russia invites the Taliban", guid="urn:1", authors=("A", "B"), tags=("world",),
        published_estimated=True, updated=BASE_TIME + timedelta(hours=1), revision=2,
        content_hash="c" * 64, language="en-GB"))

    store_batch(engine, [item])

    row = article_row(engine, item.article.id)
    assert row.title == "Russia invites the Taliban"
    assert row.guid == "urn:1"
    assert row.authors == ["A", "B"]
    assert row.tags == ["world"]
    assert row.published_estimated is True
    assert row.revision == 2
    assert row.content_hash == "c" * 64
    assert row.topics_version == item.topics_version
    assert row.published.replace(tzinfo=row.published.tzinfo or UTC) == BASE_TIME


def test_replaying_a_batch_changes_nothing(engine: Engine) -> None:
    batch = realistic_batch(30, seed=2, vocabulary=50)
    store_batch(engine, batch)
    before = counts(engine)
    ids_before = {k: row.id for k, row in hits_of(engine, batch[0].article.id).items()}
    stored_at = article_row(engine, batch[0].article.id).stored_at

    result = store_batch(engine, batch)

    assert result == StoreResult(unchanged=30)
    assert counts(engine) == before
    # Hits keep their ids: the alert evaluator's watermark sees nothing new.
    assert {k: row.id for k, row in hits_of(engine, batch[0].article.id).items()} == ids_before
    assert article_row(engine, batch[0].article.id).stored_at == stored_at


def test_a_newer_topics_version_replaces_hits_and_entities(engine: Engine) -> None:
    article = make_article()
    first = make_enriched(article, topics_version="v1",
                          entities=[make_entity("Taliban", "ORG", 3),
                                    make_entity("Moscow", "GPE", 1)],
                          topics=[make_hit("recognition", 0.6), make_hit("is_threat", 0.7)])
    again = make_enriched(article, topics_version="v2",
                          enriched_at=first.enriched_at + timedelta(hours=1),
                          entities=[make_entity("Taliban", "ORG", 4)],
                          topics=[make_hit("recognition", 0.9)])
    store_batch(engine, [first])

    result = store_batch(engine, [again])

    assert result.replaced == 1
    hits = hits_of(engine, article.id)
    assert set(hits) == {"recognition"}
    assert hits["recognition"].score == pytest.approx(0.9)
    assert hits["recognition"].topics_version == "v2"
    assert entities_of(engine, article.id) == {("Taliban", "ORG"): 4}
    assert article_row(engine, article.id).topics_version == "v2"
    # Moscow stays in the entity dictionary; only the link went.
    assert counts(engine)["entities"] == 2


def test_an_older_enrichment_arriving_late_changes_nothing(engine: Engine) -> None:
    article = make_article()
    newer = make_enriched(article, topics_version="v2", enriched_at=BASE_TIME + timedelta(1),
                          topics=[make_hit("recognition", 0.9)])
    older = make_enriched(article, topics_version="v1", enriched_at=BASE_TIME,
                          topics=[make_hit("is_threat", 0.5)])
    store_batch(engine, [newer])

    result = store_batch(engine, [older])

    assert result == StoreResult(unchanged=1)
    assert set(hits_of(engine, article.id)) == {"recognition"}


def test_a_new_revision_of_the_article_replaces_its_text(engine: Engine) -> None:
    first = make_enriched(make_article(url="https://x.example/a", title="Talks planned",
                                       content_hash="h0"))
    revised = make_enriched(
        make_article(url="https://x.example/a", title="Talks held", revision=1,
                     content_hash="h1"),
        topics=[make_hit("is_threat", 0.8)], enriched_at=first.enriched_at + timedelta(1))
    store_batch(engine, [first])

    assert store_batch(engine, [revised]).replaced == 1

    assert article_row(engine, first.article.id).title == "Talks held"
    assert set(hits_of(engine, first.article.id)) == {"is_threat"}
    assert counts(engine)["articles"] == 1


def test_duplicates_within_one_batch_keep_the_newest(engine: Engine) -> None:
    article = make_article()
    old = make_enriched(article, topics_version="v1", topics=[make_hit("is_threat", 0.5)])
    new = make_enriched(article, topics_version="v2", enriched_at=old.enriched_at + timedelta(1),
                        topics=[make_hit("recognition", 0.9)])

    result = store_batch(engine, [new, old, new])

    assert result.inserted == 1
    assert result.unchanged == 2
    assert set(hits_of(engine, article.id)) == {"recognition"}


def test_entities_are_shared_and_told_apart_by_label(engine: Engine) -> None:
    one = make_enriched(entities=[make_entity("Georgia", "GPE"), make_entity("Taliban", "ORG")])
    two = make_enriched(entities=[make_entity("Georgia", "PERSON"),
                                  make_entity("Taliban", "ORG")])
    store_batch(engine, [one])

    result = store_batch(engine, [two])

    assert result.entities_created == 1
    assert counts(engine)["entities"] == 3
    assert entities_of(engine, two.article.id) == {("Georgia", "PERSON"): 1,
                                                   ("Taliban", "ORG"): 1}


def test_repeated_entities_and_topics_in_one_message_are_merged(engine: Engine) -> None:
    item = make_enriched(
        entities=[make_entity("Islamic State", "ORG", 2), make_entity("Islamic State", "ORG", 3)],
        topics=[make_hit("is_threat", 0.4), make_hit("is_threat", 0.7)])

    store_batch(engine, [item])

    assert entities_of(engine, item.article.id) == {("Islamic State", "ORG"): 5}
    assert hits_of(engine, item.article.id)["is_threat"].score == pytest.approx(0.7)


def test_nul_characters_and_naive_times_are_stored(engine: Engine) -> None:
    # PostgreSQL text cannot hold NUL; a feed that sends one must not lose the article.
    naive = datetime(2021, 10, 21, 12, 0)
    item = make_enriched(
        make_article(title="Tali\x00ban", summary="a\x00b", published=naive),
        entities=[make_entity("Mos\x00cow", "GPE")],
        topics=[make_hit("recognition", 0.5, phrases=("recog\x00nise",))])

    assert store_batch(engine, [item]).inserted == 1

    row = article_row(engine, item.article.id)
    assert row.title == "Taliban"
    assert row.published.replace(tzinfo=row.published.tzinfo or UTC) == naive.replace(tzinfo=UTC)
    assert entities_of(engine, item.article.id) == {("Moscow", "GPE"): 1}
    assert hits_of(engine, item.article.id)["recognition"].evidence[0]["phrase"] == "recognise"


def test_times_with_an_offset_are_stored_as_utc(engine: Engine) -> None:
    plus_two = datetime(2021, 10, 21, 16, 0, tzinfo=timezone(timedelta(hours=2)))
    item = make_enriched(make_article(published=plus_two))

    store_batch(engine, [item])

    row = article_row(engine, item.article.id)
    assert row.published.replace(tzinfo=row.published.tzinfo or UTC) == datetime(
        2021, 10, 21, 14, 0, tzinfo=UTC)


def test_an_empty_batch_does_nothing(engine: Engine) -> None:
    assert store_batch(engine, []) == StoreResult()


def test_a_failing_batch_leaves_nothing_behind(engine: Engine) -> None:
    # The topic_hits insert comes after the articles and entity links: hiding the table
    # makes the batch fail half-way, and nothing of it may remain but, on PostgreSQL, the
    # entities, which are created before the batch's transaction (issue 16: a frozen store
    # process held the others back on them) and reused by the retry.
    batch = realistic_batch(5, seed=3, vocabulary=20)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE topic_hits RENAME TO topic_hits_hidden"))
    try:
        with pytest.raises(SQLAlchemyError):
            store_batch(engine, batch)
    finally:
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE topic_hits_hidden RENAME TO topic_hits"))
    left = counts(engine)
    entities = left.pop("entities")
    assert left == {"articles": 0, "article_entities": 0, "topic_hits": 0}
    assert (entities > 0) == (engine.dialect.name == "postgresql")
    assert store_batch(engine, batch).inserted == 5
    if entities:
        assert counts(engine)["entities"] == entities, "the retry created entities again"


def test_large_batches_are_split_into_statements_that_fit(engine: Engine) -> None:
    # 1,200 articles x 10 entities: above every chunk size and SQLite's variable limit.
    batch = realistic_batch(1200, seed=4, vocabulary=4000)

    result = store_batch(engine, batch)

    assert result.inserted == 1200
    assert counts(engine)["article_entities"] == 12_000


def test_replaced_hits_get_new_higher_ids(engine: Engine) -> None:
    # The alert evaluator reads topic_hits above a watermark id: hits that replace the
    # newest ones must not get their ids back (SQLite reuses max(id) without AUTOINCREMENT).
    article = make_article()
    first = make_enriched(article, topics_version="v1", topics=[make_hit("recognition", 0.5)])
    store_batch(engine, [first])
    watermark = hits_of(engine, article.id)["recognition"].id

    store_batch(engine, [make_enriched(article, topics_version="v2",
                                       enriched_at=first.enriched_at + timedelta(hours=1),
                                       topics=[make_hit("recognition", 0.9)])])

    assert hits_of(engine, article.id)["recognition"].id > watermark


def _dump(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the store's tables as the driver returns it, sorted."""
    with engine.connect() as conn:
        return {table.name: sorted(tuple(row) for row in conn.exec_driver_sql(
                    f"SELECT * FROM {table.name}"))
                for table in (tables.articles, tables.entities, tables.article_entities,
                              tables.topic_hits)}


def test_sqlite_driver_inserts_store_what_sqlalchemys_executemany_stored(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """`write._sqlite_insert` (the driver's executemany on tuples made with SQLAlchemy's
    bind processors) leaves the same bytes in every column as SQLAlchemy's own
    executemany, which `_driver_insert` returning None falls back to: a batch, its
    replay and a re-enrichment, with offsets, naive times, NUL and non-ASCII text."""
    from consumers.store import write
    from newswatch.db import make_engine
    from newswatch.migrate import upgrade

    first = realistic_batch(60, seed=3)
    odd = make_enriched(make_article(title="Zürich \x00 talks", authors=["Ana Ñ"],
                                     tags=["a", "b"], published=datetime(
                                         2026, 3, 1, 9, 30, tzinfo=timezone(
                                             timedelta(hours=5))),
                                     updated=datetime(2026, 3, 1, 10, 0)),
                        entities=[make_entity("Zürich", "GPE", 2)],
                        topics=[make_hit("is_threat", 0.7)])
    again = [make_enriched(item.article.model_copy(update={"revision": 1}),
                           entities=item.entities[:3], topics=item.topic_hits,
                           topics_version="v9", enriched_at=BASE_TIME + timedelta(hours=1))
             for item in first[:10]]
    dumps = []
    for way in ("driver", "sqlalchemy"):
        if way == "sqlalchemy":
            monkeypatch.setattr(write, "_driver_insert", lambda *args: None)
        engine = make_engine(f"sqlite:///{tmp_path / way}.db")
        upgrade(engine)
        for batch in (first, [odd], first, again):
            store_batch(engine, batch, now=BASE_TIME)
        dumps.append(_dump(engine))
        engine.dispose()
    assert dumps[0] == dumps[1]
    assert len(dumps[0]["article_entities"]) > 500
