"""Retention at size: how long `db prune` of old articles blocks a writer storing new ones.

Stores ``--articles`` old articles (a year back, each with a topic hit and an entity link,
in bulk), then runs a writer thread that commits one new article with its hit and entity
link per transaction (the rows the store writes) as fast as it can, and records how long
each commit took. First the writer runs alone (``--baseline`` seconds), then beside
`consumers.store.prune.prune` deleting everything older than 30 days in its batches
(``--batch-size``, the shipped default unless given). The figure is the writer's longest
stall while the prune ran, beside the target of 1 s (issue 17, item 6).

    .venv/bin/python -m bench.bench_prune                 # SQLite
    .venv/bin/python -m bench.bench_prune --postgres      # scripts/postgres.sh's server
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from bench.bench_alert import TOPICS, fill, insert
from bench.harness import postgres_database, uptime
from consumers.store.prune import DEFAULT_BATCH, prune
from newswatch import migrate
from newswatch.db import make_engine
from schemas import tables

TARGET_S = 1.0


class Writer:
    """Commits one article per transaction until stopped; records each commit's time."""

    def __init__(self, engine: Engine, entity_id: int) -> None:
        self.engine = engine
        self.entity_id = entity_id
        self.durations: list[tuple[float, float]] = []  # (started, seconds)
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.thread = threading.Thread(target=self._run, name="bench-writer")
        self.n = 0

    def _run(self) -> None:
        while not self.stop.is_set():
            began = time.monotonic()
            try:
                insert(self.engine, self.n, TOPICS[self.n % 3], datetime.now(UTC),
                       entity_ids=[self.entity_id])
            except Exception as exc:  # recorded and shown: a failed write is a finding
                self.errors.append(f"{type(exc).__name__}: {exc}"[:300])
            self.durations.append((began, time.monotonic() - began))
            self.n += 1

    def between(self, start: float, end: float) -> list[float]:
        return [seconds for began, seconds in self.durations
                if began + seconds >= start and began <= end]


def summary(durations: list[float]) -> dict[str, Any]:
    ordered = sorted(durations)
    if not ordered:
        return {"commits": 0}
    return {"commits": len(ordered),
            "median_ms": round(1000 * statistics.median(ordered), 1),
            "p99_ms": round(1000 * ordered[int(0.99 * (len(ordered) - 1))], 1),
            "longest_ms": round(1000 * ordered[-1], 1)}


def run(url: str, articles: int, batch_size: int, baseline_s: float) -> dict[str, Any]:
    engine = make_engine(url)
    migrate.upgrade(engine)
    began = time.perf_counter()
    fill(engine, articles)
    filled_s = time.perf_counter() - began
    with engine.begin() as conn:
        entity = conn.execute(tables.entities.insert().values(
            name="Writer entity", label="ORG")).inserted_primary_key[0]  # type: ignore[index]
    writer = Writer(engine, int(entity))
    writer.thread.start()
    try:
        time.sleep(baseline_s)
        start = time.monotonic()
        result = prune(engine, timedelta(days=30), batch_size=batch_size)
        end = time.monotonic()
        time.sleep(0.5)
    finally:
        writer.stop.set()
        writer.thread.join()
    with engine.connect() as conn:
        left = conn.execute(select(func.count()).select_from(tables.articles)).scalar()
    engine.dispose()
    during = summary(writer.between(start, end))
    return {
        "database": engine.dialect.name, "old_articles": articles,
        "fill_s": round(filled_s, 1), "batch_size": batch_size,
        "pruned": result.articles, "batches": result.batches,
        "prune_s": round(end - start, 1), "articles_left": left,
        "writer_alone": summary([s for b, s in writer.durations if b < start]),
        "writer_during_prune": during,
        "writer_errors": len(writer.errors),
        "first_error": writer.errors[0] if writer.errors else None,
        "target": f"longest stall <= {TARGET_S:.0f} s",
        "met": bool(during.get("longest_ms") is not None
                    and during["longest_ms"] <= 1000 * TARGET_S and not writer.errors),
        "uptime": uptime(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
    parser.add_argument("--baseline", type=float, default=3.0,
                        help="seconds the writer runs alone first")
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-prune-") as scratch:
        if args.postgres:
            with postgres_database() as url:
                report = run(url, args.articles, args.batch_size, args.baseline)
        else:
            url = f"sqlite:///{Path(scratch) / 'prune.db'}"
            report = run(url, args.articles, args.batch_size, args.baseline)
    print(json.dumps({"prune": report}))
    during = report["writer_during_prune"]
    print(f"{report['database']}: pruned {report['pruned']:,} articles in "
          f"{report['prune_s']} s ({report['batches']} batches of {report['batch_size']}); "
          f"writer's longest stall {during.get('longest_ms')} ms (p99 {during.get('p99_ms')}"
          f" ms, alone {report['writer_alone'].get('longest_ms')} ms) against "
          f"{report['target']}: {'met' if report['met'] else 'missed'}; {report['uptime']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
