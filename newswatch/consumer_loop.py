"""The one run loop of every Kafka consumer stage: poll, handle, dead-letter, commit.

The loop is the only place that polls and commits; a stage is a plain batch handler.
Guarantees:

- Offsets are committed only after the handler returned, that is after its output is
  durable (Kafka produce acknowledged, or SQL transaction committed), and after poison
  messages were acknowledged on the dead-letter topic. A crash replays, never loses.
- A handler that raises a retryable error (`ServiceUnavailableError`: database or broker
  gone) makes the loop rewind to the batch start, wait with exponential backoff and try
  again, logging once per state change, so an outage loses nothing and floods no log. The
  backoff is capped at 5 s, and kafka-python's reconnects at 2 s, so the stage is back
  within seconds of the broker or database (issue 16: ~33 s after a broker restart).
- Dead-lettering is bounded (`DlqLimit`): when too large a share of recent messages is
  poison, the loop stops with `DeadLetterLimitError` instead of dead-lettering a stream
  that a bad deploy broke. The limit counts from the dead-letter topic's point of view:
  the poison it counted, up to the message that tripped it, is on the DLQ and committed
  before the loop stops, so a restart goes on after it instead of reading the same burst
  and stopping again, forever (issue 16: a burst that waited while the stage was down).
"""

from __future__ import annotations

import base64
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata, TopicPartition

from newswatch import kafka_inflate, metrics
from newswatch.daemon import StopFlag, connect
from newswatch.errors import (
    NewswatchError,
    OversizedMessageError,
    ServiceUnavailableError,
    UndecodableBatchError,
)
from newswatch.kafka_clients import make_consumer, make_producer
from newswatch.retry import RetryPolicy
from newswatch.settings import Settings
from schemas.messages import MAX_MESSAGE_BYTES, DeadLetter
from schemas.topics import TopicNames

log = logging.getLogger(__name__)


class DeadLetterLimitError(NewswatchError):
    """Too many recent messages were poison: the stage stops rather than drop the stream."""


@dataclass(frozen=True)
class Poison:
    """A record the handler could not process, with the reason."""

    record: Any
    error: BaseException


class BatchHandler(Protocol):
    def __call__(self, records: Sequence[Any]) -> Sequence[Poison]:
        """Process ``records``; return the poison ones. Output must be durable on return."""
        ...


@dataclass(frozen=True)
class DlqLimit:
    """Stop when more than ``max_ratio`` of the last ``window`` messages were poison.

    Nothing trips before ``min_messages`` were seen, so one bad message at start-up is
    dead-lettered rather than fatal.
    """

    max_ratio: float = 0.5
    window: int = 200
    min_messages: int = 20


# The loop's backoff is the project's one retry policy; the old name stays for callers.
Backoff = RetryPolicy
# Capped at 5 s: the stage is back within seconds of its broker or database.
OUTAGE_BACKOFF = RetryPolicy(max_s=5.0)


@dataclass
class LoopStats:
    """What the loop did; returned when it stops."""

    batches: int = 0
    processed: int = 0
    dead_lettered: int = 0
    retries: int = 0
    commit_failures: int = 0
    recent_poison: deque[bool] = field(default_factory=lambda: deque(maxlen=1000))


# A dead letter carries at most this much of the original value and key: a huge poison
# message, base64-encoded, would exceed the dead-letter topic's size limit, and the loop
# would then fail on the dead letter itself, forever (found by tests/hostile). What is cut
# is said in the error; the whole original stays at its topic, partition and offset.
MAX_DEAD_LETTER_VALUE_BYTES = 256 * 1024
MAX_DEAD_LETTER_KEY_BYTES = 1024


def check_message_size(value: bytes | None) -> None:
    """Refuse a message over `schemas.messages.MAX_MESSAGE_BYTES`: poison at the edge."""
    if value is not None and len(value) > MAX_MESSAGE_BYTES:
        raise OversizedMessageError(
            f"message of {len(value)} bytes is over the {MAX_MESSAGE_BYTES} bytes a "
            "Newswatch message may have")


