"""Recovery after a broker restart, per consumer daemon (issue 16, item 8).

Starts a Kafka broker of its own (the local KRaft broker, on free ports), a SQLite
database, and the three consumer daemons as processes (`newswatch enrich`, `newswatch
store`, `newswatch stories run`); feeds articles through them; stops the broker for
``--outage`` seconds and starts it again; publishes more articles at once and measures,
from the moment the broker answers again, how long until each daemon handled its first
new article:

- enrich: the first new message on news.enriched;
- store: the first new row in ``articles``;
- stories: the first new row in ``story_articles``.

It also counts each daemon's log lines (and those at ERROR) from the stop to its
recovery. Target: <= 10 s each, "a few" lines. Prints a table with ``uptime`` beside it;
run it under the shared lock: ``flock /work/wt/bench.lock .venv/bin/python -m
bench.bench_broker_restart``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from kafka import KafkaProducer
from sqlalchemy import func, select

from bench.harness import uptime
from newswatch.db import make_engine
from newswatch.kafka_admin import ensure_topics
from newswatch.kafka_local import LocalKafka
from newswatch.migrate import upgrade
from newswatch.settings import Settings
from schemas import tables
from tests.factories import make_article
from tests.producer_fixtures import TopicWatch
from tests.support.daemons import DaemonProcess, stop_all
from tests.support.ports import free_port
from tests.support.waits import wait_for

TARGET_S = 10.0
DAEMONS = {"enrich": ["enrich"], "store": ["store"], "stories": ["stories", "run"]}


def _publish(bootstrap: str, topic: str, count: int, text: str) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", retries=10,
                             reconnect_backoff_ms=100)
    for _ in range(count):
        article = make_article(title="Officials meet in Kabul", summary=text,
                               content=text * 3)
        producer.send(topic, key=article.id.encode(), value=article.to_bytes())
    producer.flush(timeout=60)
    producer.close()


def _size(watch: TopicWatch) -> int:
    """Messages on the watched topic so far; -1 while the broker is still coming back."""
    try:
        return watch.size()
    except Exception:  # the broker is still coming back: not yet
        return -1


def _count(engine: object, table: object) -> int:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        return int(conn.execute(select(func.count()).select_from(table)).scalar() or 0)


def _lines_since(path: Path, offset: int) -> tuple[int, int]:
    """(lines, ERROR lines) written to ``path`` after byte ``offset``."""
    with path.open("rb") as handle:
        handle.seek(offset)
        lines = handle.read().decode("utf-8", "replace").splitlines()
    errors = 0
    for line in lines:
        try:
            errors += json.loads(line).get("level") in ("ERROR", "CRITICAL")
        except json.JSONDecodeError:
            errors += "Error" in line or "ERROR" in line
    return len(lines), errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--outage", type=float, default=6.0, help="seconds the broker is down")
    parser.add_argument("--articles", type=int, default=30, help="articles before and after")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="newswatch-restart-"))
    broker = LocalKafka(state_dir=work / "kafka", port=free_port(),
                        controller_port=free_port(), heap="384m")
    bootstrap = broker.start(timeout_s=180)
    db_url = f"sqlite:///{work / 'newswatch.db'}"
    engine = make_engine(db_url)
    upgrade(engine)
    prefix = f"b{uuid.uuid4().hex[:8]}."
    settings = Settings(kafka_bootstrap_servers=bootstrap, kafka_topic_prefix=prefix,
                        database_url=db_url)
    names = ensure_topics(settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWATCH_")}
    env.update({"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "NEWSWATCH_DATABASE_URL": db_url,
                "NEWSWATCH_KAFKA_TOPIC_PREFIX": prefix, "NEWSWATCH_LOG_FORMAT": "json",
                "NEWSWATCH_STATE_DIR": str(work / "state")})
    logs = {name: work / f"{name}.log" for name in DAEMONS}
    processes = [DaemonProcess(name, command, env, logs[name]).start()
                 for name, command in DAEMONS.items()]

    def check() -> None:
        for process in processes:
            process.check()

    def _wait(condition: Callable[[], bool], timeout_s: float, what: str) -> float:
        """The moment (monotonic) ``condition`` held, polled every 50 ms."""
        began = time.monotonic()
        return began + wait_for(condition, timeout_s, what, interval_s=0.05, check=check)

    text = "Officials of the Taliban met diplomats in Kabul to discuss recognition. "
    try:
        _publish(bootstrap, names.articles, args.articles, text)
        _wait(lambda: _count(engine, tables.articles) >= args.articles
              and _count(engine, tables.story_articles) >= args.articles, 300,
              "the first articles stored and placed")
        enriched = TopicWatch(bootstrap, names.enriched)
        before = {"enrich": _size(enriched), "store": _count(engine, tables.articles),
                  "stories": _count(engine, tables.story_articles)}
        enriched.close()
        offsets = {name: path.stat().st_size for name, path in logs.items()}
        broker.stop()
        time.sleep(args.outage)
        broker.start(timeout_s=180)
        answering = time.monotonic()
        _publish(bootstrap, names.articles, args.articles, text)
        enriched = TopicWatch(bootstrap, names.enriched)
        probes: dict[str, Callable[[], bool]] = {
            "enrich": lambda: _size(enriched) > before["enrich"],
            "store": lambda: _count(engine, tables.articles) > before["store"],
            "stories": lambda: _count(engine, tables.story_articles) > before["stories"],
        }
        recovered = {}
        for name, probe in probes.items():
            recovered[name] = _wait(probe, 300, f"{name} after the restart") - answering
        enriched.close()
        time.sleep(2)  # lines a daemon writes just after recovering count too
        load = uptime()
        print(f"Broker stopped {args.outage:.0f} s; times from the broker answering again "
              f"to each daemon's first new article ({args.articles} articles published "
              "then)\n")
        print("| daemon | recovery | target | log lines since the stop (ERROR) | uptime |")
        print("|---|---|---|---|---|")
        worst = 0.0
        for name in DAEMONS:
            lines, errors = _lines_since(logs[name], offsets[name])
            mark = "ok" if recovered[name] <= TARGET_S else "MISSED"
            worst = max(worst, recovered[name])
            print(f"| {name} | {recovered[name]:.1f} s | <= {TARGET_S:.0f} s {mark} | "
                  f"{lines} ({errors}) | {load} |")
        return 0 if worst <= TARGET_S else 1
    finally:
        stop_all(processes)
        engine.dispose()
        broker.stop()


if __name__ == "__main__":
    sys.exit(main())
