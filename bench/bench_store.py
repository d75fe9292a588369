"""Benchmark: articles per second stored from Kafka into PostgreSQL and into SQLite.

Starts a local Kafka broker (newswatch.kafka_local.LocalKafka) on free ports in a temporary
folder, publishes realistic enriched articles (~3 KB of text, 10 entities from a shared
vocabulary, 1-2 topic hits with evidence) to a fresh topic, then runs the real store
daemon loop (`run_store`) on it once per database, each with a new consumer group
reading from offset 0 into a freshly migrated, empty database. The broker is stopped at
the end.

    eval "$(scripts/postgres.sh start)"     # sets NEWSWATCH_TEST_POSTGRES_URL
    .venv/bin/python -m bench.bench_store [--articles 20000] [--batch-size 500]
        [--stored 1000000]

``--stored N`` first fills each database with N older stored articles (`bench.store_fill`:
server-side, 10 entity links and a hit each, short texts) and times the same write on top
of them; the figures count only the bench's own articles.

Figures printed per database:
- steady: articles / (last commit - first commit), the rate once the group has joined;
- end-to-end: articles / time from starting the daemon to the last row, including the
  schema check, the group join and the first fetch.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, func, select

from bench.harness import local_broker, uptime
from bench.store_fill import fill_stored
from consumers.store.daemon import DEFAULT_BATCH, run_store, tune_gc_for_batches
from newswatch.daemon import StopFlag
from newswatch.db import make_engine
from newswatch.kafka_admin import ensure_topics
from newswatch.kafka_clients import make_producer
from newswatch.migrate import upgrade
from newswatch.settings import Settings, load_settings
from newswatch.utc import as_utc
from schemas import tables
from tests.factories import realistic_batch
from tests.support.postgres import POSTGRES_ENV, fresh_schema


@dataclass
class Figures:
    database: str
    articles: int
    steady_per_s: float
    end_to_end_per_s: float
    entity_links: int
    hits: int
    stored_before: int = 0
    # This process's CPU per stored article: the daemon's, and on SQLite the database's
    # too (a figure other load moves far less than the rate); PostgreSQL's server not.
    cpu_ms_per_article: float = float("nan")


def publish(settings: Settings, count: int) -> tuple[int, float]:
    messages = realistic_batch(count, seed=7)
    producer = make_producer(settings)
    topic = f"{settings.kafka_topic_prefix}news.enriched"
    began = time.perf_counter()
    for message in messages:
        producer.send(topic, key=message.article.id.encode(), value=message.to_bytes())
    producer.flush(timeout=300)
    elapsed = time.perf_counter() - began
    producer.close()
    size = sum(len(m.to_bytes()) for m in messages[:200]) // 200
    print(f"published {count} enriched articles (~{size} bytes each) "
          f"at {count / elapsed:,.0f}/s")
    return size, elapsed


def _counts(engine: Engine) -> tuple[int, int, int]:
    """Articles, entity links and topic hits in the database."""
    with engine.connect() as connection:
        return tuple(connection.execute(select(func.count()).select_from(table)).scalar_one()
                     for table in (tables.articles, tables.article_entities,
                                   tables.topic_hits))  # type: ignore[return-value]


def run_once(settings: Settings, url: str, name: str, count: int, batch_size: int,
             stored: int = 0) -> Figures:
    """Store the ``count`` published articles with the daemon loop into the database at
    ``url`` (migrated here), after filling it with ``stored`` older ones."""
    engine = make_engine(url)
    upgrade(engine)
    if stored:
        seconds = fill_stored(engine, stored)
        print(f"{name}: filled {stored:,} stored articles in {seconds:.0f} s ({uptime()})")
    _, links_before, hits_before = _counts(engine)
    began_at = datetime.now(UTC)
    stop = StopFlag()
    errors: list[BaseException] = []

    def daemon() -> None:
        try:
            run_store(settings, stop, engine=engine, group_id=f"bench-{uuid.uuid4().hex[:8]}",
                      batch_size=batch_size,
                      consumer_overrides={"session_timeout_ms": 6000,
                                          "heartbeat_interval_ms": 1000})
        except BaseException as error:  # reported below, not swallowed
            errors.append(error)
            stop.stop()

    began = time.perf_counter()
    cpu_began = time.process_time()
    thread = threading.Thread(target=daemon, name=f"store-{name}")
    thread.start()
    stored = 0
    try:
        while stored < count and not stop.stopping:
            time.sleep(0.25)
            with engine.connect() as connection:
                # This run's rows only, through the stored_at index: counting a million
                # pre-filled rows four times a second would load the database itself.
                stored = connection.execute(
                    select(func.count()).select_from(tables.articles)
                    .where(tables.articles.c.stored_at >= began_at)).scalar_one()
        finished = time.perf_counter()
        cpu = time.process_time() - cpu_began
    finally:
        stop.stop()
        thread.join(timeout=60)
    if errors:
        raise errors[0]
    stored_at = tables.articles.c.stored_at
    with engine.connect() as connection:
        # The pre-filled articles were stored a year earlier: only this run's count.
        first, last = connection.execute(
            select(func.min(stored_at), func.max(stored_at)).where(stored_at >= began_at)
        ).one()
        first_batch = connection.execute(
            select(func.count()).select_from(tables.articles)
            .where(stored_at == first)).scalar_one()
    _, links, hits = _counts(engine)
    engine.dispose()
    window = (as_utc(last) - as_utc(first)).total_seconds()
    steady = (count - first_batch) / window if window > 0 else float("nan")
    return Figures(name, count, steady, count / (finished - began), links - links_before,
                   hits - hits_before, stored, 1000 * cpu / count)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
    parser.add_argument("--only", choices=["postgresql", "sqlite"])
    parser.add_argument("--stored", type=int, default=0, metavar="N",
                        help="articles stored in each database before the timed run")
    args = parser.parse_args()
    tune_gc_for_batches()  # as `newswatch store` does

    with (tempfile.TemporaryDirectory(prefix="bench-store-") as scratch,
          local_broker(scratch=Path(scratch)) as (_, bootstrap)):
        settings = load_settings(kafka_bootstrap_servers=bootstrap,
                                 kafka_topic_prefix=f"bench.{uuid.uuid4().hex[:8]}.")
        ensure_topics(settings, partitions=3)
        publish(settings, args.articles)
        results: list[Figures] = []
        if args.only in (None, "postgresql"):
            base = os.environ.get(POSTGRES_ENV)
            if not base:
                print(f"PostgreSQL skipped: {POSTGRES_ENV} is not set "
                      "(eval \"$(scripts/postgres.sh start)\")")
            else:
                with fresh_schema(base, "bench") as url:
                    results.append(run_once(settings, url, "postgresql", args.articles,
                                            args.batch_size, args.stored))
        if args.only in (None, "sqlite"):
            url = f"sqlite:///{Path(scratch) / 'bench.db'}"
            results.append(run_once(settings, url, "sqlite", args.articles,
                                    args.batch_size, args.stored))
    print(f"\n{'database':<12}{'articles':>10}{'steady/s':>12}{'end-to-end/s':>14}"
          f"{'entity links':>14}{'hits':>8}{'CPU ms/article':>16}")
    for row in results:
        print(f"{row.database:<12}{row.articles:>10}{row.steady_per_s:>12,.0f}"
              f"{row.end_to_end_per_s:>14,.0f}{row.entity_links:>14}{row.hits:>8}"
              f"{row.cpu_ms_per_article:>16.3f}")
    print(f"(batch size {args.batch_size}; {args.stored:,} articles stored before; "
          "CPU: this process, the daemon thread and SQLite, not PostgreSQL's server; "
          f"{os.cpu_count()} CPUs; "
          f"broker, database and daemon on this machine; {uptime()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
