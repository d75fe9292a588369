"""The machinery of the end-to-end and fault tests: the four daemons as real subprocesses
(``python -m newswatch.cli <stage>``) configured by environment variables, and what the
tests ask of SQL and Kafka afterwards.

Everything here is real: the daemons are the shipped entry points, the broker is Kafka,
the database PostgreSQL. Nothing is mocked; a test only decides when a process dies.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer
from kafka.structs import TopicPartition
from sqlalchemy import Engine, func, select

from schemas import tables
from tests.alert.conftest import alerted_pairs as alert_carried
from tests.support.daemons import DaemonProcess, stop_all
from tests.support.waits import wait_for

REPO = Path(__file__).resolve().parents[2]
STAGES = ("producer", "enrich", "store", "alert")
# The line each daemon logs once it has started (signal handlers installed, clients made).
READY = {"producer": "producer started", "enrich": "enrich started",
         "store": "storing enriched articles", "alert": "evaluating alert rules"}


def pipeline_env(*, bootstrap: str, prefix: str, database_url: str, state_dir: Path,
                 feeds_file: Path, rules_file: Path, **extra: str) -> dict[str, str]:
    """The environment of every daemon of one test: this test's broker, topics, database
    and files, fast polls and short timeouts. ``extra`` adds NEWSWATCH_<NAME> variables."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("NEWSWATCH_") and name != "KAFKA_BOOTSTRAP_SERVERS"}
    env.update({
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "NEWSWATCH_KAFKA_TOPIC_PREFIX": prefix,
        "NEWSWATCH_DATABASE_URL": database_url,
        "NEWSWATCH_STATE_DIR": str(state_dir),
        "NEWSWATCH_FEEDS_FILE": str(feeds_file),
        "NEWSWATCH_RULES_FILE": str(rules_file),
        "NEWSWATCH_LOG_FORMAT": "text",
        "NEWSWATCH_PRODUCER_DEFAULT_INTERVAL_S": "1",
        "NEWSWATCH_PRODUCER_CONNECT_TIMEOUT_S": "2",
        "NEWSWATCH_PRODUCER_READ_TIMEOUT_S": "5",
        "NEWSWATCH_PRODUCER_TOTAL_TIMEOUT_S": "10",
        "NEWSWATCH_PRODUCER_DELIVERY_TIMEOUT_S": "10",
        "NEWSWATCH_ALERT_POLL_INTERVAL_S": "0.1",
        "PYTHONUNBUFFERED": "1",
    })
    for name, value in extra.items():
        env[f"NEWSWATCH_{name.upper()}"] = value
    return env


class Daemon(DaemonProcess):
    """One stage as a child process; it may be started again after it died."""

    def __init__(self, stage: str, env: dict[str, str], log_path: Path,
                 args: tuple[str, ...] = ()) -> None:
        super().__init__(stage, (stage, *args), env, log_path, cwd=REPO)
        self.stage = stage

    def ready(self) -> bool:
        """True once the current process logged that it started: a SIGTERM before that
        (while it imports and loads its model) ends it by the signal's default action."""
        return self.running() and self.logged(READY[self.stage])


@dataclass
class Pipeline:
    """The four daemons of one test. Use as a context manager: leaving it kills them all."""

    env: dict[str, str]
    log_dir: Path
    args: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    daemons: dict[str, Daemon] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for stage in STAGES:
            self.daemons[stage] = Daemon(stage, self.env, self.log_dir / f"{stage}.log",
                                         self.args.get(stage, ()))

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill_all()

    def __getitem__(self, stage: str) -> Daemon:
        return self.daemons[stage]

    def start(self, *stages: str) -> None:
        for stage in stages or STAGES:
            self.daemons[stage].start()

    def check_alive(self, *allowed_dead: str) -> None:
        """Fail at once, with the log, when a daemon exited that should be running."""
        for stage, daemon in self.daemons.items():
            if stage not in allowed_dead:
                daemon.check()

    def stop_all(self, timeout_s: float = 30.0) -> dict[str, int | None]:
        """SIGTERM every running daemon at once, then wait for each."""
        return stop_all(list(self.daemons.values()), timeout_s)

    def kill_all(self) -> None:
        for daemon in self.daemons.values():
            if daemon.running():
                daemon.kill()

    def logs(self, lines: int = 25) -> str:
        return "\n".join(f"--- {stage} ---\n{daemon.tail(lines)}"
                         for stage, daemon in self.daemons.items())


def wait_until(condition: Callable[[], bool], *, timeout_s: float, what: str,
               pipeline: Pipeline | None = None, allowed_dead: Iterable[str] = (),
               status: Callable[[], str] | None = None, interval_s: float = 0.25) -> float:
    """`tests.support.waits.wait_for` that fails at once when a daemon of ``pipeline``
    dies, and on timeout shows ``status()`` and the daemons' logs."""

    def check() -> None:
        if pipeline is not None:
            pipeline.check_alive(*allowed_dead)

    def detail() -> str:
        shown = status() if status is not None else ""
        return f"{shown}\n{pipeline.logs() if pipeline is not None else ''}"

    return wait_for(condition, timeout_s, what, check=check, detail=detail,
                    interval_s=interval_s)