def dead_letter(record: Any, error: BaseException, stage: str) -> DeadLetter:
    """The dead-letter message for ``record``: the error and the original bytes (the
    first `MAX_DEAD_LETTER_VALUE_BYTES` of a huge one, as the error then says)."""
    key = record.key
    value = record.value or b""
    message = str(error)[:4000]
    if len(value) > MAX_DEAD_LETTER_VALUE_BYTES:
        message += (f" [dead letter holds the first {MAX_DEAD_LETTER_VALUE_BYTES} of "
                    f"{len(value)} bytes]")
    return DeadLetter(
        stage=stage,
        source_topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key_b64=base64.b64encode(key[:MAX_DEAD_LETTER_KEY_BYTES]).decode()
        if key is not None else None,
        value_b64=base64.b64encode(value[:MAX_DEAD_LETTER_VALUE_BYTES]).decode(),
        error_type=type(error).__name__,
        error=message,
        failed_at=datetime.now(UTC),
    )


class DeadLetterPublisher:
    """Sends poison records to the dead-letter topic and waits for the broker's ack."""

    def __init__(self, producer: KafkaProducer, topic: str, stage: str) -> None:
        self._producer = producer
        self._topic = topic
        self._stage = stage

    def publish(self, poisons: Sequence[Poison]) -> None:
        futures = []
        for poison in poisons:
            letter = dead_letter(poison.record, poison.error, self._stage)
            log.warning(
                "dead-lettering message: %s", letter.error,
                extra={"stage": self._stage, "topic": poison.record.topic,
                       "partition": poison.record.partition, "offset": poison.record.offset,
                       "error_type": letter.error_type},
            )
            key = poison.record.key
            futures.append(self._producer.send(
                self._topic, key=key[:MAX_DEAD_LETTER_KEY_BYTES] if key is not None else None,
                value=letter.to_bytes()))
            metrics.DEAD_LETTERED.labels(self._stage, letter.error_type).inc()
        for future in futures:
            future.get(timeout=60)


def _batch_start(records: Sequence[Any]) -> dict[TopicPartition, int]:
    first: dict[TopicPartition, int] = {}
    for record in records:
        tp = TopicPartition(record.topic, record.partition)
        first[tp] = min(first.get(tp, record.offset), record.offset)
    return first


def _batch_end(records: Sequence[Any]) -> dict[TopicPartition, OffsetAndMetadata]:
    last: dict[TopicPartition, int] = {}
    for record in records:
        tp = TopicPartition(record.topic, record.partition)
        last[tp] = max(last.get(tp, record.offset), record.offset)
    return {tp: OffsetAndMetadata(offset + 1, "", -1) for tp, offset in last.items()}


def _limit_cut(stats: LoopStats, limit: DlqLimit, records: Sequence[Any],
               poisons: Sequence[Poison]) -> tuple[int, DeadLetterLimitError | None]:
    """How many of ``records`` (in order) to dead-letter and commit, and the error to stop
    with once they are: all of them and None, unless the limit trips at some record."""
    poisoned = {id(poison.record) for poison in poisons}
    window: deque[bool] = deque(list(stats.recent_poison)[-limit.window:],
                                maxlen=limit.window)
    bad = sum(window)
    for i, record in enumerate(records):
        flag = id(record) in poisoned
        if len(window) == window.maxlen:
            bad -= window[0]
        window.append(flag)
        stats.recent_poison.append(flag)
        bad += flag
        if flag and len(window) >= limit.min_messages and bad / len(window) > limit.max_ratio:
            return i + 1, DeadLetterLimitError(
                f"{bad} of the last {len(window)} messages could not be processed "
                f"(limit {limit.max_ratio:.0%}); stopping instead of dead-lettering the "
                "stream. They are on the dead-letter topic: check it and the logs for the "
                "cause; a restart goes on after them.")
    return len(records), None


