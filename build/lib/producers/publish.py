"""Publishing articles to ``news.articles``: key = article id, acknowledged by all replicas.

`Publisher.publish` returns only when the broker acknowledged every article of the batch
(acks=all, idempotent producer, retries within the delivery timeout). When the broker
cannot be reached or does not acknowledge in time it raises `BrokerUnavailableError` and
the caller records nothing: the batch is sent again later, after the refresh has read back
what did arrive (`producers.recover`). The producer is then rebuilt, since a failed
idempotent producer may not be usable again.

Compression: lz4 when the ``lz4`` package is installed (cheap on CPU), else gzip; the
``producer_compression`` setting chooses explicitly.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from kafka import KafkaProducer
from kafka.codec import has_gzip, has_lz4, has_snappy, has_zstd
from kafka.errors import KafkaConfigurationError, KafkaError, MessageSizeTooLargeError

from newswatch.errors import BrokerUnavailableError, ConfigError, FeedError
from newswatch.kafka_clients import make_producer
from newswatch.settings import Settings
from schemas.messages import Article

log = logging.getLogger(__name__)

_AVAILABLE = {"lz4": has_lz4, "gzip": has_gzip, "zstd": has_zstd, "snappy": has_snappy}


def choose_compression(setting: str) -> str | None:
    """The codec to use: ``auto`` means lz4 if its package is installed, else gzip."""
    if setting == "none":
        return None
    if setting == "auto":
        return "lz4" if has_lz4() else "gzip"
    if not _AVAILABLE[setting]():
        log.warning("compression codec not installed; using gzip", extra={"codec": setting})
        return "gzip"
    return setting


class Publisher:
    """Sends batches of articles and waits for their acks. Thread-safe; `close` when done."""

    def __init__(self, settings: Settings, topic: str, **producer_overrides: Any) -> None:
        self.topic = topic
        self.compression = choose_compression(settings.producer_compression)
        self._settings = settings
        delivery_ms = int(settings.producer_delivery_timeout_s * 1000)
        self._overrides: dict[str, Any] = {
            "compression_type": self.compression,
            "delivery_timeout_ms": delivery_ms,
            # kafka-python wants delivery > linger + request timeout.
            "request_timeout_ms": max(1_000, min(30_000, delivery_ms // 2)),
            "max_block_ms": delivery_ms,
            "bootstrap_timeout_ms": min(10_000, delivery_ms),
            "batch_size": 256 * 1024,
            "linger_ms": 5,
            **producer_overrides,
        }
        self._wait_s = settings.producer_delivery_timeout_s + 10.0
        self._lock = threading.Lock()
        self._producer: KafkaProducer | None = None

    def _ensure(self) -> KafkaProducer:
        with self._lock:
            if self._producer is None:
                try:
                    self._producer = make_producer(self._settings, **self._overrides)
                except KafkaConfigurationError as exc:
                    raise ConfigError(f"invalid Kafka producer settings: {exc}") from exc
                except (KafkaError, OSError) as exc:
                    raise BrokerUnavailableError(
                        f"cannot connect to Kafka: {type(exc).__name__}: {exc}") from exc
            return self._producer

    def _discard(self, producer: KafkaProducer) -> None:
        with self._lock:
            if self._producer is producer:
                self._producer = None
        try:
            producer.close(timeout=1)
        except Exception:  # closing a broken producer must not hide the original error
            log.debug("closing a failed producer raised", exc_info=True)

    def publish(self, articles: Sequence[Article]) -> None:
        """Send ``articles`` and return once all are acknowledged; see module docstring.

        Raises `BrokerUnavailableError` (retry later) or, for an article the broker refuses
        as too large, `FeedError` (kind "publish"): a poison article stops its feed only.
        """
        if not articles:
            return
        producer = self._ensure()
        try:
            futures = [producer.send(self.topic, key=article.id.encode("ascii"),
                                     value=article.to_bytes()) for article in articles]
            producer.flush(timeout=self._wait_s)
            for future in futures:
                future.get(timeout=self._wait_s)
        except MessageSizeTooLargeError as exc:
            self._discard(producer)
            raise FeedError(f"Kafka refused an article as too large: {exc}",
                            kind="publish") from exc
        except (KafkaError, OSError) as exc:
            self._discard(producer)
            raise BrokerUnavailableError(
                f"Kafka did not acknowledge {len(articles)} articles: "
                f"{type(exc).__name__}: {exc}") from exc

    def close(self, timeout_s: float = 10.0) -> None:
        """Flush what is pending and close. Idempotent."""
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.flush(timeout=timeout_s)
            except KafkaError:
                log.warning("flush on close failed; unacknowledged articles will be re-sent",
                            exc_info=True)
            producer.close(timeout=timeout_s)
