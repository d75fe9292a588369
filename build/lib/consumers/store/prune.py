"""Retention: delete articles older than a cutoff, with their hits and entity links.

Deletes in bounded batches, one short transaction each, so the store and the alert
evaluator never wait long on a lock and an interrupted prune keeps what it already did.
Entities stay: they are a small shared dictionary, and a store daemon may be linking an
old name to a new article at the same moment.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, select

from newswatch.daemon import StopFlag
from newswatch.db_errors import unavailable_as_retryable
from schemas import tables

log = logging.getLogger(__name__)

DEFAULT_BATCH = 1000


@dataclass(frozen=True)
class PruneResult:
    """Rows deleted, and how many transactions it took."""

    cutoff: datetime
    articles: int = 0
    topic_hits: int = 0
    entity_links: int = 0
    batches: int = 0


def prune(engine: Engine, older_than: timedelta, *, batch_size: int = DEFAULT_BATCH,
          now: datetime | None = None, stop: StopFlag | None = None) -> PruneResult:
    """Delete articles published before ``now - older_than`` and what hangs off them.

    At most ``batch_size`` articles per transaction; returns when none is left or when
    ``stop`` is set (after the batch in hand). Raises `ServiceUnavailableError` when the
    database goes away; what was deleted until then stays deleted, and running it again
    carries on.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    cutoff = (now or datetime.now(UTC)) - older_than
    articles = hits = links = batches = 0
    a = tables.articles.c
    while stop is None or not stop.stopping:
        with unavailable_as_retryable(), engine.begin() as connection:
            ids = list(connection.execute(
                select(a.id).where(a.published < cutoff).order_by(a.published).limit(batch_size)
            ).scalars())
            if not ids:
                break
            # Children first and explicitly: no reliance on ON DELETE CASCADE, which SQLite
            # honours only with its foreign_keys pragma on.
            hits += connection.execute(
                delete(tables.topic_hits).where(tables.topic_hits.c.article_id.in_(ids))
            ).rowcount
            links += connection.execute(
                delete(tables.article_entities)
                .where(tables.article_entities.c.article_id.in_(ids))
            ).rowcount
            articles += connection.execute(
                delete(tables.articles).where(a.id.in_(ids))
            ).rowcount
        batches += 1
        log.debug("pruned a batch", extra={"articles": len(ids), "cutoff": cutoff.isoformat()})
    result = PruneResult(cutoff=cutoff, articles=articles, topic_hits=hits,
                         entity_links=links, batches=batches)
    log.info("pruned old articles", extra={"cutoff": cutoff.isoformat(), "articles": articles,
                                           "topic_hits": hits, "entity_links": links,
                                           "batches": batches})
    return result
