"""The stored lengths of `schemas.messages`: the columns, the numbers and the store agree.

Every bounded column that keeps a message field is sized by its `STORED_LENGTHS` entry;
on both databases a value of exactly that length is stored, and the store's edge refuses
one character more (as poison) before the database would refuse the whole batch.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import Column, Engine, String, select

from consumers.store import store_batch
from consumers.store.daemon import UnstorableMessageError, check_stored_lengths, decode
from schemas import tables
from schemas.feeds_file import FeedConfig
from schemas.messages import (
    ARTICLE_ID_LENGTH,
    STORED_LENGTHS,
    Article,
    EnrichedArticle,
)
from tests.factories import make_enriched, make_entity, make_hit

# Each message field with a stored length -> the columns that keep it.
COLUMNS: dict[str, list[Column[Any]]] = {
    "article.feed_id": [tables.articles.c.feed_id, tables.seen_items.c.feed_id,
                        tables.feeds.c.id],
    "article.language": [tables.articles.c.language, tables.story_articles.c.language],
    "article.content_hash": [tables.articles.c.content_hash,
                             tables.seen_items.c.content_hash],
    "topics_version": [tables.articles.c.topics_version, tables.topic_hits.c.topics_version],
    "topic_hits.topic": [tables.topic_hits.c.topic, tables.feedback.c.topic],
    "entities.label": [tables.entities.c.label],
    "entities.name": [tables.entities.c.name],  # TEXT: bounded by its index, see messages
}
ARTICLE_ID_COLUMNS = [tables.articles.c.id, tables.seen_items.c.article_id,
                      tables.article_entities.c.article_id, tables.topic_hits.c.article_id,
                      tables.alert_ledger.c.article_id, tables.feedback.c.article_id,
                      tables.story_articles.c.article_id, tables.stories.c.id]


def test_every_stored_length_names_its_columns() -> None:
    assert set(COLUMNS) == set(STORED_LENGTHS)


@pytest.mark.parametrize("path", sorted(COLUMNS))
def test_bounded_columns_are_as_long_as_the_schema_says(path: str) -> None:
    for column in COLUMNS[path]:
        if isinstance(column.type, String) and column.type.length is not None:
            assert column.type.length == STORED_LENGTHS[path], column
        else:
            assert path == "entities.name", f"{column} is unbounded"


def test_article_id_columns_hold_the_longest_id_the_model_accepts() -> None:
    assert Article.model_fields["id"].metadata[-1].max_length == ARTICLE_ID_LENGTH
    for column in ARTICLE_ID_COLUMNS:
        assert isinstance(column.type, String)
        assert column.type.length == ARTICLE_ID_LENGTH, column


def test_a_feed_id_that_feeds_yaml_accepts_fits_its_column() -> None:
    longest = "f" * STORED_LENGTHS["article.feed_id"]
    assert FeedConfig(id=longest, url="https://example.org/feed").id == longest
    with pytest.raises(ValidationError, match="pattern"):
        FeedConfig(id=longest + "f", url="https://example.org/feed")


def message_with(path: str, length: int) -> EnrichedArticle:
    value = "x" * length
    if path == "topic_hits.topic":
        return make_enriched(topics=[make_hit(value)])
    if path == "entities.label":
        return make_enriched(entities=[make_entity(label=value)])
    if path == "entities.name":
        return make_enriched(entities=[make_entity(name=value)])
    if path == "topics_version":
        return make_enriched(topics_version=value)
    return make_enriched(**{path.removeprefix("article."): value})


def stored_value(engine: Engine, path: str, enriched: EnrichedArticle) -> Any:
    article_id = enriched.article.id
    column = {"topic_hits.topic": tables.topic_hits.c.topic,
              "entities.label": tables.entities.c.label,
              "entities.name": tables.entities.c.name}.get(path)
    with engine.connect() as conn:
        if column is None:
            name = path.removeprefix("article.")
            return conn.execute(select(tables.articles.c[name])
                                .where(tables.articles.c.id == article_id)).scalar_one()
        return conn.execute(select(column)).scalars().all()


@pytest.mark.parametrize("path", sorted(STORED_LENGTHS))
def test_the_longest_value_is_stored_and_one_more_is_poison(engine: Engine, path: str) -> None:
    limit = STORED_LENGTHS[path]
    longest = message_with(path, limit)
    assert decode(longest.to_bytes()) == longest
    store_batch(engine, [longest])
    stored = stored_value(engine, path, longest)
    assert ("x" * limit) in (stored if isinstance(stored, list) else [stored])

    too_long = message_with(path, limit + 1)
    with pytest.raises(UnstorableMessageError, match=rf"^{path} 'x+(\.\.\.)?' is "
                                                     rf"{limit + 1} characters; at most "
                                                     rf"{limit} fit$"):
        decode(too_long.to_bytes())


def test_every_item_of_a_tuple_field_is_checked() -> None:
    fine, too_long = make_entity(name="Kabul", label="GPE"), make_entity(label="L" * 17)
    with pytest.raises(UnstorableMessageError, match=r"^entities\.label 'L{17}' is 17"):
        check_stored_lengths(make_enriched(entities=[fine, too_long]))
    check_stored_lengths(make_enriched(entities=[fine, fine], language=None))
