"""Helpers of the hostile-input tests: the corpus, metric deltas, Kafka I/O, and the two
consumer daemons run in threads through their real entry points until they caught up.

Every test builds its own uuid topic prefix; the broker is the session's real one
(``kafka_bootstrap``). Metrics are read from prometheus_client's default registry, where
the daemons count them, as deltas around what a test did.
"""

from __future__ import annotations

import base64
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import TopicPartition
from prometheus_client import REGISTRY
from sqlalchemy import Engine

from consumers.enrich.daemon import GROUP_ID as ENRICH_GROUP
from consumers.enrich.daemon import ArticleEnricher, serve
from consumers.store.daemon import run_store
from newswatch.consumer_loop import LoopStats
from newswatch.daemon import StopFlag
from newswatch.settings import Settings
from schemas.messages import DeadLetter
from schemas.topics import TopicNames
from tests.support.waits import lag, wait_for

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
FEEDS = CORPUS / "feeds"
MESSAGES = CORPUS / "messages"
DEMO_FEEDS = HERE.parents[1] / "newswatch" / "demo" / "feeds"
FAST_GROUP = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000}


def prefix() -> str:
    """A topic prefix no other test uses."""
    return f"hostile{uuid.uuid4().hex[:10]}."


def settings(bootstrap: str, topic_prefix: str, **values: Any) -> Settings:
    return Settings(kafka_bootstrap_servers=bootstrap, kafka_topic_prefix=topic_prefix,
                    **values)


# --- metrics ------------------------------------------------------------------------


def metric(name: str, **labels: str) -> float:
    """The current value of one sample of the default registry (0 when never counted)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Metrics:
    """Deltas of samples since construction: ``Metrics().delta(name, **labels)``."""

    def __init__(self) -> None:
        self._before = {(s.name, tuple(sorted(s.labels.items()))): s.value
                        for family in REGISTRY.collect() for s in family.samples}

    def delta(self, name: str, **labels: str) -> float:
        before = self._before.get((name, tuple(sorted(labels.items()))), 0.0)
        return metric(name, **labels) - before


def repaired(stage: str, kind: str) -> tuple[str, dict[str, str]]:
    return "newswatch_input_repaired_total", {"stage": stage, "kind": kind}


# --- Kafka I/O ----------------------------------------------------------------------


def produce(bootstrap: str, topic: str, messages: Sequence[tuple[bytes | None, bytes | None]],
            **config: Any) -> None:
    """Send (key, value) pairs in order to partition 0 and wait for the acks. gzip lets a
    huge but repetitive value through the broker's 1 MB limit, as a hostile writer would."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", compression_type="gzip",
                             max_request_size=32 * 1024 * 1024, **config)
    try:
        futures = [producer.send(topic, key=key, value=value, partition=0)
                   for key, value in messages]
        producer.flush(timeout=60)
        for future in futures:
            future.get(timeout=60)
    finally:
        producer.close()


def read_all(bootstrap: str, topic: str, *, want: int = 0, timeout_s: float = 30.0
             ) -> list[Any]:
    """Every record of ``topic`` from its start; waits until there are ``want``."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             max_partition_fetch_bytes=16 * 1024 * 1024)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            partitions = consumer.partitions_for_topic(topic) or set()
            tps = [TopicPartition(topic, p) for p in sorted(partitions)]
            records: list[Any] = []
            if tps:
                consumer.assign(tps)
                consumer.seek_to_beginning(*tps)
                ends = consumer.end_offsets(tps)
                while any(consumer.position(tp) < ends[tp] for tp in tps):
                    assert time.monotonic() < deadline, f"could not read {topic} to its end"
                    for batch in consumer.poll(timeout_ms=300).values():
                        records.extend(batch)
            if len(records) >= want or time.monotonic() > deadline:
                return records
            time.sleep(0.3)
    finally:
        consumer.close()


def dead_letters(bootstrap: str, topic: str, want: int) -> list[DeadLetter]:
    letters = [DeadLetter.model_validate_json(r.value)
               for r in read_all(bootstrap, topic, want=want)]
    assert len(letters) == want, [(d.error_type, d.error[:200]) for d in letters]
    return letters


def original(letter: DeadLetter) -> bytes:
    return base64.b64decode(letter.value_b64)


# --- the consumer daemons in threads --------------------------------------------------


@dataclass
class Running:
    """A daemon function in a thread; ``error`` is what it raised, if anything."""

    stop: StopFlag = field(default_factory=StopFlag)
    error: BaseException | None = None
    result: Any = None
    thread: threading.Thread | None = None

    def check(self) -> None:
        if self.error is not None:
            raise AssertionError(f"the daemon died: {self.error!r}") from self.error


@contextmanager
def in_thread(target: Callable[[StopFlag], Any], name: str) -> Iterator[Running]:
    """Run ``target(stop)`` in a thread; on exit set the flag and join it."""
    running = Running()

    def body() -> None:
        try:
            running.result = target(running.stop)
        except BaseException as error:  # reported by check(), not lost in the thread
            running.error = error

    running.thread = threading.Thread(target=body, name=name, daemon=True)
    running.thread.start()
    try:
        yield running
    finally:
        running.stop.stop()
        running.thread.join(timeout=60)
        assert not running.thread.is_alive(), f"{name} did not stop"
    running.check()


def enrich_until_caught_up(config: Settings, enricher: ArticleEnricher,
                           timeout_s: float = 60.0) -> None:
    """`consumers.enrich.daemon.serve` until its group committed all of news.articles."""
    bootstrap = config.kafka_bootstrap_servers or ""
    topic = TopicNames.with_prefix(config.kafka_topic_prefix).articles
    with in_thread(lambda stop: serve(config, enricher, stop), "enrich") as running:
        wait_for(lambda: running.error is not None or lag(bootstrap, ENRICH_GROUP, topic) == 0,
                 timeout_s, f"enrich to commit all of {topic}")


def store_until_caught_up(config: Settings, engine: Engine, group: str,
                          timeout_s: float = 60.0) -> LoopStats:
    """`consumers.store.daemon.run_store` until ``group`` committed all of news.enriched."""
    bootstrap = config.kafka_bootstrap_servers or ""
    topic = TopicNames.with_prefix(config.kafka_topic_prefix).enriched
    with in_thread(lambda stop: run_store(config, stop, engine=engine, group_id=group,
                                          batch_size=50, consumer_overrides=FAST_GROUP),
                   "store") as running:
        wait_for(lambda: running.error is not None or lag(bootstrap, group, topic) == 0,
                 timeout_s, f"store to commit all of {topic}")
    assert isinstance(running.result, LoopStats)
    return running.result


def log_lines(records: Sequence[Any], logger: str, contains: str) -> list[Any]:
    """Log records of ``logger`` (or its children) whose message contains ``contains``."""
    return [r for r in records
            if (r.name == logger or r.name.startswith(logger + ".")) and contains in r.getMessage()]
