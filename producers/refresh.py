"""One feed's refresh, top to bottom: the whole story of an article entering Newswatch.

load state -> (read back a cut-short publish) -> fetch (not modified? reschedule, stop)
-> parse -> normalise -> keep what was never published -> full text (if asked) -> mark
-> publish (wait for the ack) -> record seen rows, validators and next check together.

A feed that fails (network, HTTP status, not a feed) is rescheduled with backoff and its
error recorded; that is an outcome, not an exception. An unavailable broker is the
exception: `BrokerUnavailableError` propagates with nothing recorded, the feed stays due,
and the caller (the daemon) waits before trying again.

Under a feed lease (the daemon's ``ctx.leases``) the poll, the publish and every write of
the feed's state are fenced on it (`producers.lease`, "Fencing"): a refresh whose lease may
have lapsed stops at that step, logged and counted, outcome "cancelled", and leaves the
feed to its new holder.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import ColumnElement

from newswatch import metrics
from newswatch.daemon import StopFlag
from newswatch.errors import FeedError, LeaseLapsedError
from newswatch.settings import Settings
from producers import schedule
from producers.entries import normalise
from producers.fetch import Fetcher, FetchResult, Validators
from producers.fulltext import FullText
from producers.lease import FeedLeases
from producers.parse import ParsedFeed, parse
from producers.publish import Publisher
from producers.recover import Recovery
from producers.state import FeedState, InFlight, Store
from schemas.feeds_file import FeedConfig
from schemas.messages import Article

log = logging.getLogger(__name__)

Status = Literal["published", "unchanged", "not_modified", "failed", "disabled", "cancelled"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Context:
    """What a refresh needs, built once per process by the daemon (or a test)."""

    settings: Settings
    store: Store
    fetcher: Fetcher
    publisher: Publisher
    recovery: Recovery
    fulltext: FullText | None = None
    default_interval_s: float = 900.0
    stop: StopFlag = field(default_factory=StopFlag)
    in_flight: InFlight = field(default_factory=InFlight)
    leases: FeedLeases | None = None  # several producers on one database (the daemon's)
    rng: random.Random = field(default_factory=random.Random)
    clock: Callable[[], datetime] = _utcnow

    def interval_s(self, feed: FeedConfig) -> float:
        if feed.poll_interval is not None:
            return feed.poll_interval.total_seconds()
        return self.default_interval_s

    def write_fence(self, feed: FeedConfig) -> ColumnElement[bool] | None:
        """The condition the writes of ``feed``'s state carry (None without leases)."""
        return self.leases.write_fence(feed.id) if self.leases is not None else None

    def poll_fence(self, feed: FeedConfig) -> Callable[[], None] | None:
        """What the fetcher runs right before it sends ``feed``'s request."""
        leases = self.leases
        if leases is None:
            return None
        return lambda: leases.fence(feed.id, "poll")


@dataclass(frozen=True)
class Outcome:
    """What one refresh did."""

    feed_id: str
    status: Status
    items: int = 0
    published: int = 0
    error: str | None = None
    next_check_at: datetime | None = None


def refresh(feed: FeedConfig, ctx: Context) -> Outcome:
    """Poll ``feed`` once and publish what is new or revised; see the module docstring.

    Seen rows and the feed's ETag are committed only after Kafka acknowledged the batch,
    so a crash anywhere re-reads the feed, and never loses an article.
    """
    try:
        return _refresh(feed, ctx)
    except LeaseLapsedError as lapsed:
        return _lease_lapsed(feed, ctx, lapsed)


def _refresh(feed: FeedConfig, ctx: Context) -> Outcome:
    state = ctx.store.load(feed.id)
    if state.disabled_reason is not None:
        return Outcome(feed.id, "disabled", error=state.disabled_reason)
    if state.publishing_since is not None:
        _recover(feed, state, ctx)  # the last publish was cut short
    try:
        fetched = ctx.fetcher.fetch(feed.url, Validators(state.etag, state.last_modified),
                                    before_send=ctx.poll_fence(feed))
        if fetched.not_modified:
            return _not_modified(feed, ctx, fetched)
        parsed = parse(fetched.body, http_charset=fetched.charset, encoding=feed.encoding,
                       language=feed.language)
    except FeedError as error:
        return _failed(feed, state, ctx, error)
    repairs: Counter[str] = Counter(parsed.repairs)
    articles = normalise(parsed, feed, fetched_at=fetched.fetched_at, fetched_url=fetched.url,
                         repairs=repairs)
    if ctx.stop.stopping:
        return Outcome(feed.id, "cancelled", items=len(articles))
    with ctx.in_flight.claim(articles) as mine:
        fresh, unchanged = ctx.store.unpublished(
            feed.id, mine, max_revisions=ctx.settings.producer_max_revisions)
        if fresh and feed.full_text and ctx.fulltext is not None:
            fresh = ctx.fulltext.complete(fresh, feed.id)
        if fresh and ctx.leases is not None:
            ctx.leases.fence(feed.id, "publish")  # then the mark, fenced by the database
        if fresh:
            ctx.store.mark_publishing(feed.id, ctx.clock(), fence=ctx.write_fence(feed))
            try:
                ctx.publisher.publish(fresh)  # returns once Kafka acknowledged all
            except FeedError as error:  # an article the broker refuses: this feed only
                return _failed(feed, state, ctx, error)
        now = ctx.clock()
        next_check = _next_check(feed, ctx, now, fetched.max_age_s, parsed.ttl_minutes)
        ctx.store.record_success(
            feed.id, published=fresh, unchanged_ids=unchanged,
            etag=fetched.validators.etag, last_modified=fetched.validators.last_modified,
            next_check_at=next_check, now=now, warning="; ".join(parsed.warnings) or None,
            fence=ctx.write_fence(feed))
    return _refreshed(feed, parsed, articles, fresh, next_check, repairs)


