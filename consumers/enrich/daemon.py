"""``newswatch enrich``: the Kafka consumer around the pure enrichment stage.

Reads `Article` messages from news.articles in a consumer group, enriches each batch with
one `nlp.pipe` pass, produces `EnrichedArticle` messages to news.enriched (key = article
id) and lets the run loop commit only after the broker acknowledged them. A message that
cannot be decoded, is larger than any stage writes, whose enrichment fails, or whose
output the broker refuses as too large goes to news.dlq with the original bytes.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from kafka import KafkaProducer
from kafka.errors import KafkaError, MessageSizeTooLargeError
from pydantic import ValidationError

from newswatch import metrics
from newswatch.consumer_loop import (
    BatchHandler,
    Poison,
    check_message_size,
    run_stage,
)
from newswatch.daemon import Daemon, StopFlag, connect
from newswatch.errors import ServiceUnavailableError
from newswatch.kafka_clients import make_producer
from newswatch.kafka_probe import broker_answers
from newswatch.settings import Settings
from schemas.messages import Article, EnrichedArticle
from schemas.topics import TopicNames

log = logging.getLogger(__name__)

STAGE = "enrich"
GROUP_ID = "newswatch-enrich"
SEND_TIMEOUT_S = 120.0


class ArticleEnricher(Protocol):
    """What the daemon needs of the enrichment stage."""

    def enrich_many(self, articles: Sequence[Article], repairs: Counter[str] | None = None
                    ) -> list[EnrichedArticle]: ...


def decode_articles(records: Sequence[Any]) -> tuple[list[tuple[Any, Article]], list[Poison]]:
    """Split records into valid articles and poison (too large, bad JSON, schema or version)."""
    good: list[tuple[Any, Article]] = []
    poison: list[Poison] = []
    for record in records:
        try:
            check_message_size(record.value)
            good.append((record, Article.model_validate_json(record.value or b"")))
        except (ValidationError, ValueError) as exc:
            poison.append(Poison(record, exc))
    return good, poison


def _enrich_isolating_failures(
    enricher: ArticleEnricher, items: list[tuple[Any, Article]], repairs: Counter[str]
) -> tuple[list[tuple[Any, EnrichedArticle]], list[Poison]]:
    try:
        found: Counter[str] = Counter()
        enriched = enricher.enrich_many([article for _, article in items], found)
        repairs.update(found)
        return list(zip((record for record, _ in items), enriched, strict=True)), []
    except Exception:
        # One bad document must not sink its batch: redo one by one to find the culprit.
        log.warning("batch enrichment failed; retrying one article at a time", exc_info=True)
    done: list[tuple[Any, EnrichedArticle]] = []
    poison: list[Poison] = []
    for record, article in items:
        try:
            done.extend((record, item) for item in enricher.enrich_many([article], repairs))
        except Exception as exc:  # any failure of one document is that document's poison
            poison.append(Poison(record, exc))
    return done, poison


class Output:
    """The producer to news.enriched, renewed after the broker refuses a message as too
    large: kafka-python's idempotent producer takes that refusal for a fatal error and
    fails every later send, so one oversized message stalled the stage for good (found by
    tests/hostile). Such a message is poison; its neighbours are sent again."""

    def __init__(self, factory: Callable[[], KafkaProducer]) -> None:
        self._factory = factory
        self.producer = factory()

    def send_all(self, topic: str, items: list[tuple[Any, EnrichedArticle]]) -> list[Poison]:
        """Send ``items`` (record, message) and wait for every ack. Returns the poison: the
        messages refused as too large. Other Kafka errors propagate."""
        poison, refused = self._send(topic, items)
        if refused:
            # The refused ones include those only aborted with the oversized one: each is
            # sent again alone, on a fresh producer, to tell them apart.
            self._renew()
            for record, item, _error in refused:
                more, again = self._send(topic, [(record, item)])
                poison += more + [Poison(record, error) for record, _item, error in again]
                if again:
                    self._renew()
        return poison

    def _send(self, topic: str, items: list[tuple[Any, EnrichedArticle]]
              ) -> tuple[list[Poison], list[tuple[Any, EnrichedArticle, KafkaError]]]:
        poison: list[Poison] = []
        pending = []
        for record, item in items:
            try:
                pending.append((record, item, self.producer.send(
                    topic, key=item.article.id.encode(), value=item.to_bytes())))
            except MessageSizeTooLargeError as exc:  # over max_request_size: never sent
                poison.append(Poison(record, exc))
        refused = []
        for record, item, future in pending:
            try:
                future.get(timeout=SEND_TIMEOUT_S)
            except MessageSizeTooLargeError as exc:
                refused.append((record, item, exc))
        return poison, refused

    def _renew(self) -> None:
        old, self.producer = self.producer, self._factory()
        try:
            old.close(timeout=1)
        except KafkaError:  # closing a failed producer must not hide what happened
            log.debug("closing a failed producer raised", exc_info=True)

    def close(self) -> None:
        self.producer.flush()
        self.producer.close()


def make_handler(enricher: ArticleEnricher, output: Output, out_topic: str) -> BatchHandler:
    """The batch handler: decode, enrich, produce, wait for every acknowledgement."""

    def handle(records: Sequence[Any]) -> Sequence[Poison]:
        items, poison = decode_articles(records)
        repairs: Counter[str] = Counter()
        enriched, failed = _enrich_isolating_failures(enricher, items, repairs)
        for kind, count in repairs.items():
            metrics.INPUT_REPAIRED.labels(STAGE, kind).inc(count)
        try:
            too_large = output.send_all(out_topic, enriched)
        except KafkaError as exc:
            # Nothing is committed: the whole batch is redone once the broker is back,
            # and the store's idempotent upserts absorb what was already sent.
            raise ServiceUnavailableError(f"producing to {out_topic} failed: {exc}") from exc
        metrics.ARTICLES_ENRICHED.inc(len(enriched) - len(too_large))
        return poison + failed + too_large

    return handle


def run(settings: Settings, enricher: ArticleEnricher) -> int:
    """Run the enrich daemon in the daemon shell until SIGTERM/SIGINT; the exit code.
    Ready while the broker answers (its input and its output)."""
    shell = Daemon(STAGE, settings)
    client = settings.kafka_client_config()
    bootstrap = ",".join(client.pop("bootstrap_servers"))
    shell.ready_when(lambda: broker_answers(bootstrap, **client))
    return shell.run(lambda: serve(settings, enricher, shell.stop))


def serve(settings: Settings, enricher: ArticleEnricher, stop: StopFlag) -> None:
    """Consume, enrich and produce until ``stop`` is set; then finish the batch and commit.
    A broker not there yet is waited for (`newswatch.daemon.connect`)."""
    batch = settings.enrich_batch_size
    names = TopicNames.with_prefix(settings.kafka_topic_prefix)
    output = connect("Kafka", lambda: Output(lambda: make_producer(settings, role=STAGE)),
                     stop, stage=STAGE)
    if output is None:
        return
    log.info("enrich started", extra={"topic": names.articles, "group": GROUP_ID})
    try:
        stats = run_stage(settings, stop, make_handler(enricher, output, names.enriched),
                          stage=STAGE, topic=names.articles, group_id=GROUP_ID, role=STAGE,
                          consumer_config={"max_poll_records": batch}, max_batch=batch)
        log.info("enrich stopped", extra={"processed": stats.processed,
                                          "dead_lettered": stats.dead_lettered})
    finally:
        output.close()
