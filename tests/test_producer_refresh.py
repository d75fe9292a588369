"""`refresh(feed)` end to end: a real local HTTP server, a real broker, SQLite/PostgreSQL."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from consumers.store.prune import prune
from newswatch.daemon import StopFlag
from newswatch.db import make_engine
from newswatch.errors import BrokerUnavailableError
from newswatch.settings import Settings
from producers.daemon import LoopState, build_context, close_context, one_pass
from producers.lease import FENCE_MARGIN, leases_for
from producers.refresh import Context, refresh
from producers.state import Store
from schemas import tables
from schemas.feeds_file import FeedConfig, FeedsFile
from schemas.messages import Article
from tests.hostile.harness import Metrics
from tests.producer_fixtures import (
    articles_topic,
    news_items,
    producer_settings,
    read_topic,
    rss,
    unique_prefix,
)
from tests.support.feed_server import FeedServer, Reply
from tests.support.ports import free_port

pytestmark = pytest.mark.integration


class Pipeline:
    """A store and a refresh context over one database and one topic prefix."""

    def __init__(self, settings: Settings, store_class: type[Store] = Store) -> None:
        self.settings = settings
        self.engine = make_engine(settings.sqlalchemy_url())
        tables.metadata.create_all(self.engine)
        self.store = store_class(self.engine)
        self.ctx: Context = build_context(settings, self.store, StopFlag())

    def run(self, *feeds: FeedConfig) -> list[Any]:
        self.store.sync_feeds(feeds)
        return [refresh(feed, self.ctx) for feed in feeds]

    def close(self) -> None:
        close_context(self.ctx)
        self.engine.dispose()


@pytest.fixture
def settings(kafka_bootstrap: str, tmp_path: Path) -> Settings:
    settings = producer_settings(kafka_bootstrap, f"sqlite:///{tmp_path / 'p.db'}",
                                 unique_prefix())
    articles_topic(settings)
    return settings


@pytest.fixture
def pipeline(settings: Settings) -> Iterator[Pipeline]:
    pipe = Pipeline(settings)
    try:
        yield pipe
    finally:
        pipe.close()


def _topic(settings: Settings) -> str:
    return f"{settings.kafka_topic_prefix}news.articles"


def _by_key(settings: Settings) -> Counter[str]:
    return Counter(key for key, _ in read_topic(settings.kafka_bootstrap_servers or "",
                                                _topic(settings)))


def test_new_items_are_published_once_and_304_costs_nothing(
        pipeline: Pipeline, feed_server: FeedServer) -> None:
    url = feed_server.feed("/rss", rss(news_items("a", 12), ttl=60), etag='"v1"')
    feed = FeedConfig(id="a", url=url, poll_interval=timedelta(minutes=10))
    first, = pipeline.run(feed)
    assert (first.status, first.items, first.published) == ("published", 12, 12)
    messages = read_topic(pipeline.settings.kafka_bootstrap_servers or "",
                          _topic(pipeline.settings))
    assert len(messages) == 12
    assert all(key == article.id for key, article in messages)
    # <ttl>60</ttl> is a lower bound on the next check, above the 10-minute interval.
    assert first.next_check_at is not None
    assert first.next_check_at - datetime.now(UTC) > timedelta(minutes=59)

    second, = pipeline.run(feed)
    assert second.status == "not_modified"
    assert second.published == 0
    assert feed_server.hits("/rss")[-1]["if-none-match"] == '"v1"'
    assert sum(_by_key(pipeline.settings).values()) == 12
    state = pipeline.store.load("a")
    assert state.items_seen == 12
    assert state.etag == '"v1"'
    assert state.publishing_since is None
    # The 304 is on record (feeds list shows it), and the body last changed at the first poll.
    assert state.last_outcome == "not_modified"
    assert state.last_changed_at == first_state_changed_at(pipeline, "a")


def first_state_changed_at(pipeline: Pipeline, feed_id: str) -> datetime | None:
    """The seen rows of the last body carry its time: the newest last_seen_at."""
    with pipeline.engine.connect() as conn:
        value = conn.execute(select(func.max(tables.seen_items.c.last_seen_at))
                             .where(tables.seen_items.c.feed_id == feed_id)).scalar()
    return None if value is None else value.replace(tzinfo=UTC)


def test_changed_title_is_published_as_a_revision(pipeline: Pipeline,
                                                  feed_server: FeedServer) -> None:
    items = news_items("a", 3)
    url = feed_server.feed("/rss", rss(items))  # no validators: a full GET every time
    feed = FeedConfig(id="a", url=url)
    pipeline.run(feed)
    assert pipeline.run(feed)[0].status == "unchanged"
    items[1]["title"] = "Corrected: " + items[1]["title"]
    feed_server.feed("/rss", rss(items))
    outcome, = pipeline.run(feed)
    assert outcome.published == 1
    messages = read_topic(pipeline.settings.kafka_bootstrap_servers or "",
                          _topic(pipeline.settings))
    revisions = sorted((a.revision, a.title) for _, a in messages if a.guid == "a-1")
    assert [r for r, _ in revisions] == [0, 1]
    assert revisions[1][1].startswith("Corrected: ")


def test_same_article_in_two_feeds_is_published_once(pipeline: Pipeline,
                                                     feed_server: FeedServer) -> None:
    shared = news_items("shared", 2)
    one = feed_server.feed("/one", rss(news_items("one", 3) + shared, title="One"))
    two = feed_server.feed("/two", rss(shared + news_items("two", 3), title="Two"))
    outcomes = pipeline.run(FeedConfig(id="one", url=one), FeedConfig(id="two", url=two))
    assert [o.published for o in outcomes] == [5, 3]
    counts = _by_key(pipeline.settings)
    assert len(counts) == 8
    assert set(counts.values()) == {1}


@pytest.mark.parametrize(("reply", "status", "error", "min_wait_s"), [
    (Reply(404, b"no"), "failed", "HTTP 404", 600),
    (Reply(500, b"oops"), "failed", "HTTP 500", 600),
    (Reply(429, b"", {"Retry-After": "7200"}), "failed", "Retry-After 7200s", 7200),
    (Reply(503, b"", {"Retry-After": "3600"}), "failed", "HTTP 503", 3600),
    (Reply(200, b"<html><body>Sign in</body></html>", {"Content-Type": "text/html"}),
     "failed", "HTML page", 600),
    (Reply(200, b"x" * 2_000_000), "failed", "exceeds", 600),
    (Reply(200, b"<rss/>", delay_s=3.0), "failed", "timed out", 600),
    (Reply(302, b"", {"Location": "/rss"}), "failed", "redirects (a redirect loop?)", 600),
    (Reply(410, b"gone"), "disabled", "HTTP 410", None),
])
def test_failures_are_recorded_and_rescheduled(
        pipeline: Pipeline, feed_server: FeedServer, reply: Reply, status: str, error: str,
        min_wait_s: float | None) -> None:
    url = feed_server.add("/rss", reply)
    feed = FeedConfig(id="a", url=url, poll_interval=timedelta(minutes=10))
    pipeline.settings = pipeline.settings.model_copy(update={"producer_max_body_bytes": 1_000_000})
    pipeline.ctx.fetcher.max_bytes = 1_000_000
    outcome, = pipeline.run(feed)
    state = pipeline.store.load("a")
    assert outcome.status == status
    assert error in (state.last_error or "")
    assert state.error_count == 1
    if min_wait_s is None:
        assert state.next_check_at is None
        assert state.disabled_reason is not None
        again, = pipeline.run(feed)  # a disabled feed is not fetched again
        assert again.status == "disabled"
        assert len(feed_server.hits("/rss")) == 1
    else:
        assert state.next_check_at is not None
        assert state.next_check_at - datetime.now(UTC) >= timedelta(seconds=min_wait_s - 5)
    assert _by_key(pipeline.settings) == Counter()


def test_repeated_failures_back_off(pipeline: Pipeline, feed_server: FeedServer) -> None:
    url = feed_server.add("/rss", Reply(500, b"oops"))
    feed = FeedConfig(id="a", url=url, poll_interval=timedelta(minutes=1))
    waits = []
    for _ in range(4):
        pipeline.run(feed)
        state = pipeline.store.load("a")
        assert state.next_check_at is not None
        waits.append((state.next_check_at - datetime.now(UTC)).total_seconds())
    assert pipeline.store.load("a").error_count == 4
    assert waits == sorted(waits)
    assert waits[-1] >= 7 * 60


def test_bozo_feed_publishes_and_records_the_warning(pipeline: Pipeline,
                                                     feed_server: FeedServer) -> None:
    body = rss(news_items("a", 2)).replace(b"</channel>", b"<broken></channel>")
    url = feed_server.feed("/rss", body)
    outcome, = pipeline.run(FeedConfig(id="a", url=url))
    assert outcome.published == 2
    state = pipeline.store.load("a")
    assert state.error_count == 0
    assert state.last_error is None
    assert "recoverable feed error" in (state.last_warning or "")


def test_broker_down_records_nothing_and_loses_nothing(
        settings: Settings, tmp_path: Path, feed_server: FeedServer) -> None:
    url = feed_server.feed("/rss", rss(news_items("a", 5)), etag='"v1"')
    feed = FeedConfig(id="a", url=url)
    down = settings.model_copy(update={"kafka_bootstrap_servers": f"127.0.0.1:{free_port()}",
                                       "producer_delivery_timeout_s": 2.0})
    broken = Pipeline(down)
    try:
        with pytest.raises(BrokerUnavailableError):
            broken.run(feed)
        state = broken.store.load("a")
        assert state.etag is None
        assert state.items_seen == 0
        assert state.is_due(datetime.now(UTC))
        assert broken.store.seen([a["guid"] for a in news_items("a", 5)]) == {}
    finally:
        broken.close()
    healthy = Pipeline(settings)  # the same database, the broker back
    try:
        outcome, = healthy.run(feed)
    finally:
        healthy.close()
    assert outcome.published == 5
    assert set(_by_key(settings).values()) == {1}
    assert len(_by_key(settings)) == 5


def test_once_gives_up_after_the_broker_wait_and_keeps_feeds_due(
        settings: Settings, feed_server: FeedServer, caplog: pytest.LogCaptureFixture) -> None:
    url = feed_server.feed("/rss", rss(news_items("a", 3)))
    down = settings.model_copy(update={"kafka_bootstrap_servers": f"127.0.0.1:{free_port()}",
                                       "producer_delivery_timeout_s": 1.0})
    broken = Pipeline(down)
    config = FeedsFile(feeds=(FeedConfig(id="a", url=url),))
    broken.store.sync_feeds(config.feeds)
    try:
        assert one_pass(broken.ctx, broken.store, LoopState(config=config),
                        broker_wait_s=2.0) == 1
    finally:
        broken.close()
    pauses = [r for r in caplog.records if "pausing" in r.getMessage()]
    assert len(pauses) >= 2  # tried again after the backoff, then gave up
    state = broken.store.load("a")
    assert state.items_seen == 0
    assert state.is_due(datetime.now(UTC))


class CrashAfterAck(Store):
    """Dies between Kafka's ack and the SQL commit, as a SIGKILL there would."""

    def record_success(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("published"):
            raise SystemExit("simulated crash after the ack")
        super().record_success(*args, **kwargs)


def test_crash_between_ack_and_commit_publishes_nothing_twice(
        kafka_bootstrap: str, db_url: str, feed_server: FeedServer) -> None:
    settings = producer_settings(kafka_bootstrap, db_url, unique_prefix())
    articles_topic(settings)
    url = feed_server.feed("/rss", rss(news_items("a", 20)), etag='"v1"')
    feed = FeedConfig(id="a", url=url)
    crashing = Pipeline(settings, CrashAfterAck)
    try:
        with pytest.raises(SystemExit):
            crashing.run(feed)
        assert crashing.store.load("a").publishing_since is not None
    finally:
        crashing.close()
    assert sum(_by_key(settings).values()) == 20  # acked, but not recorded

    restarted = Pipeline(settings)
    try:
        outcome, = restarted.run(feed)
        state = restarted.store.load("a")
    finally:
        restarted.close()
    assert outcome.published == 0  # read back from Kafka instead of sent again
    assert state.publishing_since is None
    assert state.items_seen == 20
    assert state.etag == '"v1"'
    counts = _by_key(settings)
    assert len(counts) == 20
    assert set(counts.values()) == {1}


def test_full_text_is_extracted_from_article_pages(pipeline: Pipeline,
                                                   feed_server: FeedServer) -> None:
    paragraphs = "".join(
        f"<p>Paragraph {n} of the full story: the ministers met in Moscow and agreed on a "
        f"statement about regional security, trade routes and humanitarian aid.</p>"
        for n in range(8))
    page = (f"<html><head><title>Story</title></head><body><nav>Home | World</nav>"
            f"<article><h1>Story</h1>{paragraphs}</article><footer>© Example</footer>"
            f"</body></html>").encode()
    feed_server.add("/story-1.html", Reply(200, page, {"Content-Type": "text/html"}))
    items = [{"title": "Story one", "link": feed_server.url("/story-1.html"),
              "description": "Short teaser."},
             {"title": "Story two", "link": feed_server.url("/missing.html"),
              "description": "Another teaser."}]
    url = feed_server.feed("/rss", rss(items))
    pipeline.run(FeedConfig(id="a", url=url, full_text=True))
    by_title = {a.title: a for _, a in read_topic(pipeline.settings.kafka_bootstrap_servers
                                                  or "", _topic(pipeline.settings))}
    assert "Paragraph 7 of the full story" in by_title["Story one"].content
    assert "Home | World" not in by_title["Story one"].content
    assert by_title["Story two"].content == ""  # 404: the summary stands
    assert by_title["Story two"].summary == "Another teaser."


def _titles(messages: list[tuple[str, Article]]) -> list[str]:
    return sorted(article.title for _, article in messages)


def test_a_pruned_article_the_feed_still_lists_is_not_ingested_again(
        pipeline: Pipeline, feed_server: FeedServer) -> None:
    """Issue 18: prune keeps the seen rows of items a feed still lists (behind 304s too),
    so the producer does not publish them again; rows of items that left the feed go."""
    url = feed_server.feed("/rss", rss(news_items("a", 12)), etag='"v1"')
    feed = FeedConfig(id="a", url=url)
    assert pipeline.run(feed)[0].published == 12
    assert pipeline.run(feed)[0].status == "not_modified"
    later = datetime.now(UTC) + timedelta(days=40)  # the articles are long pruned by then
    assert prune(pipeline.engine, timedelta(days=30), now=later).seen_items == 0
    assert pipeline.run(feed)[0].status == "not_modified"

    feed_server.feed("/rss", rss(news_items("a", 12, start=6)), etag='"v2"')  # 6 left, 6 new
    outcome, = pipeline.run(feed)
    assert (outcome.status, outcome.published) == ("published", 6)
    assert prune(pipeline.engine, timedelta(days=30), now=later).seen_items == 6
    with pipeline.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(tables.seen_items)).scalar() == 12
    assert pipeline.run(feed)[0].published == 0
    by_key = _by_key(pipeline.settings)
    assert sum(by_key.values()) == 18
    assert set(by_key.values()) == {1}


