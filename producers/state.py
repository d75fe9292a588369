"""Feed state and seen articles in SQL (SQLAlchemy Core; SQLite and PostgreSQL alike).

Once and only once, as this module keeps it:

- ``seen_items`` holds what Kafka acknowledged: one row per article id with the content
  hash and revision last published. It is written only by `Store.record_success` (after
  the ack) and `Store.record_recovered` (after reading the acked messages back from Kafka).
- `Store.unpublished` decides what to send: unknown ids (revision 0), and ids whose
  content changed *in the feed that first published them* (revision + 1, at most
  ``max_revisions``). The same story in a second feed is a duplicate, not a revision, so
  two feeds with different summaries of one URL do not publish it back and forth.
- Before a batch is sent, `Store.mark_publishing` commits ``feeds.publishing_since``.
  `record_success` clears it in the same transaction as the seen rows and the feed's new
  ETag. A crash in between leaves the mark, and the next refresh of that feed first reads
  back from Kafka what was acknowledged since then (`producers.recover`): nothing is
  published twice and, since the ETag was not saved, nothing is lost.
- A refresh under a feed lease (`producers.lease`) passes its ``fence`` to each write of
  the feed's state: the write is done only while the lease is held, judged in the UPDATE
  itself; otherwise `LeaseLapsedError` is raised and the whole transaction rolled back.
- `InFlight` keeps two concurrent refreshes of different feeds from both sending an
  article they both carry; the one that claims it first owns it.

Times are UTC; SQLite gives naive datetimes back, which are read as UTC.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, select, update

from newswatch.chunks import chunks
from newswatch.errors import LeaseLapsedError
from newswatch.upsert import insert_ignoring, insert_or_update
from newswatch.utc import as_utc
from schemas import tables
from schemas.feeds_file import FeedConfig
from schemas.messages import Article

log = logging.getLogger(__name__)

_CHUNK = 500  # ids per IN (...) list: well under SQLite's and PostgreSQL's limits





@dataclass(frozen=True)
class FeedState:
    """One row of ``feeds``: the polling state of a feed."""

    feed_id: str
    url: str
    name: str
    etag: str | None = None
    last_modified: str | None = None
    error_count: int = 0
    last_error: str | None = None
    last_error_at: datetime | None = None
    last_success_at: datetime | None = None
    next_check_at: datetime | None = None
    disabled_reason: str | None = None
    items_seen: int = 0
    publishing_since: datetime | None = None
    last_outcome: str | None = None
    last_changed_at: datetime | None = None
    last_warning: str | None = None
    last_warning_at: datetime | None = None

    @classmethod
    def from_row(cls, row: Any) -> FeedState:
        return cls(
            feed_id=row.id, url=row.url, name=row.name, etag=row.etag,
            last_modified=row.last_modified, error_count=row.error_count,
            last_error=row.last_error, last_error_at=as_utc(row.last_error_at),
            last_success_at=as_utc(row.last_success_at),
            next_check_at=as_utc(row.next_check_at), disabled_reason=row.disabled_reason,
            items_seen=row.items_seen, publishing_since=as_utc(row.publishing_since),
            last_outcome=row.last_outcome, last_changed_at=as_utc(row.last_changed_at),
            last_warning=row.last_warning, last_warning_at=as_utc(row.last_warning_at),
        )

    def is_due(self, now: datetime) -> bool:
        return self.disabled_reason is None and (
            self.next_check_at is None or self.next_check_at <= now
        )


@dataclass(frozen=True)
class SeenRecord:
    """What the producer last published for one article id."""

    article_id: str
    content_hash: str
    revision: int
    feed_id: str


class InFlight:
    """Article ids being published by some refresh right now. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: set[str] = set()

    @contextmanager
    def claim(self, articles: Sequence[Article]) -> Iterator[list[Article]]:
        """Yield the articles no other refresh holds; release them on exit."""
        with self._lock:
            mine = [a for a in articles if a.id not in self._ids]
            self._ids.update(a.id for a in mine)
        try:
            yield mine
        finally:
            with self._lock:
                self._ids.difference_update(a.id for a in mine)