def run_consumer(
    consumer: KafkaConsumer,
    handler: BatchHandler,
    dlq: DeadLetterPublisher,
    stop: StopFlag,
    *,
    stage: str,
    max_batch: int = 256,
    poll_timeout_ms: int = 500,
    dlq_limit: DlqLimit = DlqLimit(),
    backoff: RetryPolicy = OUTAGE_BACKOFF,
    on_idle: Callable[[], None] | None = None,
) -> LoopStats:
    """Consume until ``stop`` is set, then finish the batch in hand, commit and return.

    The consumer is not closed here; the caller owns it.
    """
    stats = LoopStats()
    outage = _Outage(stage, stop, backoff, stats)
    while not stop.stopping:
        try:
            polled = consumer.poll(timeout_ms=poll_timeout_ms, max_records=max_batch)
        except KafkaError as exc:
            # The broker is away (restarting, unreachable): kafka-python raises from poll
            # when it cannot find the group coordinator. Nothing was read, so nothing is
            # lost: wait and poll again instead of letting the daemon die (found by
            # tests/e2e/test_faults.py restarting Kafka).
            outage.wait("input", exc)
            continue
        outage.over("input")
        records = [record for batch in polled.values() for record in batch]
        if not records:
            if on_idle is not None:
                on_idle()
            continue
        began = time.monotonic()
        try:
            poisons = _handle(handler, records)
        except ServiceUnavailableError as exc:
            _rewind(consumer, records)
            outage.wait("output", exc)
            continue
        cut, over_limit = _limit_cut(stats, dlq_limit, records, poisons)
        if over_limit is not None:
            # Dead-letter and commit up to the message that tripped the limit, then stop;
            # the records after it were handled but are not committed: they come back.
            records = records[:cut]
            kept = {id(record) for record in records}
            poisons = [poison for poison in poisons if id(poison.record) in kept]
        if poisons:
            try:
                dlq.publish(poisons)
            except KafkaError as exc:
                # The broker went away before it acknowledged the dead letters: redo the
                # batch later (the handler's writes are idempotent) rather than crash.
                _rewind(consumer, records)
                outage.wait("output", exc)
                continue
            stats.dead_lettered += len(poisons)
        outage.over()
        _commit(consumer, records, stats, stage)
        try:
            _record_lag(consumer, records, stage)
        except Exception as exc:  # a gauge must never stop a stage
            # consumer.position() asks the broker; during a broker restart it raised and
            # killed the store after its batch was committed (tests/e2e/test_faults.py).
            log.debug("consumer lag not measured this round: %s", exc)
        stats.batches += 1
        stats.processed += len(records)
        metrics.MESSAGES_PROCESSED.labels(stage).inc(len(records))
        metrics.BATCH_SECONDS.labels(stage).observe(time.monotonic() - began)
        if over_limit is not None:
            raise over_limit
    return stats


def _handle(handler: BatchHandler, records: Sequence[Any]) -> list[Poison]:
    """The handler's poison plus the records of refused batches (`kafka_inflate`), which
    have no value to hand it."""
    refused = [Poison(record, UndecodableBatchError(reason)) for record in records
               if (reason := kafka_inflate.batch_error(record)) is not None]
    if not refused:
        return list(handler(records))
    taken = {id(poison.record) for poison in refused}
    rest = [record for record in records if id(record) not in taken]
    return refused + list(handler(rest) if rest else [])


def _record_lag(consumer: KafkaConsumer, records: Sequence[Any], stage: str) -> None:
    """Set the lag gauge: messages between our position and the log end, summed over the
    assigned partitions. Uses the high-water marks fetches already returned (no request);
    a partition not fetched yet counts from the batch just committed, or not at all.
    """
    done = _batch_end(records)
    lag = 0
    for tp in consumer.assignment():
        highwater = consumer.highwater(tp)
        if highwater is None:
            continue
        position = done[tp].offset if tp in done else consumer.position(tp)
        if position is not None:
            lag += max(0, highwater - position)
    metrics.CONSUMER_LAG.labels(stage).set(lag)


