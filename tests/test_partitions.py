"""Partitions for scale-out: ensure_topics' default count splits evenly between 2 and 3
consumer processes of one group, on a real broker."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from kafka import KafkaAdminClient, KafkaConsumer

from newswatch.cli.kafka import local_kafka
from newswatch.kafka_admin import ensure_topics
from newswatch.kafka_clients import make_consumer
from newswatch.settings import Settings
from tests.support.waits import wait_for

pytestmark = pytest.mark.integration


def test_default_partition_count_is_twelve_and_configurable() -> None:
    assert Settings().kafka_partitions == 12
    assert Settings(kafka_partitions=24).kafka_partitions == 24
    assert local_kafka(Settings(kafka_partitions=7)).partitions == 7


def _partitions(bootstrap: str, topic: str) -> int:
    """The topic's partition count, once its metadata reached the broker (creation is
    asynchronous: right after it a describe may list none)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        deadline = time.monotonic() + 15
        while True:
            count = len(admin.describe_topics([topic])[0]["partitions"] or ())
            if count or time.monotonic() > deadline:
                return count
            time.sleep(0.2)
    finally:
        admin.close()


def test_ensure_topics_creates_the_configured_partitions(kafka_bootstrap: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    names = ensure_topics(Settings(kafka_bootstrap_servers=kafka_bootstrap,
                                   kafka_topic_prefix=prefix))
    for topic in (names.articles, names.enriched, names.dlq):
        assert _partitions(kafka_bootstrap, topic) == 12
    other = ensure_topics(Settings(kafka_bootstrap_servers=kafka_bootstrap,
                                   kafka_topic_prefix=f"u{prefix}", kafka_partitions=5))
    assert _partitions(kafka_bootstrap, other.articles) == 5


def test_an_existing_topic_with_fewer_partitions_is_kept_and_warned_about(
        kafka_bootstrap: str, caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(kafka_bootstrap_servers=kafka_bootstrap,
                        kafka_topic_prefix=f"t{uuid.uuid4().hex[:8]}.")
    names = ensure_topics(settings, partitions=3)
    # Wait until the broker lists the new topics' partitions: right after creation a
    # describe may list none, and ensure_topics rightly warns only about what it sees.
    for topic in (names.articles, names.enriched):
        assert _partitions(kafka_bootstrap, topic) == 3
    with caplog.at_level(logging.WARNING, logger="newswatch.kafka_admin"):
        ensure_topics(settings)
    assert _partitions(kafka_bootstrap, names.articles) == 3
    warned = {r.__dict__.get("topic") for r in caplog.records
              if "fewer partitions" in r.getMessage()}
    assert warned == {names.articles, names.enriched}


class Member:
    """One consumer of the group, polling in its own thread as a daemon's loop does."""

    def __init__(self, settings: Settings, topic: str, group: str) -> None:
        self.consumer: KafkaConsumer = make_consumer(settings, topic, group,
                                                     session_timeout_ms=6000,
                                                     heartbeat_interval_ms=1000)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.assigned: frozenset[int] = frozenset()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            self.consumer.poll(timeout_ms=100)
            with self.lock:
                self.assigned = frozenset(tp.partition for tp in self.consumer.assignment())

    def partitions(self) -> frozenset[int]:
        with self.lock:
            return self.assigned

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        self.consumer.close()


@pytest.fixture
def members() -> Iterator[list[Member]]:
    started: list[Member] = []
    yield started
    for member in started:
        member.close()


def _settled(members: list[Member], total: int, timeout_s: float = 60.0
             ) -> list[frozenset[int]]:
    """Each member's partitions once together they hold all ``total``, none twice."""
    held: list[frozenset[int]] = []

    def settled() -> bool:
        held[:] = [member.partitions() for member in members]
        return bool(all(held) and sum(map(len, held)) == total
                    and len(frozenset().union(*held)) == total)

    wait_for(settled, timeout_s, f"the group to hold all {total} partitions once",
             detail=lambda: f"held: {[sorted(m.partitions()) for m in members]}",
             interval_s=0.2)
    return held


# A second member of a group that has just formed sometimes waits out a whole rebalance
# round before kafka-python lets it in (seen about once in three loaded runs: the first
# member held all 12 partitions for 60 s). The assertion is the split once it is in; a
# run that never lets it in is run again once, and pytest's report says so.
@pytest.mark.flaky(reruns=1)
def test_twelve_partitions_split_evenly_between_two_then_three_consumers(
        kafka_bootstrap: str, group: str, members: list[Member]) -> None:
    settings = Settings(kafka_bootstrap_servers=kafka_bootstrap,
                        kafka_topic_prefix=f"t{uuid.uuid4().hex[:8]}.")
    topic = ensure_topics(settings).articles
    members += [Member(settings, topic, group) for _ in range(2)]
    assert sorted(len(held) for held in _settled(members, 12)) == [6, 6]
    members.append(Member(settings, topic, group))
    assert sorted(len(held) for held in _settled(members, 12)) == [4, 4, 4]
