"""Fault 6 (first half) of issue 16: a decompression bomb on a Kafka topic.

A small gzip-compressed message that inflates to tens of megabytes was inflated whole by
kafka-python before any Newswatch size check ran. Now the batch stops inflating at
`MAX_INFLATED_BATCH_BYTES`, its record is dead-lettered at its offset with the reason,
and the message after it is handled. Memory is measured with tracemalloc around the
consumer (kafka-python's buffers are Python objects, so they are counted).
"""

from __future__ import annotations

import json
import tracemalloc

import pytest
from kafka import KafkaProducer

from newswatch.consumer_loop import DlqLimit
from newswatch.daemon import StopFlag
from newswatch.kafka_inflate import MAX_INFLATED_BATCH_BYTES
from schemas.messages import DeadLetter
from tests.test_consumer_loop import Collector, _read_all, _run

pytestmark = pytest.mark.integration

BOMB_BYTES = 96 * 1024 * 1024


@pytest.mark.parametrize("codec", ["gzip", "lz4"])
def test_a_decompression_bomb_is_dead_lettered_without_inflating_it(
        kafka_bootstrap: str, topic: str, group: str, codec: str) -> None:
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all",
                             compression_type=codec, max_request_size=BOMB_BYTES * 2)
    producer.send(topic, key=b"bomb", value=b"0" * BOMB_BYTES).get(timeout=60)
    producer.send(topic, key=b"good", value=json.dumps({"n": 1}).encode()).get(timeout=60)
    producer.close()

    handler = Collector(StopFlag(), expect=1)  # the bomb never reaches the handler
    tracemalloc.start()
    try:
        _run(kafka_bootstrap, topic, group, handler, topic + ".dlq", DlqLimit())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert handler.seen == [1]
    [letter] = [DeadLetter.model_validate_json(v)
                for v in _read_all(kafka_bootstrap, topic + ".dlq", 1)]
    assert letter.offset == 0
    assert letter.error_type == "UndecodableBatchError"
    assert "inflates to more than" in letter.error
    assert peak < 3 * MAX_INFLATED_BATCH_BYTES, \
        f"{peak / 1e6:.0f} MB allocated while consuming a {BOMB_BYTES / 1e6:.0f} MB bomb"
