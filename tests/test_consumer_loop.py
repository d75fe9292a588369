"""The shared run loop against a real broker: commit after output, DLQ, outage, limit."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Sequence
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer

from newswatch.consumer_loop import (
    Backoff,
    DeadLetterLimitError,
    DeadLetterPublisher,
    DlqLimit,
    Poison,
    run_consumer,
)
from newswatch.daemon import StopFlag
from newswatch.errors import ServiceUnavailableError
from newswatch.kafka_clients import make_consumer, make_producer
from newswatch.settings import Settings
from schemas.messages import DeadLetter

pytestmark = pytest.mark.integration


def _settings(bootstrap: str) -> Settings:
    return Settings(kafka_bootstrap_servers=bootstrap)


def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for i, value in enumerate(values):
        producer.send(topic, key=str(i).encode(), value=value)
    producer.flush()
    producer.close()


def _read_all(bootstrap: str, topic: str, want: int) -> list[bytes]:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=4000)
    values = [record.value for record in consumer]
    consumer.close()
    assert len(values) >= want
    return values


class Collector:
    """A handler that keeps good records, rejects non-JSON ones, and can fail on demand."""

    def __init__(self, stop: StopFlag, expect: int, failures: int = 0) -> None:
        self.stop = stop
        self.expect = expect
        self.failures_left = failures
        self.seen: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, records: Sequence[Any]) -> Sequence[Poison]:
        if self.failures_left > 0:
            self.failures_left -= 1
            raise ServiceUnavailableError("database went away (test)")
        poisons = []
        for record in records:
            try:
                self.seen.append(json.loads(record.value)["n"])
            except (ValueError, KeyError) as exc:
                poisons.append(Poison(record, exc))
        if len(self.seen) + len(poisons) >= self.expect:
            self.stop.stop()
        return poisons


def _run(bootstrap: str, topic: str, group: str, handler: Collector, dlq_topic: str,
         limit: DlqLimit = DlqLimit()) -> None:  # noqa: B008
    settings = _settings(bootstrap)
    consumer = make_consumer(settings, topic, group, session_timeout_ms=6000)
    producer = make_producer(settings)
    try:
        run_consumer(consumer, handler, DeadLetterPublisher(producer, dlq_topic, "test"),
                     handler.stop, stage="test", dlq_limit=limit,
                     backoff=Backoff(initial_s=0.05, max_s=0.2))
    finally:
        consumer.close()
        producer.close()


def test_poison_goes_to_dlq_with_original_bytes_and_the_rest_is_processed(
    kafka_bootstrap: str, topic: str, group: str
) -> None:
    values = [json.dumps({"n": i}).encode() for i in range(30)]
    values[7] = b"\x00not json"
    _produce(kafka_bootstrap, topic, values)
    stop = StopFlag()
    handler = Collector(stop, expect=30)
    _run(kafka_bootstrap, topic, group, handler, topic + ".dlq")

    assert sorted(handler.seen) == [i for i in range(30) if i != 7]
    letters = [DeadLetter.model_validate_json(v) for v in
               _read_all(kafka_bootstrap, topic + ".dlq", 1)]
    assert len(letters) == 1
    assert base64.b64decode(letters[0].value_b64) == b"\x00not json"
    assert letters[0].offset == 7
    assert letters[0].error_type in {"JSONDecodeError", "UnicodeDecodeError"}
    assert letters[0].source_topic == topic


def test_outage_rewinds_and_loses_nothing_and_offsets_are_committed(
    kafka_bootstrap: str, topic: str, group: str
) -> None:
    _produce(kafka_bootstrap, topic, [json.dumps({"n": i}).encode() for i in range(50)])
    stop = StopFlag()
    handler = Collector(stop, expect=50, failures=3)
    _run(kafka_bootstrap, topic, group, handler, topic + ".dlq")
    assert sorted(handler.seen) == list(range(50))
    assert len(handler.seen) == 50, "a record was processed twice after the outage"

    # A second run in the same group finds nothing left: the offsets were committed.
    _produce(kafka_bootstrap, topic, [json.dumps({"n": 50}).encode()])
    again = Collector(StopFlag(), expect=1)
    _run(kafka_bootstrap, topic, group, again, topic + ".dlq")
    assert again.seen == [50]


def test_dead_letter_limit_stops_the_stage(kafka_bootstrap: str, topic: str, group: str) -> None:
    _produce(kafka_bootstrap, topic, [b"garbage"] * 40)
    handler = Collector(StopFlag(), expect=10_000)
    with pytest.raises(DeadLetterLimitError, match="stopping instead of dead-lettering"):
        _run(kafka_bootstrap, topic, group, handler, topic + ".dlq",
             DlqLimit(max_ratio=0.5, window=50, min_messages=20))
