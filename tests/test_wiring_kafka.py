"""The foundation's wiring against a real broker: produce, consume, committed offsets."""

from __future__ import annotations

import pytest
from kafka import KafkaConsumer, KafkaProducer

pytestmark = pytest.mark.integration


def _consumer(bootstrap: str, topic: str, group: str) -> KafkaConsumer:
    return KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        # A short session timeout: a joining consumer waits up to about half of it.
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )


def _drain(consumer: KafkaConsumer, want: int, timeout_ms: int = 20000) -> list[bytes]:
    got: list[bytes] = []
    polls = 0
    while len(got) < want and polls < timeout_ms // 500:
        for records in consumer.poll(timeout_ms=500).values():
            got.extend(record.value for record in records)
        polls += 1
    return got


def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for value in values:
        producer.send(topic, value)
    producer.flush(timeout=30)
    producer.close()


def test_message_produced_is_consumed_by_a_group(
    kafka_bootstrap: str, topic: str, group: str
) -> None:
    _produce(kafka_bootstrap, topic, [b"hello newswatch"])
    consumer = _consumer(kafka_bootstrap, topic, group)
    try:
        assert _drain(consumer, 1) == [b"hello newswatch"]
    finally:
        consumer.close()


def test_committed_offsets_are_honoured_by_the_next_consumer(
    kafka_bootstrap: str, topic: str, group: str
) -> None:
    values = [f"m{i}".encode() for i in range(10)]
    _produce(kafka_bootstrap, topic, values)

    first = _consumer(kafka_bootstrap, topic, group)
    first_read: list[bytes] = []
    # Read exactly five, commit those five, and leave.
    while len(first_read) < 5:
        batch = first.poll(timeout_ms=500, max_records=5 - len(first_read))
        for tp, records in batch.items():
            first_read.extend(r.value for r in records)
            first.commit({tp: _offset_after(records[-1].offset)})
    first.close()

    second = _consumer(kafka_bootstrap, topic, group)
    try:
        second_read = _drain(second, 5)
        # Give a duplicate the chance to show up before concluding there is none.
        second_read += _drain(second, 1, timeout_ms=1500)
    finally:
        second.close()

    assert first_read == values[:5]
    assert second_read == values[5:]


def _offset_after(offset: int) -> object:
    from kafka.structs import OffsetAndMetadata

    return OffsetAndMetadata(offset + 1, "", -1)


def test_cluster_ids_never_start_with_a_dash() -> None:
    # The storage tool's parser reads a leading '-' as an option: one start in 64 failed.
    from newswatch.kafka_local import _cluster_id

    ids = [_cluster_id() for _ in range(2000)]
    assert not [i for i in ids if i.startswith("-")]
    assert all(len(i) == 22 for i in ids)