def _rewind(consumer: KafkaConsumer, records: Sequence[Any]) -> None:
    """Seek back to the batch's start, so the same records come back: nothing is skipped."""
    for tp, offset in _batch_start(records).items():
        consumer.seek(tp, offset)


class _Outage:
    """Waiting out an unavailable input (the broker) or output (database, broker): one
    log line when it starts and one when it ends, exponential backoff in between."""

    def __init__(self, stage: str, stop: StopFlag, backoff: RetryPolicy, stats: LoopStats
                 ) -> None:
        self._stage = stage
        self._stop = stop
        self._backoff = backoff
        self._stats = stats
        self._since: float | None = None
        self._what = "output"
        self._attempt = 0

    def wait(self, what: str, error: BaseException) -> None:
        if self._since is None:
            self._since, self._what = time.monotonic(), what
            log.error("%s unavailable, pausing and retrying: %s", what, error,
                      extra={"stage": self._stage})
        metrics.DEPENDENCY_UP.labels(self._stage).set(0)
        self._stats.retries += 1
        metrics.RETRIES.labels(f"{self._stage} {what}").inc()
        self._stop.wait(self._backoff.delay(self._attempt))
        self._attempt += 1

    def over(self, what: str | None = None) -> None:
        """The outage (only one of ``what`` when given) is over: log it, reset backoff."""
        if what is not None and self._what != what:
            return
        if self._since is not None:
            log.warning("%s available again after %.1fs, resuming", self._what,
                        time.monotonic() - self._since, extra={"stage": self._stage})
            self._since = None
            self._attempt = 0
        metrics.DEPENDENCY_UP.labels(self._stage).set(1)


def _commit(consumer: KafkaConsumer, records: Sequence[Any], stats: LoopStats, stage: str
            ) -> None:
    offsets = _batch_end(records)
    try:
        consumer.commit(offsets)
    except (CommitFailedError, KafkaError) as exc:
        # The group rebalanced under us: another member will redeliver these records, and
        # the handler's writes are idempotent, so this costs a replay, never a loss.
        stats.commit_failures += 1
        log.warning("offset commit failed, records will be redelivered: %s", exc,
                    extra={"stage": stage, "offsets": {f"{tp.topic}/{tp.partition}": o.offset
                                                       for tp, o in offsets.items()}})


def run_stage(
    settings: Settings,
    stop: StopFlag,
    handler: BatchHandler,
    *,
    stage: str,
    topic: str,
    group_id: str,
    role: str | None = None,
    consumer_config: Mapping[str, Any] | None = None,
    **loop_options: Any,
) -> LoopStats:
    """A Kafka consumer stage from end to end: connect its source (a group consumer on
    ``topic``) and its dead-letter sink, waiting for the broker while it is not there yet
    (`newswatch.daemon.connect`: readiness red, stop still works), run ``handler`` in
    `run_consumer` until ``stop``, close both. ``loop_options`` go to `run_consumer`.

    Returns empty stats when stopped before the broker answered.
    """
    dlq_topic = TopicNames.with_prefix(settings.kafka_topic_prefix).dlq
    consumer = connect("Kafka", lambda: make_consumer(
        settings, topic, group_id, role=role, **(consumer_config or {})), stop, stage=stage)
    if consumer is None:
        return LoopStats()
    try:
        producer = connect("Kafka", lambda: make_producer(
            settings, role=f"{role or stage}-dlq"), stop, stage=stage)
        if producer is None:
            return LoopStats()
        try:
            log.info("consuming", extra={"stage": stage, "topic": topic, "group": group_id})
            return run_consumer(consumer, handler, DeadLetterPublisher(producer, dlq_topic, stage),
                                stop, stage=stage, **loop_options)
        finally:
            producer.flush()
            producer.close()
    finally:
        consumer.close()
