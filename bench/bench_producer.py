"""Benchmark: the feed producer against a local HTTP server and a real local Kafka broker.

    .venv/bin/python -m bench.bench_producer [--feeds 200] [--items 50] [--polls 10000]

Starts a Kafka broker (newswatch.kafka_local.LocalKafka) on free ports in a temporary
folder, and an HTTP server in a child process (so it does not share our GIL, as a real
publisher would not) serving ``--feeds`` RSS feeds of ``--items`` news-like items each,
with ETags. The producer runs with its default settings (8 feeds at once, 2 requests per
host: all feeds are on one host here) through the daemon's own pass (`one_pass`), on a
migrated SQLite database. Figures:

1. new items: every item is new; items fetched, parsed, normalised, published (acked)
   and recorded, per second of wall time;
2. unchanged feeds: every feed answers 304 Not Modified; polls per second;
3. memory: RSS after each 1,000 of ``--polls`` unchanged polls (flat means no leak);
4. for scale: parse + normalise alone on the same documents, one core, no I/O.

The broker and the server are stopped at the end.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

from sqlalchemy import Engine, update

from bench.harness import local_broker, rss_mb, timed, uptime
from newswatch.daemon import StopFlag
from newswatch.db import make_engine
from newswatch.kafka_admin import ensure_topics
from newswatch.logs import setup_logging
from newswatch.migrate import upgrade
from newswatch.settings import Settings
from producers.daemon import LoopState, build_context, close_context, one_pass
from producers.entries import normalise
from producers.parse import parse
from producers.refresh import Context
from producers.state import Store
from schemas import tables
from schemas.feeds_file import FeedConfig, FeedsFile
from tests.support.feed_server import FeedServer, FeedServerProcess

TEASER = ("Officials from ten countries met on Tuesday to discuss security, trade and aid "
          "in the region, a day after the government announced new measures. The talks, "
          "which diplomats described as constructive, are expected to continue next week.")



def feed_document(n: int, items: int) -> bytes:
    """An RSS 2.0 feed like a news site's: title, link, guid, HTML teaser, date."""
    parts = ['<?xml version="1.0" encoding="utf-8"?>', '<rss version="2.0"><channel>',
             f"<title>Bench feed {n}</title><link>https://bench{n}.example.org/</link>"]
    for i in range(items):
        date = format_datetime(datetime(2026, 11, 1, tzinfo=UTC).replace(minute=i % 60))
        parts.append(
            f"<item><title>Feed {n} story {i}: ministers meet as talks continue</title>"
            f"<link>https://bench{n}.example.org/world/story-{i}.html?utm_source=rss</link>"
            f"<guid>bench-{n}-{i}</guid><pubDate>{date}</pubDate>"
            f"<description>{escape(f'<p>{TEASER}</p><p>Story {i} of feed {n}.</p>')}"
            f"</description></item>")
    parts.append("</channel></rss>")
    return "\n".join(parts).encode()


def start_server(feeds: int, items: int) -> FeedServerProcess:
    """The publisher in a child process (it does not share our GIL, as a real one would
    not): ``/f<n>`` for each feed, 200 with an ETag, 304 when it matches."""

    def setup(server: FeedServer) -> None:
        for n in range(feeds):
            server.feed(f"/f{n}", feed_document(n, items), etag=f'"/f{n}-v1"',
                        content_type="application/rss+xml; charset=utf-8")

    return FeedServerProcess(setup)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=200)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--polls", type=int, default=10_000)
    args = parser.parse_args()
    setup_logging("text", "WARNING")

    server = start_server(args.feeds, args.items)
    try:
        with (tempfile.TemporaryDirectory(prefix="bench-producer-") as scratch,
              local_broker(scratch=Path(scratch)) as (_, bootstrap)):
            return run(args, bootstrap, server.base, Path(scratch))
    finally:
        server.close()


