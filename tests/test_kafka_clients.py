"""Kafka clients say who they are and log their group membership (a real broker)."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable

import pytest
from kafka import KafkaAdminClient, KafkaConsumer
from kafka.admin import NewTopic

from newswatch.kafka_clients import client_id, make_consumer, make_producer, partition_names
from newswatch.settings import Settings
from tests.support.waits import wait_for

pytestmark = pytest.mark.integration


def test_client_ids_name_the_daemon_host_and_process() -> None:
    assert client_id("enrich") == f"newswatch-enrich-{socket.gethostname()}-{os.getpid()}"


def _records(caplog: pytest.LogCaptureFixture, message: str, client: str
             ) -> list[logging.LogRecord]:
    return [r for r in caplog.records
            if r.getMessage() == message and getattr(r, "client_id", None) == client]


def _held(consumer: KafkaConsumer) -> list[str]:
    return partition_names(consumer.assignment() or ())


def _poll_until(consumers: list[KafkaConsumer], done: Callable[[], bool], what: str,
                caplog: pytest.LogCaptureFixture) -> None:
    """Poll every consumer in turn (a member takes part in a rebalance only while it
    polls) until ``done``; fail, showing the membership seen, after a bound generous for
    a loaded machine (a rebalance can take more than one round: a member may be asked to
    join again, or be dropped and rejoin, before the group is stable)."""
    def settled() -> bool:
        if done():
            return True
        for consumer in consumers:
            consumer.poll(timeout_ms=100)
        return done()

    def seen() -> str:
        held = {c.config["client_id"]: _held(c) for c in consumers}
        log = [(r.getMessage(), getattr(r, "client_id", None), getattr(r, "partitions", None))
               for r in caplog.records if r.name == "newswatch.kafka_clients"]
        return f"holding {held}; membership log {log}"

    wait_for(settled, 120, what, detail=seen, interval_s=0)


def _stable(consumers: list[KafkaConsumer], caplog: pytest.LogCaptureFixture,
            partitions: list[str]) -> bool:
    """Every consumer holds what it last logged being assigned, and together they hold
    ``partitions``, each once: the group is stable, not between two rounds."""
    held = [_held(c) for c in consumers]
    logged = [_joins(caplog, c.config["client_id"]) for c in consumers]
    return (all(joins and joins[-1].partitions == mine  # type: ignore[attr-defined]
                for joins, mine in zip(logged, held, strict=True))
            and sorted(p for mine in held for p in mine) == partitions)


def _joins(caplog: pytest.LogCaptureFixture, client: str) -> list[logging.LogRecord]:
    return _records(caplog, "joined consumer group: partitions assigned", client)


def test_joining_rebalancing_and_leaving_a_group_is_logged_with_the_partitions(
    kafka_bootstrap: str, topic: str, group: str, caplog: pytest.LogCaptureFixture
) -> None:
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    admin.close()
    both = [f"{topic}[0]", f"{topic}[1]"]
    settings = Settings(kafka_bootstrap_servers=kafka_bootstrap)
    caplog.set_level(logging.INFO, logger="newswatch.kafka_clients")

    # The daemons' own session timeout (10 s): with a shorter one, heartbeats a loaded
    # machine delays can drop a member from the group and start one more round. A round
    # the broker has to wait out lasts up to the rebalance timeout, which kafka-python
    # sets to max_poll_interval_ms (300 s by default): 30 s keeps one well inside the
    # wait's bound, and these consumers poll every few hundred milliseconds.
    group_settings = {"max_poll_interval_ms": 30_000}
    first = make_consumer(settings, topic, group, role="enrich", **group_settings)
    second = None
    try:
        me = first.config["client_id"]
        assert me == client_id("enrich")
        # A group can first form before the new topic's metadata has arrived: that join is
        # logged too, with no partitions, and a later one names them.
        _poll_until([first], lambda: _stable([first], caplog, both),
                    "the first consumer to hold both partitions", caplog)
        joined = _joins(caplog, me)[-1]
        assert joined.partitions == both  # type: ignore[attr-defined]
        assert joined.group == group  # type: ignore[attr-defined]
        gave_up_alone = len(_records(caplog, "consumer group rebalancing: partitions given up",
                                     me))

        second = make_consumer(settings, topic, group, role="enrich-2", **group_settings)
        other = second.config["client_id"]
        _poll_until([first, second], lambda: bool(
            _held(first) and _held(second) and _stable([first, second], caplog, both)),
            "the group of two to settle, one partition each", caplog)
        # The rebalance the second consumer caused: the first gave up all it held then
        # (later rounds, if any, are logged after it).
        given_up = _records(caplog, "consumer group rebalancing: partitions given up",
                            me)[gave_up_alone]
        assert given_up.partitions == both  # type: ignore[attr-defined]
        mine = _joins(caplog, me)[-1]
        theirs = _joins(caplog, other)[-1]
        assert sorted(mine.partitions + theirs.partitions) == both  # type: ignore[attr-defined]

        # Leaving gives up what the consumer holds at that moment: its latest assignment
        # (a rebalance may have run again since the one above).
        holding = _held(second)
        second.close()
        (left,) = _records(caplog, "left consumer group", other)
        assert left.partitions == holding  # type: ignore[attr-defined]
        assert set(holding) <= set(both)
        second.close()  # idempotent: logged once
        assert len(_records(caplog, "left consumer group", other)) == 1
    finally:
        if second is not None:
            second.close()
        first.close()


def test_a_producer_has_its_own_client_id(kafka_bootstrap: str) -> None:
    producer = make_producer(Settings(kafka_bootstrap_servers=kafka_bootstrap),
                             role="store-dlq")
    try:
        assert producer.config["client_id"] == client_id("store-dlq")
    finally:
        producer.close()


def test_producers_compress_with_lz4_and_consumers_read_it(kafka_bootstrap: str) -> None:
    # The enrich daemon's output went out gzip level 9 (ten times lz4's CPU); it is lz4
    # now, which every consumer reads through the bounded inflater (newswatch.kafka_inflate).
    settings = Settings(kafka_bootstrap_servers=kafka_bootstrap)
    topic = f"lz4-{os.getpid()}-{socket.gethostname()}"
    producer = make_producer(settings, role="enrich")
    assert producer.config["compression_type"] == "lz4"
    values = [(f"article {n} " * 400).encode() for n in range(20)]
    try:
        for value in values:
            producer.send(topic, key=b"k", value=value)
        producer.flush(timeout=30)
    finally:
        producer.close()
    consumer = make_consumer(settings, topic, f"lz4-reader-{os.getpid()}")
    seen: list[bytes] = []
    try:
        def read() -> bool:
            for records in consumer.poll(timeout_ms=500).values():
                seen.extend(record.value for record in records)
            return len(seen) >= len(values)

        wait_for(read, 60, "the lz4 messages read back")
    finally:
        consumer.close()
    assert seen == values
