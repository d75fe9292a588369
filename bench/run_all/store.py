"""Section 3, store: articles per second from Kafka into PostgreSQL and into SQLite
(`bench.bench_store`'s daemon loop), the collector tuned as ``newswatch store`` tunes it."""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from bench import bench_store
from bench.run_all.section import Figures, Row, Run, Section, number
from consumers.store.daemon import DEFAULT_BATCH, tune_gc_for_batches
from newswatch.kafka_admin import ensure_topics
from newswatch.settings import Settings
from tests.support.postgres import POSTGRES_ENV, fresh_schema

NO_POSTGRES = f"{POSTGRES_ENV} is not set (eval \"$(scripts/postgres.sh start)\")"


@contextlib.contextmanager
def store_gc() -> Iterator[None]:
    """The collector tuned as ``newswatch store`` tunes it, restored afterwards."""
    threshold = gc.get_threshold()
    tune_gc_for_batches()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def _figures(figures: bench_store.Figures) -> Figures:
    return {"steady_per_s": round(figures.steady_per_s, 1),
            "end_to_end_per_s": round(figures.end_to_end_per_s, 1),
            "entity_links": figures.entity_links, "topic_hits": figures.hits}


def measure(run: Run) -> Figures:
    count = run.sizes.store_articles
    settings = Settings(kafka_bootstrap_servers=run.bootstrap,
                        kafka_topic_prefix=run.prefix("store"))
    ensure_topics(settings, partitions=3)
    with contextlib.redirect_stdout(sys.stderr):
        size, _ = bench_store.publish(settings, count)
    out: Figures = {"articles": count, "message_bytes": size, "batch_size": DEFAULT_BATCH}
    with store_gc():
        base = os.environ.get(POSTGRES_ENV)
        if not base:
            out["postgresql"] = {"skipped": NO_POSTGRES}
        else:
            with fresh_schema(base, "bench") as url:
                out["postgresql"] = _figures(bench_store.run_once(
                    settings, url, "postgresql", count, DEFAULT_BATCH))
        out["sqlite"] = _figures(bench_store.run_once(
            settings, f"sqlite:///{run.folder('store') / 'store.db'}", "sqlite", count,
            DEFAULT_BATCH))
    return out


def rows(s: Figures, _results: dict[str, Any]) -> Sequence[Row]:
    out: list[Row] = []
    for db, label in (("postgresql", "Store: PostgreSQL"), ("sqlite", "Store: SQLite")):
        figures = s[db]
        if "skipped" in figures:
            out.append((label, "skipped", "", figures["skipped"]))
        else:
            out.append((label, f"{number(figures['steady_per_s'])} articles/s", "",
                        f"{s['articles']:,} enriched articles (~{s['message_bytes']:,} B), "
                        f"batch {s['batch_size']}; {number(figures['end_to_end_per_s'])}/s "
                        "including start-up"))
    return out


SECTION = Section("store", "Store", measure, rows)
