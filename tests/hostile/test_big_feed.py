"""A 50 MB feed, generated at test time (not committed), through the producer's --once
pass: served over HTTP without a Content-Length (so only the streaming body limit can stop
it), gzip-encoded over HTTP (50 MB inflated from ~100 KB), and as a local file; and a
gzip bomb (500 MB of zeros). Each is refused by the body limit within bounded memory,
logged and counted, and the good feed polled in the same pass is published.
"""

from __future__ import annotations

import gzip
import logging
import tracemalloc
from pathlib import Path

import pytest

from newswatch.daemon import StopFlag
from newswatch.db import make_engine
from producers.daemon import LoopState, build_context, close_context, one_pass
from producers.state import Store
from schemas import tables
from schemas.feeds_file import FeedConfig, FeedsFile
from tests.hostile.harness import Metrics, log_lines
from tests.producer_fixtures import (
    articles_topic,
    news_items,
    producer_settings,
    read_topic,
    rss,
    unique_prefix,
)
from tests.support.feed_server import FeedServer, Reply

pytestmark = pytest.mark.integration

BIG = 50 * 1024 * 1024


def _write_big_feed(path: Path) -> None:
    """A well-formed RSS document of 50 MB: many ordinary items, written in chunks."""
    item = ("<item><title>Item {n}: officials meet to discuss the situation</title>"
            "<link>https://big.example/{n}</link><guid>big-{n}</guid><description>"
            + "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 30
            + "</description></item>\n")
    with path.open("w", encoding="utf-8") as out:
        out.write('<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
                  "<title>Big</title><link>https://big.example/</link>\n")
        n = 0
        while out.tell() < BIG:
            out.write("".join(item.format(n=n + i) for i in range(1000)))
            n += 1000
        out.write("</channel></rss>\n")


def test_a_50_mb_feed_is_refused_in_bounded_memory_and_costs_nothing_else(
        kafka_bootstrap: str, tmp_path: Path, feed_server: FeedServer,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    big_file = tmp_path / "big.xml"
    _write_big_feed(big_file)
    body = big_file.read_bytes()
    assert len(body) >= BIG
    feed_server.add("/big-chunked", Reply(200, body, {"Content-Type": "application/rss+xml"},
                                          chunked=True))
    feed_server.add("/big-gzip", Reply(200, gzip.compress(body, compresslevel=6),
                                       {"Content-Type": "application/rss+xml",
                                        "Content-Encoding": "gzip"}))
    # A gzip bomb: 500 MB of zeros in ~500 KB.
    feed_server.add("/bomb", Reply(200, gzip.compress(bytes(500 * 1024 * 1024), 9),
                                   {"Content-Encoding": "gzip"}))
    good_url = feed_server.feed("/good", rss(news_items("good", 5)))
    feeds = (FeedConfig(id="big-chunked", url=feed_server.url("/big-chunked")),
             FeedConfig(id="big-gzip", url=feed_server.url("/big-gzip")),
             FeedConfig(id="big-file", url=big_file.as_uri()),
             FeedConfig(id="gzip-bomb", url=feed_server.url("/bomb")),
             FeedConfig(id="good", url=good_url))

    # One worker, so the peak below is one download's: with n workers it is n times that.
    config = producer_settings(kafka_bootstrap, f"sqlite:///{tmp_path / 'p.db'}",
                               unique_prefix(), producer_concurrency=1)
    limit = config.producer_max_body_bytes
    assert limit < BIG  # the shipped default (10 MB) is what is tested
    topic = articles_topic(config)
    engine = make_engine(config.sqlalchemy_url())
    tables.metadata.create_all(engine)
    store = Store(engine)
    store.sync_feeds(feeds)
    ctx = build_context(config, store, StopFlag())
    counted = Metrics()
    tracemalloc.start()
    try:
        code = one_pass(ctx, store, LoopState(config=FeedsFile(feeds=feeds)),
                        broker_wait_s=30)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        close_context(ctx)
        engine.dispose()

    assert code == 0
    # Peak Python allocation of the whole pass: the body read up to the limit, and for
    # gzip at most as much again being inflated; feedparser never sees the 50 MB (it would
    # need ~1 GB for it). Before the bounded inflation, a gzip bomb cost ~1000x one network
    # read (148 MB for 500 MB of zeros) whatever the limit.
    print(f"50 MB feeds: peak traced memory {peak / 1e6:.1f} MB for a "
          f"{limit / 1e6:.1f} MB body limit")
    assert peak < 2 * limit + 4 * 1024 * 1024
    states = store.states()
    for feed_id in ("big-chunked", "big-gzip", "big-file", "gzip-bomb"):
        assert states[feed_id].error_count == 1, feed_id
        assert "exceeds the 10.0 MB limit" in (states[feed_id].last_error or "")
        assert counted.delta("newswatch_feed_errors_total", feed=feed_id,
                             kind="too_large") == 1
        lines = log_lines(caplog.records, "producers.refresh", "feed poll failed")
        assert any(getattr(r, "feed", None) == feed_id and "exceeds" in r.getMessage()
                   for r in lines), feed_id
    assert states["good"].error_count == 0
    published = read_topic(kafka_bootstrap, topic)
    assert sorted(a.guid or "" for _, a in published) == [f"good-{i}" for i in range(5)]
