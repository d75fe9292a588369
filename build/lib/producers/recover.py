"""Reading back what Kafka acknowledged after a publish that was cut short.

A refresh commits ``feeds.publishing_since`` before it sends a batch and clears it with the
seen rows after the ack (`producers.state`). If the process dies, or the broker fails to
acknowledge, in between, some of the batch may be in Kafka without a seen row. Before that
feed is refreshed again, `published_since` reads the topic from that time on and returns
the feed's articles found there, so they are recorded as seen instead of sent twice.

The messages' timestamps are the producer's clock at send time, which is after the mark
was written; a margin covers a clock that stepped back in between. Reading from too early
is harmless: articles already recorded are simply recorded again.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

from kafka import KafkaConsumer
from kafka.errors import KafkaError
from kafka.structs import TopicPartition
from pydantic import ValidationError

from newswatch.errors import BrokerUnavailableError
from newswatch.settings import Settings
from schemas.messages import Article

log = logging.getLogger(__name__)

CLOCK_MARGIN_S = 60.0


class Recovery:
    """Reads one topic back by time. Creates a short-lived consumer per call."""

    def __init__(self, settings: Settings, topic: str, timeout_s: float = 60.0) -> None:
        self._settings = settings
        self.topic = topic
        self._timeout_s = timeout_s

    def published_since(self, feed_id: str, since: datetime) -> list[Article]:
        """The latest revision of each article of ``feed_id`` sent at or after ``since``.

        Raises `BrokerUnavailableError` when the topic cannot be read to its end in time.
        """
        try:
            wait_ms = int(self._settings.producer_delivery_timeout_s * 1000)
            consumer = KafkaConsumer(**self._settings.kafka_client_config(),
                                     enable_auto_commit=False, group_id=None,
                                     request_timeout_ms=max(1_000, min(15_000, wait_ms)),
                                     bootstrap_timeout_ms=min(10_000, wait_ms))
        except (KafkaError, OSError) as exc:
            raise BrokerUnavailableError(f"cannot read back {self.topic}: {exc}") from exc
        try:
            return self._read(consumer, feed_id, since)
        except KafkaError as exc:
            raise BrokerUnavailableError(f"cannot read back {self.topic}: {exc}") from exc
        finally:
            consumer.close()

    def _read(self, consumer: KafkaConsumer, feed_id: str, since: datetime) -> list[Article]:
        partitions = consumer.partitions_for_topic(self.topic)
        if not partitions:
            return []
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        start_ms = int((since.timestamp() - CLOCK_MARGIN_S) * 1000)
        starts = consumer.offsets_for_times({tp: start_ms for tp in tps})
        ends: dict[Any, int] = consumer.end_offsets(tps)
        pending = {}
        for tp in tps:
            start = starts.get(tp)
            if start is not None and start.offset < ends[tp]:
                consumer.seek(tp, start.offset)
                pending[tp] = ends[tp]
        found: dict[str, Article] = {}
        scanned = 0
        deadline = time.monotonic() + self._timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise BrokerUnavailableError(
                    f"reading back {self.topic} did not reach its end in {self._timeout_s:.0f}s")
            for records in consumer.poll(timeout_ms=500, max_records=2000).values():
                for record in records:
                    scanned += 1
                    article = _article(record.value)
                    if article is not None and article.feed_id == feed_id:
                        previous = found.get(article.id)
                        if previous is None or previous.revision < article.revision:
                            found[article.id] = article
            for tp in list(pending):
                if consumer.position(tp) >= pending[tp]:
                    del pending[tp]
        log.info("read back a cut-short publish", extra={
            "feed": feed_id, "since": since.isoformat(), "scanned": scanned,
            "found": len(found)})
        return list(found.values())


def _article(value: bytes | None) -> Article | None:
    if not value:
        return None
    try:
        return Article.model_validate_json(value)
    except ValidationError:
        return None  # another writer's message on the topic: not ours to recover
