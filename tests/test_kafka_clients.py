"""Kafka clients say who they are and log their group membership (a real broker)."""

from __future__ import annotations

import logging
import os
import socket

import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from newswatch.kafka_clients import client_id, make_consumer, make_producer
from newswatch.settings import Settings
from tests.support.waits import wait_for

pytestmark = pytest.mark.integration


def test_client_ids_name_the_daemon_host_and_process() -> None:
    assert client_id("enrich") == f"newswatch-enrich-{socket.gethostname()}-{os.getpid()}"


def _records(caplog: pytest.LogCaptureFixture, message: str, client: str
             ) -> list[logging.LogRecord]:
    return [r for r in caplog.records
            if r.getMessage() == message and getattr(r, "client_id", None) == client]


def _poll_until(consumers: list, done) -> None:  # type: ignore[no-untyped-def,type-arg]
    def settled() -> bool:
        if done():
            return True
        for consumer in consumers:
            consumer.poll(timeout_ms=100)
        return False

    wait_for(settled, 30, "the group to settle", interval_s=0)


def _joins(caplog: pytest.LogCaptureFixture, client: str) -> list[logging.LogRecord]:
    return _records(caplog, "joined consumer group: partitions assigned", client)


def test_joining_rebalancing_and_leaving_a_group_is_logged_with_the_partitions(
    kafka_bootstrap: str, topic: str, group: str, caplog: pytest.LogCaptureFixture
) -> None:
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    admin.close()
    settings = Settings(kafka_bootstrap_servers=kafka_bootstrap)
    caplog.set_level(logging.INFO, logger="newswatch.kafka_clients")

    first = make_consumer(settings, topic, group, role="enrich", session_timeout_ms=6000)
    second = None
    try:
        me = first.config["client_id"]
        assert me == client_id("enrich")
        # A group can first form before the new topic's metadata has arrived: that join is
        # logged too, with no partitions, and the next one names them.
        _poll_until([first], lambda: [r for r in _joins(caplog, me)
                                      if r.partitions])  # type: ignore[attr-defined]
        joined = _joins(caplog, me)[-1]
        assert joined.partitions == [f"{topic}[0]", f"{topic}[1]"]  # type: ignore[attr-defined]
        assert joined.group == group  # type: ignore[attr-defined]
        joins_alone = len(_joins(caplog, me))

        second = make_consumer(settings, topic, group, role="enrich-2", session_timeout_ms=6000)
        other = second.config["client_id"]
        _poll_until([first, second], lambda: _joins(caplog, other)
                    and len(_joins(caplog, me)) > joins_alone)
        # The rebalance the second consumer caused (an empty first join gave up nothing).
        given_up = _records(caplog, "consumer group rebalancing: partitions given up", me)[-1]
        assert given_up.partitions == [f"{topic}[0]", f"{topic}[1]"]  # type: ignore[attr-defined]
        mine = _records(caplog, "joined consumer group: partitions assigned", me)[-1]
        theirs = _records(caplog, "joined consumer group: partitions assigned", other)[-1]
        assert sorted(mine.partitions + theirs.partitions) == [  # type: ignore[attr-defined]
            f"{topic}[0]", f"{topic}[1]"]

        # Leaving gives up what the consumer holds at that moment: its latest assignment
        # (a rebalance may have run again since the one above).
        holding = sorted(f"{tp.topic}[{tp.partition}]" for tp in second.assignment())
        second.close()
        (left,) = _records(caplog, "left consumer group", other)
        assert left.partitions == holding  # type: ignore[attr-defined]
        assert set(holding) <= {f"{topic}[0]", f"{topic}[1]"}
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