def _next_check(feed: FeedConfig, ctx: Context, now: datetime, max_age_s: float | None,
                ttl_minutes: int | None) -> datetime:
    return schedule.after_success(now, ctx.interval_s(feed), max_age_s=max_age_s,
                                  ttl_minutes=ttl_minutes,
                                  max_delay_s=ctx.settings.producer_max_backoff_s, rng=ctx.rng)


def _refreshed(feed: FeedConfig, parsed: ParsedFeed, articles: list[Article],
               fresh: list[Article], next_check: datetime, repairs: Counter[str]) -> Outcome:
    """Log and count a successful refresh."""
    if parsed.warnings:
        log.warning("feed read with recoverable errors: %s", "; ".join(parsed.warnings),
                    extra={"feed": feed.id})
    if repairs:
        # Hostile or broken input that cost nothing but a repair: counted, so a feed that
        # keeps sending it shows up on a dashboard, not only in this line.
        for kind, count in repairs.items():
            metrics.INPUT_REPAIRED.labels("producer", kind).inc(count)
        log.warning("feed input repaired: %s",
                    ", ".join(f"{kind}={count}" for kind, count in sorted(repairs.items())),
                    extra={"feed": feed.id, "repairs": dict(repairs)})
    status: Status = "published" if fresh else "unchanged"
    metrics.ARTICLES_FETCHED.labels(feed.id).inc(len(articles))
    metrics.ARTICLES_PUBLISHED.labels(feed.id).inc(len(fresh))
    metrics.FEED_POLLS.labels(feed.id, status).inc()
    log.info("feed refreshed", extra={
        "feed": feed.id, "items": len(articles), "published": len(fresh),
        "revisions": sum(1 for a in fresh if a.revision), "next_check": next_check.isoformat()})
    return Outcome(feed.id, status, items=len(articles), published=len(fresh),
                   next_check_at=next_check)


def _lease_lapsed(feed: FeedConfig, ctx: Context, lapsed: LeaseLapsedError) -> Outcome:
    """Log and count a refresh stopped by its lease's fence; nothing more is done."""
    metrics.LEASE_FENCED.labels(feed.id, lapsed.step).inc()
    log.warning("feed lease lost before the %s; the feed is left to its new holder",
                lapsed.step, extra={"feed": feed.id, "step": lapsed.step,
                                    "owner": ctx.leases.owner if ctx.leases else None})
    return Outcome(feed.id, "cancelled", error=str(lapsed))


def _recover(feed: FeedConfig, state: FeedState, ctx: Context) -> None:
    """Record as seen what a cut-short publish of this feed got into Kafka."""
    assert state.publishing_since is not None
    found = ctx.recovery.published_since(feed.id, state.publishing_since)
    added = ctx.store.record_recovered(feed.id, found, ctx.clock(), fence=ctx.write_fence(feed))
    log.warning("recovered a publish cut short", extra={
        "feed": feed.id, "since": state.publishing_since.isoformat(),
        "in_kafka": len(found), "recorded": added})


def _not_modified(feed: FeedConfig, ctx: Context, fetched: FetchResult) -> Outcome:
    now = ctx.clock()
    next_check = _next_check(feed, ctx, now, fetched.max_age_s, None)
    ctx.store.record_success(feed.id, published=(), unchanged_ids=(),
                             etag=fetched.validators.etag,
                             last_modified=fetched.validators.last_modified,
                             next_check_at=next_check, now=now, not_modified=True,
                             fence=ctx.write_fence(feed))
    metrics.FEED_POLLS.labels(feed.id, "not_modified").inc()
    log.debug("feed not modified", extra={"feed": feed.id})
    return Outcome(feed.id, "not_modified", next_check_at=next_check)


def _failed(feed: FeedConfig, state: FeedState, ctx: Context, error: FeedError) -> Outcome:
    now = ctx.clock()
    errors = state.error_count + 1
    if error.gone:
        next_check = None
    else:
        next_check = schedule.after_failure(
            now, ctx.interval_s(feed), errors, retry_after_s=error.retry_after_s,
            max_delay_s=ctx.settings.producer_max_backoff_s, rng=ctx.rng)
    ctx.store.record_failure(feed.id, str(error), next_check_at=next_check, now=now,
                             disabled_reason=str(error) if error.gone else None,
                             fence=ctx.write_fence(feed))
    metrics.FEED_ERRORS.labels(feed.id, error.kind).inc()
    metrics.FEED_POLLS.labels(feed.id, "failed").inc()
    # The message, not the error: a record kept by a handler would keep the error's
    # traceback, and with it the frames holding a refused body (up to the size limit).
    log.warning("feed poll failed: %s", str(error), extra={
        "feed": feed.id, "url": feed.url, "kind": error.kind, "status": error.status,
        "error_count": errors, "retryable": error.retryable,
        "next_check": next_check.isoformat() if next_check else None})
    return Outcome(feed.id, "disabled" if error.gone else "failed", error=str(error),
                   next_check_at=next_check)
