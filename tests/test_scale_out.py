"""Scaling out: two consumers in one group split a multi-partition topic, none reads twice."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic

from newswatch.consumer_loop import Backoff, DeadLetterPublisher, Poison, run_consumer
from newswatch.daemon import StopFlag
from newswatch.kafka_clients import make_consumer, make_producer
from newswatch.settings import Settings
from tests.support.waits import wait_for

pytestmark = pytest.mark.integration

TOTAL = 400
PARTITIONS = 4


def test_two_consumers_share_partitions_and_nothing_is_read_twice(
    kafka_bootstrap: str, topic: str, group: str
) -> None:
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])
    admin.close()

    settings = Settings(kafka_bootstrap_servers=kafka_bootstrap)
    seen: dict[str, list[int]] = {"a": [], "b": []}
    lock = threading.Lock()
    done = threading.Event()
    stop = StopFlag()
    consumers: dict[str, KafkaConsumer] = {}

    def worker(name: str) -> None:
        consumer = make_consumer(settings, topic, group, session_timeout_ms=6000)
        consumers[name] = consumer
        out = make_producer(settings)

        def handle(records: Sequence[Any]) -> Sequence[Poison]:
            with lock:
                seen[name].extend(json.loads(r.value)["n"] for r in records)
                if len(seen["a"]) + len(seen["b"]) >= TOTAL:
                    done.set()
            return []

        try:
            run_consumer(consumer, handle, DeadLetterPublisher(out, topic + ".dlq", "t"), stop,
                         stage="scale", max_batch=20, backoff=Backoff(0.05, 0.2))
        finally:
            consumer.close()
            out.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("a", "b")]
    for thread in threads:
        thread.start()
    # Produce only once the group settled with both members, so no rebalance happens
    # mid-stream: what this test shows is the split, not rebalance replays.
    def settled() -> bool:
        assigned = [len(c.assignment()) for c in list(consumers.values())]
        return len(assigned) == 2 and all(assigned) and sum(assigned) == PARTITIONS

    wait_for(settled, 60, "both consumers holding all partitions", interval_s=0.2)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for n in range(TOTAL):
        producer.send(topic, key=str(n).encode(), value=json.dumps({"n": n}).encode())
    producer.flush()
    producer.close()
    finished = done.wait(timeout=60)
    # Let a duplicate, if any, arrive before judging.
    time.sleep(1.0)
    stop.stop()
    for thread in threads:
        thread.join(timeout=30)

    assert finished, f"only {len(seen['a']) + len(seen['b'])} of {TOTAL} were read"
    everything = seen["a"] + seen["b"]
    assert sorted(everything) == list(range(TOTAL)), "a message was read twice or lost"
    assert seen["a"], "consumer b did all the work"
    assert seen["b"], "consumer a did all the work"
    print(f"consumer a read {len(seen['a'])}, consumer b read {len(seen['b'])}")
