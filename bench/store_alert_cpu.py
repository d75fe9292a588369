"""The store's and the alert evaluator's CPU per full-text article, in process.

    .venv/bin/python -m bench.store_alert_cpu --capture /tmp/enriched.jsonl [--articles 300]
    .venv/bin/python -m bench.store_alert_cpu /tmp/enriched.jsonl [--database-url URL|pg]
        [--dump rows.txt]

``--capture`` enriches the first N full-text articles of `bench_fulltext`
(`fulltext_corpus`) once and writes each `EnrichedArticle`'s bytes, one per line: the
messages the store reads in the pipeline. The replay feeds them to `StoreHandler` (decode,
validate, `store_batch`) in batches of ``--batch`` records, runs one `run_tick` with the
bench's rule (`run_all.end_to_end.rules_yaml`: every article with a default topic) after
each batch, stores the same messages again (a replay changes nothing), then runs
``--idle`` idle evaluations. Printed: process CPU per article and per evaluation, and
per step of `store_batch`, measured by wrapping each function (a microsecond a call).

Clocks are fixed (each batch's ``stored_at``, each evaluation's ``now``), so ``--dump``
writes every table's rows, sorted, with their ids: two versions of the code given the same
messages must write the same file. ``pg`` stands for a fresh schema on
NEWSWATCH_TEST_POSTGRES_URL. Run it from the checkout whose code it should measure.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import json
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Engine, select

from bench.harness import postgres_database, uptime
from bench.run_all.end_to_end import rules_yaml
from consumers.alert.outbox import run_tick
from consumers.alert.ruleset import RulesHolder
from consumers.store import daemon as store_daemon
from consumers.store import write
from newswatch.db import make_engine
from newswatch.migrate import upgrade
from schemas import tables

BASE = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)  # the first batch's clock
STEPS = ("_stored_versions", "_upsert_articles", "_link_placed_stories", "_entity_ids",
         "_insert_entity_links", "_hit_rows")


def capture(path: Path, articles: int) -> None:
    """Enrich ``articles`` full-text bench articles; their messages to ``path``."""
    from bench.fulltext_corpus import fulltext_articles
    from consumers.enrich.enrich import Enricher
    from tests.factories import BASE_TIME, make_article

    enricher = Enricher.from_files()
    with path.open("wb") as out:
        for n, (title, text) in enumerate(fulltext_articles(articles)):
            article = make_article(url=f"https://wire.example.org/{n}", title=title,
                                   summary=text[:300], content=text, feed_id=f"full-{n % 15}",
                                   feed_name=f"Full-text wire {n % 15}",
                                   published=BASE_TIME + timedelta(seconds=n),
                                   content_hash=f"h{n}")
            out.write(enricher.enrich(article).to_bytes() + b"\n")


class StepTimers:
    """Process CPU per wrapped function of a module, added up while installed."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def wrap(self, owner: Any, name: str) -> None:
        function: Callable[..., Any] = getattr(owner, name)
        seconds = self.seconds

        def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                seconds[name] += time.process_time() - began

        setattr(owner, name, timed)


def records(messages: Sequence[bytes], start: int) -> list[Any]:
    """Stand-ins for kafka-python's ConsumerRecords (the handler reads ``value``)."""
    return [SimpleNamespace(value=value, topic="bench", partition=0, offset=start + n)
            for n, value in enumerate(messages)]


