"""Kafka producer and consumer factories with the delivery guarantees of ARCHITECTURE.md.

Producers: acks=all, idempotence, retries within a delivery timeout, lz4 (gzip without the
lz4 package). Consumers: no
auto-commit (the run loop commits after its output is durable), earliest reset, and a
short session timeout so a restarted daemon rejoins its group quickly.

Every client says who it is (`client_id`: daemon role, host and process id), so a
broker's logs and quotas tell the enrich daemon on one host from the store on another;
a group consumer logs when it joins its group, which partitions it takes or gives up in
a rebalance, and when it leaves.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterable, Iterator
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer
from kafka.codec import has_lz4
from kafka.errors import KafkaError

from newswatch import kafka_inflate
from newswatch.errors import BrokerUnavailableError
from newswatch.settings import Settings

log = logging.getLogger(__name__)

# kafka-python waits up to 30 s between reconnects by default: a broker back after a
# restart went unnoticed for ~33 s (issue 16). Two seconds keeps recovery within 10 s.
RECONNECT_BACKOFF_MAX_MS = 2_000


def client_id(role: str) -> str:
    """``newswatch-<role>-<host>-<pid>``: one per daemon and process."""
    return f"newswatch-{role}-{socket.gethostname()}-{os.getpid()}"


def make_producer(settings: Settings, *, role: str = "producer", **overrides: Any
                  ) -> KafkaProducer:
    """A producer whose acknowledged sends are on every in-sync replica."""
    config: dict[str, Any] = {
        "client_id": client_id(role),
        **settings.kafka_client_config(),
        "acks": "all",
        "enable_idempotence": True,
        "retries": 2_147_483_647,
        "delivery_timeout_ms": 120_000,
        # lz4 costs a tenth of kafka-python's gzip (level 9: 0.17-0.26 ms against 0.02 ms
        # per 9 KB enriched article here), in the client and in the broker, which inflates
        # every batch to validate it. The consumers inflate both (newswatch.kafka_inflate).
        "compression_type": "lz4" if has_lz4() else "gzip",
        "linger_ms": 5,
        # Room for a poll's worth of enriched articles per partition in one request
        # (16 KB, the default, held one or two), as the feed producer has.
        "batch_size": 256 * 1024,
        "max_request_size": 8 * 1024 * 1024,
        "reconnect_backoff_max_ms": RECONNECT_BACKOFF_MAX_MS,
    }
    config.update(overrides)
    with _broker_needed():
        return KafkaProducer(**config)


def make_consumer(settings: Settings, topic: str, group_id: str, *, role: str | None = None,
                  **overrides: Any) -> KafkaConsumer:
    """A group consumer on ``topic`` that never commits by itself, logs its group
    membership (``role`` names it in its client id; default: the group's name), and
    inflates no record batch beyond `newswatch.kafka_inflate`'s limits."""
    kafka_inflate.install()
    name = client_id(role or group_id.removeprefix("newswatch-"))
    config: dict[str, Any] = {
        "client_id": name,
        **settings.kafka_client_config(),
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": 10_000,
        "heartbeat_interval_ms": 2_000,
        "max_poll_records": 256,
        "max_poll_interval_ms": 300_000,
        "reconnect_backoff_max_ms": RECONNECT_BACKOFF_MAX_MS,
    }
    if settings.kafka_group_instance_id is not None:
        # Static membership: a restarted daemon rejoins with its old assignment at once.
        config["group_instance_id"] = settings.kafka_group_instance_id
    config.update(overrides)
    with _broker_needed():
        consumer = GroupConsumer(**config)
    consumer.subscribe([topic], listener=MembershipLog(group_id, str(config["client_id"])))
    return consumer


@contextlib.contextmanager
def _broker_needed() -> Iterator[None]:
    """A client that cannot reach any broker while it is made (it asks one for its API
    version; kafka-python raises a retriable `KafkaTimeoutError` "Unable to bootstrap")
    raises `BrokerUnavailableError`: retryable, so a daemon starting before its broker
    waits for it (`newswatch.daemon.connect`) instead of exiting. Other errors (bad
    settings) propagate as they are."""
    try:
        yield
    except KafkaError as exc:
        if not getattr(exc, "retriable", False):
            raise
        raise BrokerUnavailableError(f"no Kafka broker answers: {exc}") from exc


def partition_names(partitions: Iterable[Any]) -> list[str]:
    """``news.articles[0]``-style names of topic partitions, sorted."""
    return sorted(f"{tp.topic}[{tp.partition}]" for tp in partitions)


class MembershipLog(ConsumerRebalanceListener):  # type: ignore[misc]
    """Logs each rebalance: the partitions a member gives up, then those it is given."""

    def __init__(self, group_id: str, client: str) -> None:
        self.group_id = group_id
        self.client_id = client

    def on_partitions_revoked(self, revoked: Any) -> None:
        if revoked:
            log.info("consumer group rebalancing: partitions given up", extra={
                "group": self.group_id, "client_id": self.client_id,
                "partitions": partition_names(revoked)})

    def on_partitions_assigned(self, assigned: Any) -> None:
        log.info("joined consumer group: partitions assigned", extra={
            "group": self.group_id, "client_id": self.client_id,
            "partitions": partition_names(assigned)})


class GroupConsumer(KafkaConsumer):  # type: ignore[misc]
    """A `KafkaConsumer` that logs leaving its group when it is closed."""

    def close(self, autocommit: bool = True, timeout_ms: int | None = None) -> None:
        if getattr(self, "_closed", False):
            return
        held = partition_names(self.assignment() or ())
        group = self.config.get("group_id")
        super().close(autocommit=autocommit, timeout_ms=timeout_ms)
        if group is not None:
            log.info("left consumer group", extra={
                "group": group, "client_id": self.config.get("client_id"), "partitions": held})
