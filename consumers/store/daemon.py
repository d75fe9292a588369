"""``newswatch store``: the consumer group that writes ``news.enriched`` into SQL.

One batch of records tells the whole story (`StoreHandler.__call__`): decode and validate
each record (what fails is poison, for the dead-letter topic), write the good ones in one
transaction (`store_batch`), return the poison. The run loop (`newswatch.consumer_loop`)
commits offsets only after that, so a crash replays a batch and never loses one; writes
are idempotent, so the replay is harmless. A database that is away becomes
`ServiceUnavailableError`: the loop rewinds, backs off and retries until it is back.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Engine
from sqlalchemy import exc as sa_exc

from consumers.store.write import StoreResult, store_batch
from newswatch import metrics
from newswatch.consumer_loop import (
    OUTAGE_BACKOFF,
    DlqLimit,
    LoopStats,
    Poison,
    check_message_size,
    run_stage,
)
from newswatch.daemon import Daemon, StopFlag
from newswatch.db import database_answers, make_engine
from newswatch.db_errors import is_unavailable, short_reason, unavailable_as_retryable
from newswatch.migrate import wait_for_schema
from newswatch.retry import RetryPolicy
from newswatch.settings import Settings
from schemas.messages import STORED_LENGTHS, EnrichedArticle
from schemas.topics import TopicNames

log = logging.getLogger(__name__)

STAGE = "store"
DEFAULT_GROUP = "newswatch-store"
DEFAULT_BATCH = 1000
_JSON_NUL = b"\\u0000"  # how a NUL character travels in JSON
# A fetch that holds more than one batch lets the next poll find records already
# buffered instead of waiting for the broker (measured: ~+15% articles/s on PostgreSQL).
# The broker answers a fetch as soon as one record is there (fetch_min_bytes 1), so a
# longer wait delays nothing; it only makes the fetches of an idle store rarer than
# kafka-python's 500 ms: half the store's CPU between batches (0.0105 -> 0.005 CPU s/s).
CONSUMER_CONFIG: dict[str, Any] = {"max_partition_fetch_bytes": 8 * 1024 * 1024,
                                   "fetch_max_wait_ms": 2000}


class UnstorableMessageError(ValueError):
    """A message that is valid JSON of the right type but cannot be stored as it is."""


# Each bounded field's path split once: the check runs on every message the store reads.
_BOUNDED_PATHS: tuple[tuple[str, tuple[str, ...], int], ...] = tuple(
    (path, tuple(path.split(".")), limit) for path, limit in STORED_LENGTHS.items())


def _field_values(owner: Any, path: Sequence[str]) -> list[Any]:
    """The values at ``path`` below ``owner``; a tuple on the way stands for each item."""
    current = list(owner) if isinstance(owner, tuple) else [owner]
    for part in path:
        found: list[Any] = []
        for item in current:
            value = getattr(item, part)
            if isinstance(value, tuple):
                found.extend(value)
            else:
                found.append(value)
        current = found
    return current


def check_stored_lengths(enriched: EnrichedArticle) -> None:
    """Raise `UnstorableMessageError` for a value longer than its column holds.

    The contract leaves those fields unbounded but the tables bound them
    (`schemas.messages.STORED_LENGTHS`); PostgreSQL would reject the whole batch over one
    of them, so they are checked at the edge, message by message.
    """
    for path, parts, limit in _BOUNDED_PATHS:
        for value in _field_values(enriched, parts):
            if value is not None and len(value) > limit:
                shown = value if len(value) <= 80 else value[:80] + "..."
                raise UnstorableMessageError(f"{path} {shown!r} is {len(value)} characters; "
                                             f"at most {limit} fit")


def decode(value: bytes | None) -> EnrichedArticle:
    """The `EnrichedArticle` in ``value``, validated against the contract and the tables.

    Raises `pydantic.ValidationError` for bad JSON, a schema violation or an unknown
    ``schema_version``, `OversizedMessageError` for a message over the contract's size,
    and `UnstorableMessageError` for an empty message or a value too long for its column.
    Either way the message is poison.
    """
    if not value:
        raise UnstorableMessageError("empty message: no enriched article in it")
    check_message_size(value)
    enriched = EnrichedArticle.model_validate_json(value)
    check_stored_lengths(enriched)
    article = enriched.article
    for name, moment in (("article.published", article.published),
                         ("article.fetched_at", article.fetched_at),
                         ("article.updated", article.updated),
                         ("enriched_at", enriched.enriched_at)):
        if moment is None or moment.tzinfo is None:
            continue
        try:
            # Stored in UTC: a time at the edge of the calendar may not have a UTC twin.
            moment.astimezone(UTC)
        except OverflowError:
            raise UnstorableMessageError(f"{name} {moment.isoformat()} has no UTC "
                                         "equivalent") from None
    return enriched


class StoreHandler:
    """The batch handler of the store stage: records in, poison out, rows durable."""

    def __init__(self, engine: Engine, idle_timeout_s: float | None = None) -> None:
        self._engine = engine
        self._idle_timeout_s = idle_timeout_s  # see consumers.store.idle_guard

    def __call__(self, records: Sequence[Any]) -> list[Poison]:
        """Store ``records`` (kafka-python ConsumerRecords); return the ones that are poison.

        On return every good record is committed to the database. Raises
        `ServiceUnavailableError` when the database cannot be reached: nothing of the
        batch was stored then, or (while isolating refused messages) only some of it,
        which the retry writes again idempotently.
        """
        poisons: list[Poison] = []
        decoded: list[tuple[Any, EnrichedArticle]] = []
        for record in records:
            try:
                decoded.append((record, decode(record.value)))
            except (ValidationError, ValueError) as error:
                poisons.append(Poison(record, error))
                continue
            if _JSON_NUL in record.value:
                # PostgreSQL text cannot hold NUL; the writer drops it (write._clean). Said
                # and counted here, where the article is known.
                metrics.INPUT_REPAIRED.labels(STAGE, "nul_removed").inc()
                log.warning("NUL characters removed from an enriched article",
                            extra={"stage": STAGE, "article_id": decoded[-1][1].article.id})
        if decoded:
            poisons.extend(self._store(decoded))
        return poisons

    def _store(self, decoded: list[tuple[Any, EnrichedArticle]]) -> list[Poison]:
        try:
            result = self._write([item for _record, item in decoded])
        except sa_exc.SQLAlchemyError as error:
            if not _refused(error):
                raise
            # The database refused something in the batch that decoding let through. One
            # transaction per message finds which; the others are stored as usual.
            log.warning("batch refused by the database, storing message by message: %s",
                        short_reason(error), extra={"stage": STAGE, "messages": len(decoded)})
            return self._store_one_by_one(decoded)
        self._count(result, len(decoded))
        return []

    def _store_one_by_one(self, decoded: list[tuple[Any, EnrichedArticle]]) -> list[Poison]:
        poisons: list[Poison] = []
        for record, item in decoded:
            try:
                self._count(self._write([item]), 1)
            except sa_exc.SQLAlchemyError as error:
                if not _refused(error):
                    raise
                poisons.append(Poison(record, error))
        return poisons

    def _write(self, items: list[EnrichedArticle]) -> StoreResult:
        with unavailable_as_retryable():
            return store_batch(self._engine, items, idle_timeout_s=self._idle_timeout_s)

    @staticmethod
    def _count(result: StoreResult, messages: int) -> None:
        metrics.ARTICLES_STORED.inc(result.written)
        log.debug("batch stored", extra={"stage": STAGE, "messages": messages,
                                         "inserted": result.inserted,
                                         "replaced": result.replaced,
                                         "unchanged": result.unchanged})


def _refused(error: sa_exc.SQLAlchemyError) -> bool:
    """The database refused this data (a constraint, a bad or too large value): storing
    it again cannot succeed, so the message is poison, not a reason to wait."""
    return isinstance(error, (sa_exc.IntegrityError, sa_exc.DataError)) or (
        isinstance(error, sa_exc.OperationalError) and not is_unavailable(error))


def tune_gc_for_batches() -> None:
    """Make Python's cyclic garbage collector fit a process that handles big batches.

    A batch allocates hundreds of thousands of short-lived objects (decoded messages,
    rows); at the default threshold (700) the collector runs thousands of times per batch
    and rescans every live object each time. Measured: +20-40% articles/s. Process-wide,
    so the daemon's entry point calls it, not `run_store`.
    """
    gc.freeze()  # what start-up imported lives for the whole run: never scan it again
    gc.set_threshold(20_000, 10, 10)


def run_sql_stage(name: str, settings: Settings,
                  work: Callable[[StopFlag, Engine], object]) -> int:
    """Run a consumer stage that writes SQL (store, stories) in the daemon shell: the
    collector tuned for big batches, one engine for the process, ready while the database
    answers ("alive but waiting for the database" shows), disposed of at exit."""
    tune_gc_for_batches()
    shell = Daemon(name, settings)
    engine = make_engine(settings.sqlalchemy_url())
    shell.close_at_exit(engine.dispose)
    shell.ready_when(lambda: database_answers(engine))

    def body() -> None:
        work(shell.stop, engine)

    return shell.run(body)


def run_store(
    settings: Settings,
    stop: StopFlag,
    *,
    engine: Engine | None = None,
    group_id: str = DEFAULT_GROUP,
    batch_size: int = DEFAULT_BATCH,
    consumer_overrides: Mapping[str, Any] | None = None,
    backoff: RetryPolicy | None = None,
    dlq_limit: DlqLimit | None = None,
) -> LoopStats:
    """Store ``news.enriched`` into the settings' database until ``stop`` is set.

    Waits for the database to answer, then refuses to start (`SchemaVersionError`) unless
    its schema is the one this code needs. Returns when stopped, after the batch in hand
    is stored and its offsets committed. Installs no signal handlers (the CLI does), so
    it can run in a thread. An ``engine`` given is used and left open; else one is made
    from the settings and disposed of on return.
    """
    topics = TopicNames.with_prefix(settings.kafka_topic_prefix)
    own_engine = engine is None
    db = engine if engine is not None else make_engine(settings.sqlalchemy_url())
    try:
        backoff = backoff or OUTAGE_BACKOFF  # back within seconds of an outage's end
        wait_for_schema(db, stop, backoff)
        if stop.stopping:
            return LoopStats()
        log.info("storing enriched articles", extra={
            "stage": STAGE, "topic": topics.enriched, "group": group_id,
            "database": db.url.render_as_string(hide_password=True)})
        stats = run_stage(
            settings, stop, StoreHandler(db, settings.store_idle_transaction_timeout_s),
            stage=STAGE, topic=topics.enriched, group_id=group_id, role=STAGE,
            consumer_config={**CONSUMER_CONFIG, "max_poll_records": batch_size,
                             **(consumer_overrides or {})},
            max_batch=batch_size, backoff=backoff, dlq_limit=dlq_limit or DlqLimit())
        log.info("store stopped", extra={"stage": STAGE, "batches": stats.batches,
                                         "messages": stats.processed,
                                         "dead_lettered": stats.dead_lettered,
                                         "retries": stats.retries})
        return stats
    finally:
        if own_engine:
            db.dispose()