def dump(engine: Engine, path: Path) -> str:
    """Every table's rows, sorted, to ``path``; returns the file's sha256 prefix."""
    with engine.connect() as conn, path.open("w") as out:
        for table in tables.metadata.sorted_tables:
            names = [column.name for column in table.columns]
            lines = sorted(json.dumps(dict(zip(names, row, strict=True)), default=str,
                                      sort_keys=True) for row in conn.execute(select(table)))
            out.write(f"## {table.name} {len(lines)}\n")
            out.writelines(line + "\n" for line in lines)
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def replay(messages: list[bytes], engine: Engine, batch: int, idle: int,
           folder: Path) -> dict[str, float]:
    """The replay of the module docstring; process CPU seconds by what was timed."""
    (folder / "rules.yaml").write_text(rules_yaml("http://127.0.0.1:9/hook"))
    rules = RulesHolder(folder / "rules.yaml", dialect=engine.dialect.name,
                        state_dir=folder).current.rules
    timers = StepTimers()
    for name in STEPS:
        timers.wrap(write, name)
    stamps = iter(range(1, 1_000_000))
    original = write.store_batch

    def fixed_clock(engine: Engine, enriched: Any, now: datetime | None = None,
                    **kwargs: Any) -> write.StoreResult:
        return original(engine, enriched, BASE + timedelta(seconds=next(stamps)), **kwargs)

    store_daemon.store_batch = fixed_clock  # the handler's clock only; nothing else
    handler = store_daemon.StoreHandler(engine)
    gc.freeze()  # as the daemons do (`tune_gc_for_batches`, `settle_heap`)
    gc.set_threshold(20_000, 10, 10)
    cpu: dict[str, float] = defaultdict(float)
    for start in range(0, len(messages), batch):
        began = time.process_time()
        poison = handler(records(messages[start:start + batch], start))
        cpu["store"] += time.process_time() - began
        if poison:
            raise RuntimeError(f"poison in the captured messages: {poison[0].error}")
        began = time.process_time()
        run_tick(engine, rules, BASE + timedelta(seconds=start // batch + 1, milliseconds=500))
        cpu["evaluations"] += time.process_time() - began
        cpu["ticks"] += 1
    began = time.process_time()
    for start in range(0, len(messages), batch):
        handler(records(messages[start:start + batch], start))
    cpu["replay"] = time.process_time() - began
    idle_at = BASE + timedelta(hours=1)
    began = time.process_time()
    for n in range(idle):
        run_tick(engine, rules, idle_at + timedelta(milliseconds=200 * n))
    cpu["idle"] = time.process_time() - began
    cpu.update({f"step {name}": seconds for name, seconds in timers.seconds.items()})
    return cpu


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("messages", type=Path)
    parser.add_argument("--capture", action="store_true",
                        help="write the messages file instead of replaying it")
    parser.add_argument("--articles", type=int, default=300)
    parser.add_argument("--database-url", default=None,
                        help="default: a new SQLite file; 'pg': a fresh PostgreSQL schema")
    parser.add_argument("--batch", type=int, default=40)
    parser.add_argument("--idle", type=int, default=200)
    parser.add_argument("--dump", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.capture:
        capture(args.messages, args.articles)
        return 0
    messages = args.messages.read_bytes().splitlines()
    folder = Path(tempfile.mkdtemp(prefix="store-alert-cpu-"))
    with contextlib.ExitStack() as stack:
        url = args.database_url or f"sqlite:///{folder / 'bench.db'}"
        if url == "pg":
            url = stack.enter_context(postgres_database("storealert"))
        engine = make_engine(url)
        stack.callback(engine.dispose)
        upgrade(engine)
        cpu = replay(messages, engine, args.batch, args.idle, folder)
        n = len(messages)
        print(f"{engine.dialect.name}: {n} full-text messages in batches of {args.batch}; "
              f"{uptime()}")
        print(f"  store: {1000 * cpu['store'] / n:.2f} ms per article "
              f"(the same messages again: {1000 * cpu['replay'] / n:.2f})")
        for name in STEPS:
            print(f"    {name}: {1000 * cpu.get(f'step {name}', 0.0) / n:.3f} ms")
        print(f"  evaluation after each batch: {1000 * cpu['evaluations'] / cpu['ticks']:.1f} "
              f"ms ({1000 * cpu['evaluations'] / n:.2f} per article); idle evaluation: "
              f"{1000 * cpu['idle'] / max(1, args.idle):.2f} ms")
        if args.dump is not None:
            print(f"  rows: sha256 {dump(engine, args.dump)}... in {args.dump}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