def _upsert_seen(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert seen rows; an existing row takes the new hash and revision unless it is newer."""
    if not rows:
        return
    seen = tables.seen_items
    statement = insert_or_update(conn, seen, key=["article_id"],
                                 update=("content_hash", "revision", "last_seen_at"),
                                 when=lambda proposed: seen.c.revision <= proposed.revision)
    conn.execute(statement, rows)


def _update_feed(conn: Connection, feed_id: str, values: dict[str, Any],
                 fence: ColumnElement[bool] | None, step: str) -> None:
    """UPDATE the row of ``feed_id``; with a ``fence`` (the lease's `write_fence`) that no
    longer holds, raise `LeaseLapsedError`, which rolls the caller's transaction back."""
    feeds = tables.feeds
    where = [feeds.c.id == feed_id] if fence is None else [feeds.c.id == feed_id, fence]
    updated = conn.execute(update(feeds).where(*where).values(**values)).rowcount
    if fence is not None and updated == 0:
        raise LeaseLapsedError(feed_id, step)


def _seen_row(article: Article, now: datetime) -> dict[str, Any]:
    return {"article_id": article.id, "content_hash": article.content_hash,
            "revision": article.revision, "feed_id": article.feed_id,
            "first_seen_at": now, "last_seen_at": now}


class Store:
    """The producer's SQL state. Thread-safe (each call takes its own connection)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # --- feeds ---

    def sync_feeds(self, feeds: Iterable[FeedConfig]) -> None:
        """Create rows for new feeds; a changed URL resets validators and re-enables.

        Producers starting together on one database may create the same rows at once: the
        insert leaves a row another one created alone (found by
        tests/fault/test_two_producers.py: the second died on a duplicate key).
        """
        table = tables.feeds
        with self.engine.begin() as conn:
            existing = {row.id: row for row in conn.execute(
                select(table.c.id, table.c.url, table.c.name))}
            insert = insert_ignoring(conn, table, key=["id"])
            for feed in feeds:
                row = existing.get(feed.id)
                if row is None:
                    conn.execute(insert.values(id=feed.id, url=feed.url, name=feed.display_name))
                elif row.url != feed.url:
                    log.info("feed URL changed; polling it afresh",
                             extra={"feed": feed.id, "url": feed.url})
                    conn.execute(update(table).where(table.c.id == feed.id).values(
                        url=feed.url, name=feed.display_name, etag=None, last_modified=None,
                        disabled_reason=None, error_count=0, next_check_at=None))
                elif row.name != feed.display_name:
                    conn.execute(update(table).where(table.c.id == feed.id).values(
                        name=feed.display_name))

    def load(self, feed_id: str) -> FeedState:
        """The state of ``feed_id``; KeyError when `sync_feeds` never saw it."""
        with self.engine.connect() as conn:
            row = conn.execute(select(tables.feeds).where(tables.feeds.c.id == feed_id)).first()
        if row is None:
            raise KeyError(feed_id)
        return FeedState.from_row(row)

    def states(self) -> dict[str, FeedState]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(tables.feeds)).all()
        return {row.id: FeedState.from_row(row) for row in rows}

    def mark_publishing(self, feed_id: str, since: datetime, *,
                        fence: ColumnElement[bool] | None = None) -> None:
        """Commit that a batch of ``feed_id`` is about to be sent (see module docstring)."""
        with self.engine.begin() as conn:
            _update_feed(conn, feed_id, {"publishing_since": since}, fence, "publish")

    def record_success(self, feed_id: str, *, published: Sequence[Article],
                       unchanged_ids: Sequence[str], etag: str | None,
                       last_modified: str | None, next_check_at: datetime, now: datetime,
                       warning: str | None = None, not_modified: bool = False,
                       fence: ColumnElement[bool] | None = None) -> None:
        """After the ack: seen rows, validators, schedule, clear the mark; one transaction.

        A poll that got a body (not a 304) stamps ``last_changed_at`` with ``now``, the
        time its listed items' seen rows get: a row older than that has left the feed.
        It also replaces the feed's warning with its own (``None`` clears it): a warning
        describes the body last read, so a 304 keeps the one it had. Warnings are not
        errors: ``last_error`` keeps the last failure.
        """
        feeds = tables.feeds
        new_count = sum(1 for article in published if article.revision == 0)
        values: dict[str, Any] = {
            "etag": etag, "last_modified": last_modified, "error_count": 0,
            "last_success_at": now, "next_check_at": next_check_at,
            "items_seen": feeds.c.items_seen + new_count, "publishing_since": None,
            "last_outcome": ("not_modified" if not_modified
                             else "published" if published else "unchanged"),
        }
        if not not_modified:
            values.update(last_changed_at=now, last_warning=warning[:2000] if warning else None,
                          last_warning_at=now if warning else None)
        with self.engine.begin() as conn:
            # The feed's row first: a fence that fails leaves nothing else to roll back.
            _update_feed(conn, feed_id, values, fence, "record")
            _upsert_seen(conn, [_seen_row(article, now) for article in published])
            for chunk in chunks(list(unchanged_ids), _CHUNK):
                conn.execute(update(tables.seen_items)
                             .where(tables.seen_items.c.article_id.in_(chunk))
                             .values(last_seen_at=now))

    def record_failure(self, feed_id: str, error: str, *, next_check_at: datetime | None,
                       now: datetime, disabled_reason: str | None = None,
                       fence: ColumnElement[bool] | None = None) -> int:
        """Count a failed poll; returns the new consecutive error count."""
        feeds = tables.feeds
        with self.engine.begin() as conn:
            _update_feed(conn, feed_id, {
                "error_count": feeds.c.error_count + 1, "last_error": error[:2000],
                "last_error_at": now, "next_check_at": next_check_at,
                "last_outcome": "failed", "disabled_reason": disabled_reason}, fence, "record")
            count = conn.execute(select(feeds.c.error_count).where(feeds.c.id == feed_id)
                                 ).scalar_one_or_none()
        return int(count or 0)

    def record_recovered(self, feed_id: str, articles: Sequence[Article], now: datetime, *,
                         fence: ColumnElement[bool] | None = None) -> int:
        """Seen rows for messages found in Kafka after a cut-short publish; clears the mark.

        Returns how many of them were not recorded yet.
        """
        ids = [article.id for article in articles]
        known = self.seen(ids)
        missing = [a for a in articles if a.id not in known or known[a.id].revision < a.revision]
        feeds = tables.feeds
        with self.engine.begin() as conn:
            _update_feed(conn, feed_id, {
                "publishing_since": None,
                "items_seen": feeds.c.items_seen + sum(1 for a in missing if a.id not in known),
            }, fence, "record")
            _upsert_seen(conn, [_seen_row(article, now) for article in missing])
        return len(missing)

    # --- seen articles ---

    def seen(self, article_ids: Sequence[str]) -> dict[str, SeenRecord]:
        seen = tables.seen_items
        found: dict[str, SeenRecord] = {}
        with self.engine.connect() as conn:
            for chunk in chunks(list(dict.fromkeys(article_ids)), _CHUNK):
                rows = conn.execute(select(seen.c.article_id, seen.c.content_hash,
                                           seen.c.revision, seen.c.feed_id)
                                    .where(seen.c.article_id.in_(chunk)))
                for row in rows:
                    found[row.article_id] = SeenRecord(row.article_id, row.content_hash,
                                                       row.revision, row.feed_id)
        return found

    def unpublished(self, feed_id: str, articles: Sequence[Article], *, max_revisions: int
                    ) -> tuple[list[Article], list[str]]:
        """Split ``articles`` into those to publish (with their revision) and the ids of
        those already published as they are. See the module docstring for the rules."""
        known = self.seen([article.id for article in articles])
        fresh: list[Article] = []
        unchanged: list[str] = []
        for article in articles:
            record = known.get(article.id)
            if record is None:
                fresh.append(article)
            elif record.content_hash == article.content_hash or record.feed_id != feed_id:
                unchanged.append(article.id)
            elif record.revision >= max_revisions:
                log.debug("revision limit reached; change not published",
                          extra={"feed": feed_id, "article_id": article.id})
                unchanged.append(article.id)
            else:
                fresh.append(article.model_copy(update={"revision": record.revision + 1}))
        return fresh, unchanged
