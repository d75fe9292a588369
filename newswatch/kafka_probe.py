"""Is a Kafka broker there? One metadata request, for readiness probes and ``kafka status``.

Its own module so that a daemon's health check does not import the local-broker launcher
(`newswatch.kafka_local`), which only development and tests use.
"""

from __future__ import annotations

import logging
from typing import Any


def broker_answers(bootstrap: str, timeout_s: float = 3.0, **client_config: Any) -> bool:
    """True when a broker at ``bootstrap`` answers a metadata request.

    ``client_config`` carries security settings (TLS, SASL) for production clusters.
    """
    # kafka-python logs every refused connection at ERROR; while polling for readiness
    # those are expected, so they are muted for the duration of the probe.
    kafka_logger = logging.getLogger("kafka")
    previous = kafka_logger.level
    kafka_logger.setLevel(logging.CRITICAL)
    try:
        return _metadata_request(bootstrap, timeout_s, client_config)
    finally:
        kafka_logger.setLevel(previous)


def _metadata_request(bootstrap: str, timeout_s: float, client_config: dict[str, Any]) -> bool:
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    try:
        consumer = KafkaConsumer(**{**client_config, "bootstrap_servers": bootstrap.split(",")},
                                 request_timeout_ms=int(timeout_s * 1000) + 1000,
                                 bootstrap_timeout_ms=int(timeout_s * 1000))
    except (KafkaError, OSError, ValueError):
        return False
    try:
        consumer.topics()
        return True
    except (KafkaError, OSError):
        return False
    finally:
        consumer.close()