# --- What SQL holds -----------------------------------------------------------------------


@dataclass(frozen=True)
class SqlCounts:
    """Rows and distinct keys of the tables the three zeros are about."""

    articles: int
    article_ids: int
    topic_hits: int
    topic_hit_keys: int
    alerts: int
    alert_dedup_keys: int
    alerts_sent: int
    alerted_pairs: int

    @property
    def duplicate_rows(self) -> int:
        return ((self.articles - self.article_ids) + (self.topic_hits - self.topic_hit_keys)
                + (self.alerts - self.alert_dedup_keys))


def _scalar(engine: Engine, query: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one() or 0)


def sql_counts(engine: Engine) -> SqlCounts:
    a, h, al = tables.articles, tables.topic_hits, tables.alerts
    with engine.connect() as conn:
        def one(query: Any) -> int:
            return int(conn.execute(query).scalar_one() or 0)

        hit_keys = select(h.c.article_id, h.c.topic).distinct().subquery()
        return SqlCounts(
            articles=one(select(func.count()).select_from(a)),
            article_ids=one(select(func.count(a.c.id.distinct()))),
            topic_hits=one(select(func.count()).select_from(h)),
            topic_hit_keys=one(select(func.count()).select_from(hit_keys)),
            alerts=one(select(func.count()).select_from(al)),
            alert_dedup_keys=one(select(func.count(al.c.dedup_key.distinct()))),
            alerts_sent=one(select(func.count()).select_from(al).where(al.c.status == "sent")),
            alerted_pairs=len(alert_carried(engine)),  # a pair twice counts twice
        )


def article_ids(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(tables.articles.c.id)).scalars())


def expected_alert_pairs(engine: Engine, rule_topics: Mapping[str, str]) -> set[tuple[str, str]]:
    """(rule, article id) for every stored hit on a rule's topic: what must be alerted."""
    h = tables.topic_hits
    with engine.connect() as conn:
        rows = conn.execute(select(h.c.topic, h.c.article_id)
                            .where(h.c.topic.in_(sorted(set(rule_topics.values()))))).all()
    by_topic: dict[str, set[str]] = {}
    for topic, article in rows:
        by_topic.setdefault(topic, set()).add(article)
    return {(rule, article) for rule, topic in rule_topics.items()
            for article in by_topic.get(topic, set())}


def alerted_pairs(engine: Engine) -> dict[tuple[str, str], int]:
    """(rule, article id) -> the alert that carried it."""
    al = tables.alerts
    with engine.connect() as conn:
        rows = conn.execute(select(al.c.id, al.c.rule, al.c.article_ids)).all()
    return {(rule, article): int(alert) for alert, rule, ids in rows for article in ids or []}


def alert_rows(engine: Engine) -> dict[int, tuple[str, str]]:
    """alert id -> (dedup key, status)."""
    al = tables.alerts
    with engine.connect() as conn:
        rows = conn.execute(select(al.c.id, al.c.dedup_key, al.c.status)).all()
    return {int(row.id): (row.dedup_key, row.status) for row in rows}


def evaluator_caught_up(engine: Engine) -> bool:
    """True when the alert evaluator evaluated every stored topic hit."""
    hits = tables.topic_hits
    with engine.connect() as conn:
        waiting = conn.execute(select(func.count()).select_from(hits)
                               .where(hits.c.evaluated.is_(False))).scalar()
    return not waiting


def pending_sends(engine: Engine) -> int:
    s = tables.alert_sends
    return _scalar(engine, select(func.count()).select_from(s).where(s.c.status != "sent"))


def delivery_outcomes(engine: Engine) -> dict[str, int]:
    """Attempts recorded in ``deliveries`` per outcome (sent, retry, failed)."""
    d = tables.deliveries
    with engine.connect() as conn:
        rows = conn.execute(select(d.c.outcome, func.count()).group_by(d.c.outcome)).all()
    return {str(outcome): int(count) for outcome, count in rows}


# --- What Kafka holds ---------------------------------------------------------------------


def topic_keys(bootstrap: str, topic: str, timeout_s: float = 60.0) -> list[str]:
    """The key of every message on ``topic``, from the beginning to its current end."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), enable_auto_commit=False,
                             request_timeout_ms=15_000)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        keys: list[str] = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            assert time.monotonic() < deadline, f"could not read {topic} to its end"
            for records in consumer.poll(timeout_ms=500, max_records=5000).values():
                keys.extend(r.key.decode() if r.key else "" for r in records)
        return keys
    finally:
        consumer.close()


def topic_size(bootstrap: str, topic: str) -> int:
    """Messages on ``topic`` (the sum of its partitions' end offsets); -1 when unreadable."""
    try:
        consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","),
                                 request_timeout_ms=5_000, bootstrap_timeout_ms=3_000)
    except Exception:
        return -1
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return sum(consumer.end_offsets(tps).values()) if tps else 0
    except Exception:
        return -1
    finally:
        consumer.close()
