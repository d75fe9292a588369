"""Fault 3 of issue 16, producer side: a feed server that drips its response headers.

The status line, then one header byte per second: never a per-read timeout, and the
download deadline only covered the body. Eight such feeds (the producer's concurrency) on
one host held every worker (two in the drip, six blocked on the per-host limit), no other
feed was polled, and SIGTERM waited for them. Now the whole request has a deadline, the
scheduler never hands a worker a feed whose host is at its limit, and a stop abandons the
requests in hand.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from newswatch.daemon import StopFlag
from newswatch.errors import FeedError
from newswatch.settings import Settings
from producers.fetch import Fetcher
from tests.fault.slow_http import DripServer
from tests.producer_fixtures import (
    articles_topic,
    migrated_sqlite,
    news_items,
    producer_settings,
    rss,
    unique_prefix,
)
from tests.support.feed_server import FeedServer, Reply
from tests.support.waits import wait_for
from tests.test_producer_daemon import Producer, TopicWatch, _env, _write_feeds

pytestmark = pytest.mark.integration


@pytest.fixture
def drip() -> Iterator[DripServer]:
    server = DripServer()
    yield server
    server.close()


def test_a_dripping_server_meets_the_whole_request_deadline(drip: DripServer) -> None:
    fetcher = Fetcher(Settings(producer_read_timeout_s=5, producer_total_timeout_s=2))
    try:
        with pytest.raises(FeedError, match="longer than 2s") as caught:
            fetcher.fetch(drip.url("/feed"))
    finally:
        fetcher.close()
    assert caught.value.kind == "timeout"
    assert caught.value.retryable


def test_stop_abandons_a_dripping_request(drip: DripServer) -> None:
    stop = StopFlag()
    fetcher = Fetcher(Settings(producer_total_timeout_s=600), stop=stop)
    stop.stop()
    try:
        with pytest.raises(FeedError, match="stopping"):
            fetcher.fetch(drip.url("/feed"))
    finally:
        fetcher.close()


def test_eight_dripping_feeds_do_not_stop_the_others_and_sigterm_stops(
        kafka_bootstrap: str, tmp_path: Path, feed_server: FeedServer, drip: DripServer,
        watch_factory: list[TopicWatch]) -> None:
    feed_server.add("/good", Reply(200, rss(news_items("good", 5))))
    feeds = {f"slow{n}": drip.url(f"/slow{n}") for n in range(8)}
    feeds["good"] = feed_server.url("/good")  # last: the slow ones are handed out first
    feeds_file = tmp_path / "feeds.yaml"
    _write_feeds(feeds_file, feeds)
    db_url = migrated_sqlite(tmp_path / "producer.db")
    prefix = unique_prefix()
    topic = articles_topic(producer_settings(kafka_bootstrap, db_url, prefix))
    env = _env({"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "NEWSWATCH_DATABASE_URL": db_url,
                "NEWSWATCH_KAFKA_TOPIC_PREFIX": prefix,
                "NEWSWATCH_PRODUCER_READ_TIMEOUT_S": "5"})
    watch = TopicWatch(kafka_bootstrap, topic)
    watch_factory.append(watch)

    producer = Producer(env, feeds_file, "--default-interval", "3600")
    try:
        wait_for(lambda: drip.requests >= 1, timeout_s=30, what="the slow feeds polled")
        wait_for(lambda: watch.size() >= 5, timeout_s=40,
                 what="the good feed published while the slow ones drip")
        assert drip.requests <= 2, "more workers than the per-host limit went to one host"
        producer.process.send_signal(signal.SIGTERM)
        assert producer.finish(timeout_s=20) == 0, "SIGTERM waited for the dripping feeds"
        assert producer.saw("producer stopped")
    finally:
        if producer.process.poll() is None:
            producer.process.kill()
            producer.finish()