@dataclass
class Rig:
    """The producer of one process, set up as the daemon sets it up, on a fresh SQLite."""

    engine: Engine
    settings: Settings
    store: Store
    ctx: Context
    loop: LoopState

    def due_again(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(tables.feeds).values(next_check_at=None))

    def close(self) -> None:
        close_context(self.ctx)
        self.engine.dispose()


def build_rig(bootstrap: str, base_url: str, feeds: int, scratch: Path,
              prefix: str = "bench.") -> Rig:
    """A producer for ``feeds`` feeds of the server at ``base_url``, publishing to
    ``prefix``news.articles (3 partitions)."""
    db_url = f"sqlite:///{scratch / 'bench.db'}"
    engine = make_engine(db_url)
    upgrade(engine)
    settings = Settings(kafka_bootstrap_servers=bootstrap, kafka_topic_prefix=prefix,
                        database_url=db_url, state_dir=scratch)
    ensure_topics(settings, partitions=3)
    config = FeedsFile(feeds=tuple(
        FeedConfig(id=f"f{n}", url=f"{base_url}/f{n}")
        for n in range(feeds)))
    store = Store(engine)
    store.sync_feeds(config.feeds)
    return Rig(engine, settings, store, build_context(settings, store, StopFlag()),
               LoopState(config=config))


def new_items_pass(rig: Rig) -> tuple[int, float]:
    """One pass over feeds whose items are all new: (items published, seconds)."""
    elapsed = timed(lambda: one_pass(rig.ctx, rig.store, rig.loop))
    published = sum(state.items_seen for state in rig.store.states().values())
    return published, elapsed


def run(args: argparse.Namespace, bootstrap: str, base_url: str, scratch: Path) -> int:
    rig = build_rig(bootstrap, base_url, args.feeds, scratch)
    ctx, store, loop, settings = rig.ctx, rig.store, rig.loop, rig.settings
    total_items = args.feeds * args.items
    print(f"producer benchmark: {args.feeds} feeds x {args.items} items on one local host, "
          f"compression {ctx.publisher.compression}, "
          f"{settings.producer_concurrency} feeds at once, "
          f"{settings.producer_per_host_concurrency} requests per host; {uptime()}")
    try:
        published, elapsed = new_items_pass(rig)
        assert published == total_items, f"published {published} of {total_items}"
        print(f"1. new items:       {published} items in {elapsed:.2f}s = "
              f"{published / elapsed:,.0f} items/s (fetched, parsed, normalised, published "
              f"with acks=all, recorded)")

        rig.due_again()
        elapsed = timed(lambda: one_pass(ctx, store, loop))
        print(f"2. unchanged feeds: {args.feeds} polls answered 304 in {elapsed:.2f}s = "
              f"{args.feeds / elapsed:,.0f} polls/s")

        print(f"3. memory over {args.polls:,} unchanged polls (RSS):")
        polls, samples, began = 0, [], time.perf_counter()
        next_report = 1_000
        while polls < args.polls:
            rig.due_again()
            one_pass(ctx, store, loop)
            polls += args.feeds
            if polls >= next_report:
                samples.append((polls, rss_mb()))
                next_report += 1_000
        steady = polls / (time.perf_counter() - began)
        print("   " + ", ".join(f"{n:,}: {mb:.0f} MB" for n, mb in samples))
        growth = samples[-1][1] - samples[0][1]
        print(f"   growth from {samples[0][0]:,} to {samples[-1][0]:,} polls: {growth:+.1f} MB;"
              f" {steady:,.0f} polls/s over the run")
    finally:
        rig.close()

    documents = [feed_document(n, args.items) for n in range(min(args.feeds, 50))]
    feeds = [FeedConfig(id=f"f{n}", url="http://x/") for n in range(len(documents))]
    now = datetime.now(UTC)

    def parse_only() -> None:
        for document, feed in zip(documents, feeds, strict=True):
            normalise(parse(document), feed, fetched_at=now)

    elapsed = timed(parse_only)
    count = len(documents) * args.items
    print(f"4. parse + normalise alone: {count / elapsed:,.0f} items/s on one core")
    print(f"uptime: {uptime()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
