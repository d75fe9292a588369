"""``newswatch stories run``: the stage that places every enriched article in a story.

Where it runs, and why: beside the store, as its own consumer group on ``news.enriched``
(it reads, the store reads; neither waits for the other). One instance places articles
at a time, holding a lease in ``story_state``; it reads every partition, so however many
enrich and store processes there are, all articles meet in one clusterer and a story is
never split by partitioning. A second instance is a standby: it waits for the lease and
only then subscribes.

One batch tells the whole story (`StoriesHandler.__call__`): decode (poison to the DLQ),
look up the articles placed before (a replay gets its old answer), place the others in
arrival order, then in one transaction renew the lease, record the placements and the
stories, and link the stored articles. The run loop commits offsets after that, so a
crash replays and never loses; at start the open stories are rebuilt from
``story_articles``, so a restart continues with the memory it had (kill -9 included).
Memory holds the open stories only: a story quiet for ``NEWSWATCH_STORY_QUIET_HOURS``
is closed and dropped.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Engine

from consumers.stories.cluster import (
    COPY_WORDS,
    ClusterConfig,
    OpenStory,
    StoryClusterer,
    StoryInput,
)
from consumers.stories.record import (
    Known,
    NewPlacement,
    known_placements,
    link_unlinked,
    open_members,
    release_lease,
    renew_lease,
    take_lease,
    write_batch,
)
from consumers.stories.text import lead
from newswatch import metrics
from newswatch.consumer_loop import (
    DlqLimit,
    LoopStats,
    Poison,
    check_message_size,
    run_stage,
)
from newswatch.daemon import StopFlag
from newswatch.db import make_engine
from newswatch.db_errors import unavailable_as_retryable
from newswatch.errors import ServiceUnavailableError
from newswatch.migrate import wait_for_schema
from newswatch.retry import Attempts, RetryPolicy
from newswatch.settings import Settings
from schemas.messages import EnrichedArticle
from schemas.topics import TopicNames

log = logging.getLogger(__name__)

STAGE = "stories"
DEFAULT_GROUP = "newswatch-stories"
DEFAULT_BATCH = 500
# Entities that name who and where: what makes two articles one event.
STORY_LABELS = frozenset({"PERSON", "ORG", "GPE", "LOC", "NORP", "EVENT", "FAC"})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# How far back the repair of unlinked articles looks.
LINK_REPAIR_WINDOW = timedelta(hours=1)


def story_input(enriched: EnrichedArticle) -> StoryInput:
    """What the clusterer reads of an enriched article (text cut to what it uses, which is
    also what ``story_articles`` keeps to rebuild the open stories after a restart). Cut
    as written, punctuation and capitals kept: they tell names and digests apart."""
    article = enriched.article
    text = article.summary or article.content
    return StoryInput(
        id=article.id, title=article.title, text=lead(text, COPY_WORDS),
        published=article.published, outlet=article.feed_name or article.feed_id,
        entities=tuple(dict.fromkeys(e.name for e in enriched.entities
                                     if e.label in STORY_LABELS)),
        language=article.language)


def decode(value: bytes | None) -> EnrichedArticle:
    """The enriched article in ``value``; raises (poison) for anything else."""
    if not value:
        raise ValueError("empty message: no enriched article in it")
    check_message_size(value)
    return EnrichedArticle.model_validate_json(value)


class StoriesHandler:
    """The batch handler: records in, poison out, placements durable in SQL."""

    def __init__(self, engine: Engine, clusterer: StoryClusterer, owner: str,
                 lease: timedelta) -> None:
        self._engine = engine
        self._clusterer = clusterer
        self._owner = owner
        self._lease = lease
        self._renewed = 0.0

    def __call__(self, records: Sequence[Any]) -> list[Poison]:
        poisons: list[Poison] = []
        items: list[StoryInput] = []
        for record in records:
            try:
                items.append(story_input(decode(record.value)))
            except (ValidationError, ValueError) as error:
                poisons.append(Poison(record, error))
        # Partitions interleave: within a batch, articles are placed in publication
        # order (then by id, so the order is a function of the batch alone), which is
        # what the clusterer's clock and quiet-time closing assume.
        items.sort(key=lambda item: (item.published or _EPOCH, item.id))
        with unavailable_as_retryable():
            self._place_and_record(items)
        return poisons

    def _place_and_record(self, items: list[StoryInput]) -> None:
        with self._engine.connect() as connection:
            known = known_placements(connection, [item.id for item in items])
        placed, touched = self._place(items, known)
        closed = self._clusterer.drain_closed()
        now = datetime.now(UTC)
        try:
            with self._engine.begin() as connection:
                renew_lease(connection, self._owner, now, self._lease)
                linked = write_batch(connection, placed, touched.values(), closed, now)
        except Exception:
            # Not recorded: the stories closed in this batch are closed again next time.
            self._restore_closed(closed)
            raise
        self._renewed = time.monotonic()
        for new in placed:
            outcome = ("duplicate" if new.placement.duplicate_of else
                       "new_story" if new.placement.new_story else "joined")
            metrics.ARTICLES_PLACED.labels(outcome).inc()
        metrics.STORIES_OPEN.set(self._clusterer.open_stories)
        log.debug("batch placed", extra={"stage": STAGE, "articles": len(items),
                                         "new": len(placed), "linked": linked,
                                         "closed": len(closed),
                                         "open_stories": self._clusterer.open_stories})

    def _place(self, items: list[StoryInput], known: Mapping[str, Known]
               ) -> tuple[list[NewPlacement], dict[str, OpenStory]]:
        placed: list[NewPlacement] = []
        touched: dict[str, OpenStory] = {}
        for item in items:
            if item.id in known:
                # Placed before: the answer stands. Its story is either open, and then
                # the article is in memory already (rebuilt at start), or closed, and
                # then it must stay closed: restoring it would reopen it with one article.
                continue
            placement = self._clusterer.place(item)
            placed.append(NewPlacement(placement, item))
            story = self._clusterer.story(placement.story)
            if story is not None:
                touched[story.id] = story
        return placed, touched

    def _restore_closed(self, closed: list[OpenStory]) -> None:
        # The stories stay closed in memory (their articles are forgotten, as they would
        # be anyway); only their closed_at is written with a later batch.
        self._clusterer.requeue_closed(closed)

    def on_idle(self) -> None:
        """Renew the lease between batches and repair unlinked articles."""
        if time.monotonic() - self._renewed < self._lease.total_seconds() / 3:
            return
        now = datetime.now(UTC)
        try:
            with unavailable_as_retryable(), self._engine.begin() as connection:
                renew_lease(connection, self._owner, now, self._lease)
                repaired = link_unlinked(connection, now - LINK_REPAIR_WINDOW)
        except ServiceUnavailableError as error:
            # The next batch meets the outage in the loop, which waits it out; idle, there
            # is nothing to lose. An expired lease is noticed at the next renewal.
            log.warning("database unavailable while idle: %s", error, extra={"stage": STAGE})
            return
        self._renewed = time.monotonic()
        if repaired:
            log.info("linked articles stored while they were placed",
                     extra={"stage": STAGE, "articles": repaired})


def rebuild(engine: Engine, config: ClusterConfig) -> StoryClusterer:
    """A clusterer holding the open stories as recorded, in placement order."""
    clusterer = StoryClusterer(config, keep_closed=True)
    began = time.monotonic()
    count = 0
    with engine.connect() as connection:
        for member in open_members(connection):
            clusterer.restore(member.article, member.story, member.duplicate_of)
            count += 1
    log.info("open stories rebuilt", extra={"stage": STAGE, "articles": count,
                                            "open_stories": clusterer.open_stories,
                                            "seconds": round(time.monotonic() - began, 2)})
    return clusterer


def _wait_for_lease(engine: Engine, owner: str, lease: timedelta, stop: StopFlag) -> bool:
    announced = False
    # The standby polls at a third of the lease; a database away meanwhile is waited out
    # with backoff and logged once per outage (`newswatch.retry`), not at every poll.
    outage = Attempts(RetryPolicy(max_s=5.0), "taking the stories lease", wait=stop.wait,
                      logger=log, context={"stage": STAGE})
    while not stop.stopping:
        try:
            with unavailable_as_retryable(), engine.begin() as connection:
                taken = take_lease(connection, owner, datetime.now(UTC), lease)
        except ServiceUnavailableError as error:
            outage.failed(error, "database unavailable while taking the lease")
            continue
        outage.succeeded()
        if taken:
            return True
        if not announced:
            log.info("another stories stage holds the lease; standing by",
                     extra={"stage": STAGE, "owner": owner})
            announced = True
        stop.wait(min(5.0, lease.total_seconds() / 3))
    return False


def run_stories(
    settings: Settings,
    stop: StopFlag,
    *,
    engine: Engine | None = None,
    group_id: str = DEFAULT_GROUP,
    batch_size: int = DEFAULT_BATCH,
    config: ClusterConfig | None = None,
    consumer_overrides: Mapping[str, Any] | None = None,
    backoff: RetryPolicy | None = None,
    owner: str | None = None,
) -> LoopStats:
    """Place ``news.enriched`` articles in stories until ``stop`` is set.

    Waits for the schema, then for the lease (standby), rebuilds the open stories, then
    consumes. Returns after the batch in hand is recorded and committed; raises
    `LeaseLostError` if another instance took the lease (the supervisor restarts this
    one as a standby). Installs no signal handlers.
    """
    topics = TopicNames.with_prefix(settings.kafka_topic_prefix)
    own_engine = engine is None
    db = engine if engine is not None else make_engine(settings.sqlalchemy_url())
    owner = owner or f"{socket.gethostname()}:{os.getpid()}"
    lease = timedelta(seconds=settings.story_lease_s)
    try:
        backoff = backoff or RetryPolicy()
        wait_for_schema(db, stop, backoff)
        if stop.stopping or not _wait_for_lease(db, owner, lease, stop):
            return LoopStats()
        clusterer = rebuild(db, config or ClusterConfig(quiet=settings.story_quiet))
        handler = StoriesHandler(db, clusterer, owner, lease)
        log.info("placing enriched articles in stories", extra={
            "stage": STAGE, "topic": topics.enriched, "group": group_id, "owner": owner})
        stats = run_stage(
            settings, stop, handler, stage=STAGE, topic=topics.enriched, group_id=group_id,
            consumer_config={"max_poll_records": batch_size, **(consumer_overrides or {})},
            max_batch=batch_size, backoff=backoff, dlq_limit=DlqLimit(),
            on_idle=handler.on_idle)
        try:
            with unavailable_as_retryable(), db.begin() as connection:
                release_lease(connection, owner)
        except ServiceUnavailableError:
            pass  # the lease then expires by itself

        log.info("stories stopped", extra={"stage": STAGE, "batches": stats.batches,
                                           "messages": stats.processed,
                                           "open_stories": clusterer.open_stories})
        return stats
    finally:
        if own_engine:
            db.dispose()
