"""Benchmark: the feed producer against a local HTTP server and a real local Kafka broker.

    .venv/bin/python bench/bench_producer.py [--feeds 200] [--items 50] [--polls 10000]

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
import multiprocessing
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, update  # noqa: E402

from newswatch.daemon import StopFlag  # noqa: E402
from newswatch.db import make_engine  # noqa: E402
from newswatch.kafka_admin import ensure_topics  # noqa: E402
from newswatch.kafka_local import LocalKafka  # noqa: E402
from newswatch.logs import setup_logging  # noqa: E402
from newswatch.migrate import upgrade  # noqa: E402
from newswatch.settings import Settings  # noqa: E402
from producers.daemon import LoopState, build_context, close_context, one_pass  # noqa: E402
from producers.entries import normalise  # noqa: E402
from producers.parse import parse  # noqa: E402
from producers.refresh import Context  # noqa: E402
from producers.state import Store  # noqa: E402
from schemas import tables  # noqa: E402
from schemas.feeds_file import FeedConfig, FeedsFile  # noqa: E402
from tests.support.ports import free_port  # noqa: E402

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


def serve(port: int, feeds: int, items: int, ready: Any) -> None:
    """The publisher side, in its own process: 200 with an ETag, 304 when it matches."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler, if it set one
    documents = {f"/f{n}": feed_document(n, items) for n in range(feeds)}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            body = documents.get(self.path)
            if body is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            etag = f'"{self.path}-v1"'
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
            self.send_header("ETag", etag)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    ready.set()
    server.serve_forever()


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def timed(action: Callable[[], object]) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def start_server(feeds: int, items: int) -> tuple[multiprocessing.Process, int]:
    """The publisher (`serve`) in a child process; returns it and its port once it listens."""
    http_port = free_port()
    ready = multiprocessing.Event()
    server = multiprocessing.Process(target=serve, args=(http_port, feeds, items, ready),
                                     daemon=True)
    server.start()
    ready.wait(10)
    return server, http_port


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=200)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--polls", type=int, default=10_000)
    args = parser.parse_args()
    setup_logging("text", "WARNING")

    server, http_port = start_server(args.feeds, args.items)
    with tempfile.TemporaryDirectory(prefix="bench-producer-") as scratch:
        broker = LocalKafka(state_dir=Path(scratch) / "kafka", port=free_port(),
                            controller_port=free_port(), heap="512m")
        try:
            bootstrap = broker.start(timeout_s=120)
            return run(args, bootstrap, http_port, Path(scratch))
        finally:
            broker.stop()
            server.terminate()
            server.join(5)


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


def build_rig(bootstrap: str, http_port: int, feeds: int, scratch: Path,
              prefix: str = "bench.") -> Rig:
    """A producer for ``feeds`` feeds of the server at ``http_port``, publishing to
    ``prefix``news.articles (3 partitions)."""
    db_url = f"sqlite:///{scratch / 'bench.db'}"
    engine = make_engine(db_url)
    upgrade(engine)
    settings = Settings(kafka_bootstrap_servers=bootstrap, kafka_topic_prefix=prefix,
                        database_url=db_url, state_dir=scratch)
    ensure_topics(settings, partitions=3)
    config = FeedsFile(feeds=tuple(
        FeedConfig(id=f"f{n}", url=f"http://127.0.0.1:{http_port}/f{n}")
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


def run(args: argparse.Namespace, bootstrap: str, http_port: int, scratch: Path) -> int:
    rig = build_rig(bootstrap, http_port, args.feeds, scratch)
    ctx, store, loop, settings = rig.ctx, rig.store, rig.loop, rig.settings
    total_items = args.feeds * args.items
    print(f"producer benchmark: {args.feeds} feeds x {args.items} items on one local host, "
          f"compression {ctx.publisher.compression}, "
          f"{settings.producer_concurrency} feeds at once, "
          f"{settings.producer_per_host_concurrency} requests per host")
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
