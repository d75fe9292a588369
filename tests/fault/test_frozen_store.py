"""Fault 2 of issue 16, the blocking half: a store process frozen inside its transaction.

Two `newswatch store` processes in one group on PostgreSQL, one partition each. Articles
come in pairs, one per partition, both naming the same new entities, so the two processes
create the same entity rows at the same time. One process is frozen (SIGSTOP) while its
transaction is open (PostgreSQL shows its session "idle in transaction"), for 40 s.

Before: every batch of the other process naming one of the frozen transaction's new
entities waited on it, for the whole freeze, and so did its replay of the frozen one's
partition after the rebalance. Now new entities are committed outside the batch's
transaction and PostgreSQL ends a transaction idle for 15 s: the other process keeps
storing its own partition through the freeze and takes over the frozen one's. After the
resume nothing is lost, nothing stored twice, and the alert evaluator, ticking all along,
alerts every article once.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kafka import KafkaProducer
from sqlalchemy import Engine, func, select, text

from consumers.alert.outbox import run_tick
from newswatch.kafka_admin import ensure_topics
from newswatch.settings import Settings
from schemas import tables
from tests.alert.conftest import ledger_pairs
from tests.alert.test_evaluate import _one, _rules
from tests.factories import make_enriched, make_entity, make_hit
from tests.fault.chaos import report
from tests.producer_fixtures import unique_prefix
from tests.support.waits import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.fault]
ROOT = Path(__file__).resolve().parents[2]
FREEZE_S = 40.0
PAIRS_PER_S = 10


class PairPublisher(threading.Thread):
    """Publishes article pairs (partition 0 and 1) naming the same new entities."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        self.topic = topic
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        self.sent: dict[int, list[tuple[str, float]]] = {0: [], 1: []}
        self.stopping = threading.Event()

    def run(self) -> None:
        pair = 0
        while not self.stopping.is_set():
            # Pair k names entities k and k+1: a batch creates the names its neighbours'
            # next batches need, so the two processes keep meeting on uncommitted rows.
            entities = [make_entity(f"Entity {pair}", "ORG"),
                        make_entity(f"Entity {pair + 1}", "ORG")]
            for partition in (0, 1):
                item = make_enriched(entities=entities, topics=[make_hit("is_threat", 0.9)],
                                     published=datetime.now(UTC))
                self.producer.send(self.topic, key=item.article.id.encode(),
                                   value=item.to_bytes(), partition=partition).get(timeout=30)
                self.sent[partition].append((item.article.id, time.monotonic()))
            pair += 1
            self.stopping.wait(1 / PAIRS_PER_S)
        self.producer.flush()
        self.producer.close()

    def ids(self) -> set[str]:
        return {article for sent in self.sent.values() for article, _ in sent}


def _stored(engine: Engine, ids: list[str]) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(tables.articles)
                                .where(tables.articles.c.id.in_(ids))).scalar() or 0)


def _idle_in_transaction(engine: Engine, name: str) -> bool:
    """Whether ``name``'s session waits for its client inside a transaction that has
    written (holds a row-exclusive lock): what a process frozen mid-batch leaves."""
    with engine.connect() as conn:
        return conn.execute(text(
            "SELECT 1 FROM pg_stat_activity a WHERE a.application_name = :name "
            "AND a.state = 'idle in transaction' AND EXISTS (SELECT 1 FROM pg_locks l "
            "WHERE l.pid = a.pid AND l.mode = 'RowExclusiveLock')"),
            {"name": name}).first() is not None


def _sessions(engine: Engine) -> list[tuple[object, ...]]:
    """The store processes' sessions: what each does or waits on (printed on failure)."""
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(
            "SELECT application_name, state, wait_event_type, wait_event, "
            "now() - xact_start, left(query, 80) FROM pg_stat_activity "
            "WHERE application_name LIKE 'store-%' ORDER BY application_name"))]


def _store(env: dict[str, str], name: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "newswatch.cli", "store"],
                            env={**env, "PGAPPNAME": name}, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=log.open("wb"))


