"""bench.store_fill: the rows ``bench_store --stored N`` writes before timing the store are
the rows the store itself writes (links, hits, searchable text), and the store writes on
top of them as usual."""

from __future__ import annotations

from sqlalchemy import Engine, func, select

from bench.store_fill import LINKS_PER_ARTICLE, VOCABULARY, fill_stored
from consumers.store.write import store_batch
from consumers.web.search import SearchQuery, search_articles
from schemas import tables
from tests.factories import realistic_batch


def _count(engine: Engine, table: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_the_fill_writes_what_the_store_writes_and_the_store_writes_beside_it(
        engine: Engine) -> None:
    fill_stored(engine, 250)

    assert _count(engine, tables.articles) == 250
    assert _count(engine, tables.article_entities) == 250 * LINKS_PER_ARTICLE
    assert _count(engine, tables.topic_hits) == 250
    assert _count(engine, tables.entities) == VOCABULARY
    a = tables.articles.c
    with engine.connect() as conn:
        feeds = conn.execute(select(func.count(func.distinct(a.feed_id)))).scalar_one()
        first, last = conn.execute(select(func.min(a.published), func.max(a.published))).one()
        unevaluated = conn.execute(select(func.count()).select_from(tables.topic_hits)
                                   .where(tables.topic_hits.c.evaluated.is_(False))).scalar()
    assert feeds == 12
    assert (last - first).total_seconds() == 249  # one second apart
    assert unevaluated == 0  # old history: the alert evaluator has seen it
    # The filled text is in the search index as the store's would be.
    page = search_articles(engine, SearchQuery(text="minister"))
    assert page.hits
    assert all(hit.id.startswith("stored-") for hit in page.hits)

    result = store_batch(engine, realistic_batch(20, seed=3))
    assert result.inserted == 20
    assert _count(engine, tables.articles) == 270
