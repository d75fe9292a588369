"""Retention: old articles (with their hits and entity links), old alerts (with their sends
and delivery log), and the producer's seen rows that nothing needs any more.

- **Articles** go by the time they were stored (``by="stored"``, the default: an archive
  or a backfill stored today stays as long as anything stored today), or by publication
  time (``by="published"``). An article a throttle or digest still holds for an alert
  stays until it is sent.
- **Alerts** that are finished (sent or failed) go when decided before their own cutoff,
  by default 90 days and never sooner than the articles': an alert is the record of
  what was sent. Their ``alert_sends`` and ``deliveries`` rows go with them. What keeps
  an article from alerting twice is its ``alert_ledger`` rows, which go with the article.
- **Seen rows** (``seen_items``, what keeps the producer from publishing an item twice)
  go only when their article is gone, they were last listed before the cutoff, and their
  feed has sent a new body since (``feeds.last_changed_at``), i.e. the item has left the
  feed. A pruned article whose item a feed still lists, even behind 304 answers, keeps
  its seen row, so it is not ingested again; a kept article keeps its row, so a revision
  of it is still told from a new article.

Deletes run in bounded batches, one short transaction each, so the store and the alert
evaluator never wait long on a lock and an interrupted prune keeps what it already did.
Entities stay: they are a small shared dictionary, and a store daemon may be linking an
old name to a new article at the same moment.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    and_,
    delete,
    exists,
    func,
    or_,
    select,
)

from consumers.alert.ledger import hold_floor
from newswatch.daemon import StopFlag
from newswatch.db_errors import unavailable_as_retryable
from newswatch.utc import as_utc
from schemas import tables

log = logging.getLogger(__name__)

# Articles per delete transaction. 1,000 held SQLite's write lock up to ~1 s under load
# (bench/bench_prune.py: a writer's longest stall 985 ms at load 10); 500 halves it.
DEFAULT_BATCH = 500
DEFAULT_ALERTS_AGE = timedelta(days=90)
By = Literal["stored", "published"]

A, H, AE = tables.articles, tables.topic_hits, tables.article_entities
SEEN, FEEDS = tables.seen_items, tables.feeds
ALERTS, SENDS, DELIVERIES, LEDGER = (tables.alerts, tables.alert_sends, tables.deliveries,
                                     tables.alert_ledger)


@dataclass(frozen=True)
class Retention:
    """The cutoffs of one prune: what is older than them goes."""

    cutoff: datetime
    alerts_cutoff: datetime
    by: By = "stored"

    @classmethod
    def of(cls, older_than: timedelta, *, by: By = "stored",
           alerts_older_than: timedelta | None = None,
           now: datetime | None = None) -> Retention:
        """Alerts are kept ``alerts_older_than`` (default 90 days), never less than articles.

        Raises ValueError when ``alerts_older_than`` is shorter than ``older_than``.
        """
        moment = now or datetime.now(UTC)
        alerts_age = alerts_older_than or max(DEFAULT_ALERTS_AGE, older_than)
        if alerts_age < older_than:
            raise ValueError("alerts are kept at least as long as articles (an alert's "
                             "articles keep it from being sent twice)")
        return cls(cutoff=moment - older_than, alerts_cutoff=moment - alerts_age, by=by)


@dataclass(frozen=True)
class PruneResult:
    """Rows deleted (or, for a dry run, that would be), and how many transactions."""

    cutoff: datetime
    articles: int = 0
    topic_hits: int = 0
    entity_links: int = 0
    seen_items: int = 0
    alerts: int = 0
    deliveries: int = 0
    batches: int = 0
    kept_held: int = 0  # old articles kept because an alert still holds them
    by: By = "stored"
    alerts_cutoff: datetime | None = None
    first_published: datetime | None = None  # of the articles that go (dry run)
    last_published: datetime | None = None
    articles_total: int = 0  # articles stored before the prune (dry run)


def _held(floor: int) -> ColumnElement[bool]:
    """The article has a ledger entry after ``floor`` (`ledger.hold_floor`, the oldest
    mark a throttle or digest has not sent past): it may be held for an alert."""
    return exists().where(LEDGER.c.article_id == A.c.id, LEDGER.c.id > floor)


def _old_articles(retention: Retention, floor: int) -> ColumnElement[bool]:
    """Articles past the cutoff that no throttle or digest may hold for an alert."""
    column = A.c.stored_at if retention.by == "stored" else A.c.published
    return and_(column < retention.cutoff, ~_held(floor))


def _held_old(retention: Retention, floor: int) -> ColumnElement[bool]:
    column = A.c.stored_at if retention.by == "stored" else A.c.published
    return and_(column < retention.cutoff, _held(floor))


def _seen_gone(retention: Retention, article_kept: ColumnElement[bool]
               ) -> ColumnElement[bool]:
    """Seen rows nothing needs: article gone (``article_kept`` false), last listed before
    the cutoff, and left its feed (which sent a body since, or is disabled or unknown)."""
    feed = FEEDS.alias("feed")
    still_listed = exists().where(
        feed.c.id == SEEN.c.feed_id, feed.c.disabled_reason.is_(None),
        or_(feed.c.last_changed_at.is_(None), feed.c.last_changed_at <= SEEN.c.last_seen_at),
    )
    return and_(SEEN.c.last_seen_at < retention.cutoff, ~article_kept, ~still_listed)


def _old_alerts(retention: Retention) -> ColumnElement[bool]:
    return and_(ALERTS.c.created_at < retention.alerts_cutoff,
                ALERTS.c.status.in_(("sent", "failed")))


def _count(conn: Connection, query: Select[Any]) -> int:
    return int(conn.execute(query).scalar_one())


def preview(engine: Engine, retention: Retention) -> PruneResult:
    """What `prune` would delete with ``retention``, counted in one read; deletes nothing."""
    with unavailable_as_retryable(), engine.connect() as conn:
        floor = hold_floor(conn)
        old = _old_articles(retention, floor)
        going = select(A.c.id).where(old)
        articles, first, last = conn.execute(
            select(func.count(), func.min(A.c.published), func.max(A.c.published)).where(old)
        ).one()
        kept_article = exists().where(A.c.id == SEEN.c.article_id, ~old)
        old_alert_ids = select(ALERTS.c.id).where(_old_alerts(retention))
        return PruneResult(
            cutoff=retention.cutoff, by=retention.by, alerts_cutoff=retention.alerts_cutoff,
            articles=int(articles),
            topic_hits=_count(conn, select(func.count()).select_from(H)
                              .where(H.c.article_id.in_(going))),
            entity_links=_count(conn, select(func.count()).select_from(AE)
                                .where(AE.c.article_id.in_(going))),
            seen_items=_count(conn, select(func.count()).select_from(SEEN)
                              .where(_seen_gone(retention, kept_article))),
            alerts=_count(conn, select(func.count()).select_from(ALERTS)
                          .where(_old_alerts(retention))),
            deliveries=_count(conn, select(func.count()).select_from(DELIVERIES)
                              .where(DELIVERIES.c.alert_id.in_(old_alert_ids))),
            kept_held=_count(conn, select(func.count()).select_from(A)
                             .where(_held_old(retention, floor))),
            first_published=as_utc(first), last_published=as_utc(last),
            articles_total=_count(conn, select(func.count()).select_from(A)),
        )


def prune(engine: Engine, older_than: timedelta, *, by: By = "stored",
          alerts_older_than: timedelta | None = None, batch_size: int = DEFAULT_BATCH,
          now: datetime | None = None, stop: StopFlag | None = None) -> PruneResult:
    """Delete what is older than the cutoffs (see the module docstring).

    At most ``batch_size`` rows of the main table per transaction; returns when none is
    left or when ``stop`` is set (after the batch in hand). Raises
    `ServiceUnavailableError` when the database goes away; what was deleted until then
    stays deleted, and running it again carries on.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    retention = Retention.of(older_than, by=by, alerts_older_than=alerts_older_than, now=now)
    counts = {"articles": 0, "topic_hits": 0, "entity_links": 0, "seen_items": 0,
              "alerts": 0, "deliveries": 0, "batches": 0}
    column = A.c.stored_at if by == "stored" else A.c.published
    while not _stopping(stop):
        with unavailable_as_retryable(), engine.begin() as conn:
            old = _old_articles(retention, hold_floor(conn))
            ids = list(conn.execute(
                select(A.c.id).where(old).order_by(column).limit(batch_size)).scalars())
            if not ids:
                break
            # Children first and explicitly: no reliance on ON DELETE CASCADE, which SQLite
            # honours only with its foreign_keys pragma on.
            counts["topic_hits"] += conn.execute(
                delete(H).where(H.c.article_id.in_(ids))).rowcount
            counts["entity_links"] += conn.execute(
                delete(AE).where(AE.c.article_id.in_(ids))).rowcount
            conn.execute(delete(LEDGER).where(LEDGER.c.article_id.in_(ids)))
            counts["articles"] += conn.execute(delete(A).where(A.c.id.in_(ids))).rowcount
        counts["batches"] += 1
        log.debug("pruned a batch of articles",
                  extra={"articles": len(ids), "cutoff": retention.cutoff.isoformat()})
    kept_article = exists().where(A.c.id == SEEN.c.article_id)
    while not _stopping(stop):
        with unavailable_as_retryable(), engine.begin() as conn:
            seen_ids = list(conn.execute(
                select(SEEN.c.article_id).where(_seen_gone(retention, kept_article))
                .limit(batch_size)).scalars())
            if not seen_ids:
                break
            counts["seen_items"] += conn.execute(
                delete(SEEN).where(SEEN.c.article_id.in_(seen_ids))).rowcount
        counts["batches"] += 1
    while not _stopping(stop):
        with unavailable_as_retryable(), engine.begin() as conn:
            alert_ids = list(conn.execute(
                select(ALERTS.c.id).where(_old_alerts(retention)).order_by(ALERTS.c.id)
                .limit(batch_size)).scalars())
            if not alert_ids:
                break
            counts["deliveries"] += conn.execute(
                delete(DELIVERIES).where(DELIVERIES.c.alert_id.in_(alert_ids))).rowcount
            conn.execute(delete(SENDS).where(SENDS.c.alert_id.in_(alert_ids)))
            counts["alerts"] += conn.execute(
                delete(ALERTS).where(ALERTS.c.id.in_(alert_ids))).rowcount
        counts["batches"] += 1
    with engine.connect() as conn:
        kept_held = _count(conn, select(func.count()).select_from(A)
                           .where(_held_old(retention, hold_floor(conn))))
    result = PruneResult(
        cutoff=retention.cutoff, by=by, alerts_cutoff=retention.alerts_cutoff,
        kept_held=kept_held, articles=counts["articles"], topic_hits=counts["topic_hits"],
        entity_links=counts["entity_links"], seen_items=counts["seen_items"],
        alerts=counts["alerts"], deliveries=counts["deliveries"], batches=counts["batches"])
    log.info("pruned old rows", extra={"cutoff": retention.cutoff.isoformat(), "by": by,
                                       "alerts_cutoff": retention.alerts_cutoff.isoformat(),
                                       **counts, "kept_held": kept_held})
    return result





def _stopping(stop: StopFlag | None) -> bool:
    return stop is not None and stop.stopping
