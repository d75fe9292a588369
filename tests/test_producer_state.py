"""The producer's SQL state on SQLite and PostgreSQL: feeds, seen rows, revisions."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from newswatch.db import make_engine
from producers.entries import content_hash
from producers.state import InFlight, Store
from schemas import tables
from schemas.feeds_file import FeedConfig
from schemas.ids import article_id
from schemas.messages import Article

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    engine = make_engine(db_url)
    tables.metadata.create_all(engine)
    try:
        yield Store(engine)
    finally:
        engine.dispose()


def _feed(feed_id: str, url: str | None = None) -> FeedConfig:
    return FeedConfig(id=feed_id, url=url or f"https://{feed_id}.example/rss", name=feed_id)


def _article(n: int, feed_id: str = "a", title: str = "title") -> Article:
    url = f"https://news.example/{n}"
    return Article(id=article_id(url), url=url, title=title, published=NOW, fetched_at=NOW,
                   feed_id=feed_id, content_hash=content_hash(title, "", ""))


def _succeed(store: Store, feed_id: str, published: list[Article],
             unchanged: list[str] | None = None, **kwargs: object) -> None:
    store.record_success(feed_id, published=published, unchanged_ids=unchanged or [],
                         etag='"e"', last_modified=None, next_check_at=NOW + timedelta(hours=1),
                         now=NOW, **kwargs)  # type: ignore[arg-type]


def test_sync_creates_and_updates_feeds(store: Store) -> None:
    store.sync_feeds([_feed("a"), _feed("b")])
    store.record_failure("b", "HTTP 410 Gone", next_check_at=None, now=NOW,
                         disabled_reason="HTTP 410 Gone")
    store.sync_feeds([_feed("a"), _feed("b")])
    assert store.load("b").disabled_reason == "HTTP 410 Gone"
    # A new URL is a new chance: validators and the 410 are forgotten.
    store.sync_feeds([_feed("a"), _feed("b", "https://b.example/new")])
    state = store.load("b")
    assert (state.url, state.disabled_reason, state.error_count, state.etag) == (
        "https://b.example/new", None, 0, None)
    assert set(store.states()) == {"a", "b"}


def test_new_articles_then_nothing_then_a_revision(store: Store) -> None:
    store.sync_feeds([_feed("a")])
    first = [_article(1), _article(2)]
    fresh, unchanged = store.unpublished("a", first, max_revisions=5)
    assert fresh == first
    assert unchanged == []
    _succeed(store, "a", fresh)

    fresh, unchanged = store.unpublished("a", first, max_revisions=5)
    assert fresh == []
    assert sorted(unchanged) == sorted(a.id for a in first)

    edited = _article(2, title="title, corrected")
    fresh, _ = store.unpublished("a", [first[0], edited], max_revisions=5)
    assert [(a.id, a.revision) for a in fresh] == [(edited.id, 1)]
    _succeed(store, "a", fresh)
    assert store.seen([edited.id])[edited.id].revision == 1
    state = store.load("a")
    assert state.items_seen == 2
    assert state.etag == '"e"'
    assert state.error_count == 0


def test_same_story_in_another_feed_is_not_a_revision(store: Store) -> None:
    store.sync_feeds([_feed("a"), _feed("b")])
    _succeed(store, "a", [_article(1, "a")])
    other = _article(1, "b", title="the same story, another headline")
    fresh, unchanged = store.unpublished("b", [other], max_revisions=5)
    assert fresh == []
    assert unchanged == [other.id]


def test_revisions_stop_at_the_limit(store: Store) -> None:
    store.sync_feeds([_feed("a")])
    _succeed(store, "a", [_article(1)])
    for n in range(1, 4):
        fresh, _ = store.unpublished("a", [_article(1, title=f"v{n}")], max_revisions=2)
        if n <= 2:
            assert [a.revision for a in fresh] == [n]
            _succeed(store, "a", fresh)
        else:
            assert fresh == []


def test_failures_count_and_success_resets(store: Store) -> None:
    store.sync_feeds([_feed("a")])
    assert store.record_failure("a", "HTTP 500", next_check_at=NOW, now=NOW) == 1
    assert store.record_failure("a", "HTTP 500", next_check_at=NOW, now=NOW) == 2
    _succeed(store, "a", [], warning="recoverable feed error: x")
    state = store.load("a")
    assert state.error_count == 0
    assert state.last_error == "HTTP 500"  # the last failure stays what it was
    assert state.last_warning == "recoverable feed error: x"
    assert state.last_warning_at == NOW
    assert state.last_success_at == NOW
    assert state.next_check_at == NOW + timedelta(hours=1)
    assert state.is_due(NOW + timedelta(hours=2))
    assert not state.is_due(NOW)


def test_publishing_mark_and_recovery(store: Store) -> None:
    store.sync_feeds([_feed("a")])
    store.mark_publishing("a", NOW)
    assert store.load("a").publishing_since == NOW
    _succeed(store, "a", [_article(1)])
    store.mark_publishing("a", NOW)
    recovered = [_article(1), _article(2), _article(3, title="x").model_copy(
        update={"revision": 2})]
    assert store.record_recovered("a", recovered, NOW) == 2
    state = store.load("a")
    assert state.publishing_since is None
    assert state.items_seen == 3
    assert store.seen([recovered[2].id])[recovered[2].id].revision == 2
    # Replaying the same recovery, or an older revision, changes nothing.
    older = recovered[2].model_copy(update={"revision": 1})
    assert store.record_recovered("a", [recovered[0], older], NOW) == 0
    assert store.seen([older.id])[older.id].revision == 2


def test_many_ids_are_looked_up_in_chunks(store: Store) -> None:
    store.sync_feeds([_feed("a")])
    many = [_article(n) for n in range(1200)]
    _succeed(store, "a", many)
    fresh, unchanged = store.unpublished("a", many, max_revisions=5)
    assert fresh == []
    assert len(unchanged) == 1200
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(tables.seen_items)).scalar() == 1200


def test_in_flight_claims_are_exclusive() -> None:
    in_flight = InFlight()
    one, two = _article(1), _article(2)
    with in_flight.claim([one, two]) as first, in_flight.claim([two]) as second:
        assert first == [one, two]
        assert second == []
    with in_flight.claim([two]) as again:
        assert again == [two]