def test_a_refresh_whose_lease_lapsed_polls_and_writes_nothing(
        kafka_bootstrap: str, db_url: str, feed_server: FeedServer) -> None:
    settings = producer_settings(kafka_bootstrap, db_url, unique_prefix())
    articles_topic(settings)
    feed = FeedConfig(id="a", url=feed_server.feed("/rss", rss(news_items("a", 5))))
    pipe = Pipeline(settings)
    pipe.store.sync_feeds([feed])
    leases = pipe.ctx.leases = leases_for(pipe.engine, 3.0)
    metrics = Metrics()
    try:
        # The poll: claimed, then past the local deadline (the worker waited, or froze).
        assert leases.claim(["a"], datetime.now(UTC)) == ["a"]
        time.sleep(3.0 * (1 - FENCE_MARGIN) + 0.05)
        outcome = refresh(feed, pipe.ctx)
        assert (outcome.status, feed_server.hits("/rss")) == ("cancelled", [])
        assert metrics.delta("newswatch_producer_lease_fenced_total", feed="a",
                             step="poll") == 1
        # The publish: claimed afresh, polled, but another producer took the feed since
        # (its lease ended by the database's reading): the publishing mark is refused.
        assert leases.claim(["a"], datetime.now(UTC)) == ["a"]
        with pipe.engine.begin() as conn:
            past = datetime.now(UTC) - timedelta(minutes=1)
            conn.execute(tables.feeds.update().values(lease_owner="elsewhere/1/1/x",
                                                      lease_expires_at=past))
            conn.execute(tables.producer_leases.update().values(owner="elsewhere/1/1/x"))
        outcome = refresh(feed, pipe.ctx)
        assert outcome.status == "cancelled"
        assert len(feed_server.hits("/rss")) == 1
        assert metrics.delta("newswatch_producer_lease_fenced_total", feed="a",
                             step="publish") == 1
        state = pipe.store.load("a")
    finally:
        pipe.close()
    assert (state.publishing_since, state.last_success_at, state.items_seen) == (None, None, 0)
    assert _by_key(settings) == Counter(), "published under a lapsed lease"
