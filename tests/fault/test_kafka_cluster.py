"""High availability of issue 16: a 3-broker KRaft cluster, leaders killed mid-stream.

Three ``java`` processes on loopback (`LocalKafkaCluster`), topics with replication
factor 3 and ``min.insync.replicas=2``, the pipeline's producer (``acks=all``,
idempotent) and run loop writing to SQL with an idempotent insert. Mid-stream the leader
of the partitions in use is killed with SIGKILL, later a second broker for a few seconds:
every message is in SQL exactly once, and the loop resumed by itself.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, func, select
from sqlalchemy.dialects.sqlite import insert

from newswatch.consumer_loop import Backoff, DeadLetterPublisher, Poison, run_consumer
from newswatch.daemon import StopFlag
from newswatch.kafka_admin import ensure_topics
from newswatch.kafka_clients import make_consumer, make_producer
from newswatch.kafka_local import LocalKafkaCluster
from newswatch.settings import Settings
from tests.fault.chaos import report
from tests.support.ports import free_port
from tests.support.waits import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.fault]
MESSAGES = 600


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalKafkaCluster]:
    nodes = LocalKafkaCluster.create(tmp_path / "cluster", [free_port() for _ in range(3)],
                                     [free_port() for _ in range(3)])
    nodes.start(timeout_s=180)
    try:
        yield nodes
    finally:
        nodes.stop()


def _leader(bootstrap: str, topic: str) -> int:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
    try:
        [described] = admin.describe_topics([topic])
        leaders = [p["leader_id"] for p in described["partitions"]]
    finally:
        admin.close()
    return max(set(leaders), key=leaders.count)


def test_killing_the_leader_then_a_second_broker_loses_and_duplicates_nothing(
        cluster: LocalKafkaCluster, tmp_path: Path) -> None:
    settings = Settings(kafka_bootstrap_servers=cluster.bootstrap, kafka_topic_prefix="ha.",
                        kafka_replication_factor=3, kafka_min_insync_replicas=2)
    topic = ensure_topics(settings, partitions=3).articles
    engine = create_engine(f"sqlite:///{tmp_path / 'ha.db'}")
    rows = Table("rows", MetaData(), Column("n", Integer, primary_key=True),
                 Column("writes", Integer, nullable=False))
    rows.metadata.create_all(engine)
    stop = StopFlag()
    handled: list[int] = []

    def handler(records: Sequence[Any]) -> Sequence[Poison]:
        with engine.begin() as conn:
            for record in records:
                n = json.loads(record.value)["n"]
                handled.append(n)
                conn.execute(insert(rows).values(n=n, writes=1).on_conflict_do_update(
                    index_elements=["n"], set_={"writes": rows.c.writes + 1}))
        return []

    consumer = make_consumer(settings, topic, "ha-group", session_timeout_ms=6000)
    dlq_producer = make_producer(settings)
    loop = threading.Thread(target=run_consumer, args=(
        consumer, handler, DeadLetterPublisher(dlq_producer, topic + ".dlq", "ha"), stop),
        kwargs={"stage": "ha", "backoff": Backoff(initial_s=0.2, max_s=2.0)})
    loop.start()
    producer = make_producer(settings)
    faults = []
    try:
        for n in range(MESSAGES):
            producer.send(topic, key=str(n).encode(), value=json.dumps({"n": n}).encode())
            if n == MESSAGES // 3:
                leader = _leader(cluster.bootstrap, topic)
                cluster.node(leader).kill()
                faults.append(f"kill -9 leader node {leader}")
            if n == 2 * MESSAGES // 3:
                second = next(node for node in cluster.nodes if node.pid() is not None)
                second.kill()
                faults.append(f"kill -9 node {second.node_id}")
                time.sleep(3)
                second.launch()
                faults.append(f"restart node {second.node_id}")
            time.sleep(0.005)
        producer.flush(timeout=120)
        began = time.monotonic()
        wait_for(lambda: len(set(handled)) >= MESSAGES, timeout_s=180,
                 what="every message in SQL")
        caught_up = time.monotonic() - began
        print(f"cluster faults: {faults}; caught up {caught_up:.1f}s after "
              f"the last send; {len(handled) - MESSAGES} redeliveries absorbed")
    finally:
        stop.stop()
        loop.join(timeout=60)
        producer.close()
        dlq_producer.close()
        consumer.close()
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(rows)).scalar()
        numbers = set(conn.execute(select(rows.c.n)).scalars())
    engine.dispose()
    assert stored == MESSAGES
    assert numbers == set(range(MESSAGES)), "a message acknowledged by Kafka was lost"
    report("3-node KRaft cluster, RF 3, min ISR 2", faults="; ".join(faults),
           volume=f"{MESSAGES} messages", lost=MESSAGES - len(numbers), duplicated=0,
           repeated=f"{len(handled) - MESSAGES} redeliveries absorbed",
           recovery=f"caught up {caught_up:.1f} s after the last send")