def test_a_frozen_store_process_does_not_stop_the_other_and_loses_nothing(
        kafka_bootstrap: str, engine: Engine, tmp_path: Path) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: a frozen writer holds the whole file "
                    "(run several store processes on PostgreSQL)")
    db_url = engine.url.render_as_string(hide_password=False)
    prefix = unique_prefix()
    settings = Settings(kafka_bootstrap_servers=kafka_bootstrap, kafka_topic_prefix=prefix,
                        database_url=db_url, kafka_partitions=2)
    topic = ensure_topics(settings).enriched
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWATCH_")}
    env.update({"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "NEWSWATCH_DATABASE_URL": db_url,
                "NEWSWATCH_KAFKA_TOPIC_PREFIX": prefix, "NEWSWATCH_LOG_FORMAT": "json",
                "NEWSWATCH_STATE_DIR": str(tmp_path / "state")})
    rules = _rules(engine, _one("    match: {topics: [is_threat]}\n"))
    stores = {name: _store(env, name, tmp_path / f"{name}.log") for name in ("store-a", "store-b")}
    publisher = PairPublisher(kafka_bootstrap, topic)
    alert_ticks = 0
    try:
        publisher.start()
        wait_for(lambda: _stored(engine, list(publisher.ids())) >= 100, timeout_s=90,
                 what="both store processes storing")
        # Freeze store-a at a moment its transaction is open.
        frozen = stores["store-a"]
        for _attempt in range(400):
            os.kill(frozen.pid, signal.SIGSTOP)
            if _idle_in_transaction(engine, "store-a"):
                break
            os.kill(frozen.pid, signal.SIGCONT)
            time.sleep(random.uniform(0.0, 0.05))
        else:
            pytest.fail("store-a was never caught inside its transaction")
        frozen_at = time.monotonic()
        while time.monotonic() < frozen_at + FREEZE_S:
            run_tick(engine, rules, datetime.now(UTC))  # the evaluator ticks on
            alert_ticks += 1
            if alert_ticks % 10 == 5:
                print(_sessions(engine))
            time.sleep(1.0)
        # What was sent in the freeze's first half is stored before it ends, whichever
        # partition store-b holds: its own all along, the frozen one's after the rebalance.
        early = [article for sent in publisher.sent.values() for article, at in sent
                 if frozen_at < at < frozen_at + FREEZE_S / 2]
        stored_during_freeze = _stored(engine, early)
        still_frozen = _idle_in_transaction(engine, "store-a")
        os.kill(frozen.pid, signal.SIGCONT)
        time.sleep(3)
        publisher.stopping.set()
        publisher.join(timeout=30)
        sent = publisher.ids()
        wait_for(lambda: _stored(engine, list(sent)) == len(sent), timeout_s=90,
                 what="every article stored after the resume")
        for _ in range(3):
            run_tick(engine, rules, datetime.now(UTC))
        assert all(process.poll() is None for process in stores.values()), "a store exited"
    finally:
        publisher.stopping.set()
        for process in stores.values():
            if process.poll() is None:
                os.kill(process.pid, signal.SIGCONT)
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()

    with engine.connect() as conn:
        hits = conn.execute(select(tables.topic_hits.c.article_id)).scalars().all()
        alerted = [aid for _, aid in ledger_pairs(engine)]
        entities = conn.execute(select(func.count()).select_from(tables.entities)).scalar()
    print(f"frozen store ({FREEZE_S:.0f} s, {alert_ticks} evaluator ticks meanwhile): "
          f"{len(sent)} articles, {stored_during_freeze} of the {len(early)} sent in the "
          f"freeze's first half stored during it; {len(hits) - len(set(hits))} hits twice, "
          f"{len(sent - set(alerted))} not alerted, {len(alerted) - len(set(alerted))} "
          f"alerted twice; {entities} entities; frozen transaction ended by the server: "
          f"{not still_frozen}")
    assert early, "nothing was sent during the freeze"
    assert stored_during_freeze == len(early), "the other store process was held back"
    assert not still_frozen, "the frozen transaction was still open at the end of the freeze"
    assert sorted(hits) == sorted(sent), "a hit lost or stored twice"
    assert sorted(alerted) == sorted(sent), "an alert skipped or decided twice"
    report("Two store processes, one frozen inside its transaction (PostgreSQL)",
           faults=f"SIGSTOP for {FREEZE_S:.0f} s mid-transaction",
           volume=f"{len(sent)} articles, {len(alerted)} alerted",
           lost=len(sent - set(hits)), duplicated=len(hits) - len(set(hits)),
           repeated=f"{len(alerted) - len(set(alerted))} alerted twice",
           recovery=f"the other stored {stored_during_freeze} of {len(early)} during the "
                    "freeze")
