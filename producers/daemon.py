"""The producer daemon: refresh due feeds, a few at a time, until asked to stop.

- Every half second the loop looks for due feeds (enabled in feeds.yaml, not disabled by a
  410, next check reached) and hands them to a pool of ``producer_concurrency`` workers;
  a feed is never refreshed twice at once, and no more than ``producer_per_host_concurrency``
  feeds of one host are handed to workers at once: a worker never waits for a host, so
  one slow host holds at most that many workers, never the pool (issue 16: eight dripping
  feeds on one host stopped every other feed). ``--once`` does one pass over the due
  feeds.
- SIGTERM/SIGINT (`newswatch.daemon`): no new refresh starts, queued ones are dropped,
  running ones finish (a refresh that has not published yet stops before publishing), then
  the Kafka producer is flushed and closed. The bound is one download
  (``producer_total_timeout_s``) plus one delivery (``producer_delivery_timeout_s``).
- SIGHUP reloads feeds.yaml; an invalid file is logged and the last good one kept.
- Several producers may share one database: a feed is refreshed only under its lease
  (`producers.lease`: per feed with SKIP LOCKED on PostgreSQL, one writer on SQLite), the
  leases of running refreshes are renewed from this loop, and released when the refresh
  has recorded its outcome and when the daemon stops. A refresh whose lease may have
  lapsed meanwhile (the process was frozen or cut off) polls, publishes and records
  nothing more (the lease's fences); the feed is left to its new holder.
- Kafka (or the database) unavailable: refreshes stop being started, and the loop waits
  with exponential backoff (1 s doubling to 60 s, jittered) before trying again; nothing
  is lost, since nothing was recorded. ``--once`` gives up after ``broker_wait_s`` with
  exit code 1.
- An unexpected error in one feed is logged with its traceback and that feed alone waits
  (backoff) before its next try, so a bug cannot turn into a tight loop.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from newswatch import metrics
from newswatch.daemon import Daemon, StopFlag
from newswatch.db import make_engine
from newswatch.db_errors import is_unavailable, short_reason
from newswatch.errors import BrokerUnavailableError, ConfigError, ServiceUnavailableError
from newswatch.migrate import wait_for_schema
from newswatch.retry import RetryPolicy
from newswatch.settings import Settings
from producers.fetch import Fetcher, host_of
from producers.fulltext import FullText
from producers.lease import leases_for
from producers.publish import Publisher
from producers.recover import Recovery
from producers.refresh import Context, Outcome, refresh
from producers.state import Store
from schemas.feeds_file import FeedConfig, FeedsFile, load_feeds_file
from schemas.topics import TopicNames

log = logging.getLogger(__name__)

SCAN_EVERY_S = 0.5
_NEVER = datetime.min.replace(tzinfo=UTC)
STAGE = "producer"
# Kafka or the database away: stop starting refreshes for this long (newswatch.retry).
OUTAGE_PAUSE = RetryPolicy(initial_s=1.0, max_s=60.0)
# One feed's refresh raised unexpectedly (a bug): that feed alone waits, lengthening.
FEED_BUG_PAUSE = RetryPolicy(initial_s=5.0, max_s=3600.0, jitter=(1.0, 1.25))


@dataclass
class LoopState:
    """What the loop tracks between iterations."""

    config: FeedsFile
    running: dict[str, Future[Outcome]] = field(default_factory=dict)
    broker_failures: int = 0
    paused_until: float = 0.0
    feed_retry_at: dict[str, float] = field(default_factory=dict)
    feed_failures: dict[str, int] = field(default_factory=dict)
    unpublished: set[str] = field(default_factory=set)
    outcomes: int = 0
    leased: set[str] = field(default_factory=set)  # feeds whose lease a worker holds


def build_context(settings: Settings, store: Store, stop: StopFlag,
                  default_interval_s: float | None = None) -> Context:
    """The refresh context of one process: HTTP client, Kafka producer, SQL store."""
    topic = TopicNames.with_prefix(settings.kafka_topic_prefix).articles
    fetcher = Fetcher(settings, stop=stop)
    return Context(
        settings=settings, store=store, fetcher=fetcher,
        publisher=Publisher(settings, topic), recovery=Recovery(settings, topic),
        fulltext=FullText(fetcher, settings),
        default_interval_s=default_interval_s or settings.producer_default_interval_s,
        stop=stop,
    )


def close_context(ctx: Context) -> None:
    """Flush and close the Kafka producer, then the HTTP pools. Idempotent."""
    ctx.publisher.close()
    if ctx.fulltext is not None:
        ctx.fulltext.close()
    ctx.fetcher.close()


def reload_config(path: Path, current: FeedsFile, store: Store) -> FeedsFile:
    """The new feeds.yaml, or ``current`` when the new one is invalid (logged)."""
    try:
        fresh = load_feeds_file(path)
    except ConfigError as exc:
        log.error("feeds file invalid; keeping the last good configuration: %s", exc,
                  extra={"feeds_file": str(path)})
        return current
    store.sync_feeds(fresh.feeds)
    before = {feed.id for feed in current.enabled()}
    after = {feed.id for feed in fresh.enabled()}
    log.info("feeds file reloaded", extra={
        "feeds_file": str(path), "enabled": len(after),
        "added": sorted(after - before), "removed": sorted(before - after)})
    return fresh


def run(settings: Settings, feeds_path: Path, shell: Daemon, *, once: bool = False,
        default_interval_s: float | None = None, broker_wait_s: float = 120.0) -> int:
    """Run the producer in ``shell`` until its stop flag (or one pass with ``once``); ready
    while no outage pauses it. Returns an exit code: 0, or 1 when ``once`` could not
    publish some feeds because Kafka was unavailable.

    Raises `ConfigError` when feeds.yaml is invalid at start-up, `SchemaVersionError`
    when the database is not migrated to this code's schema (``newswatch db upgrade``).
    """
    stop = shell.stop
    config = load_feeds_file(feeds_path)
    engine = make_engine(settings.sqlalchemy_url())
    if wait_for_schema(engine, stop) is None:
        engine.dispose()
        return 0
    store = Store(engine)
    store.sync_feeds(config.feeds)
    ctx = build_context(settings, store, stop, default_interval_s)
    leases = ctx.leases = leases_for(engine, settings.producer_lease_s)
    loop = LoopState(config=config)
    shell.ready_when(lambda: time.monotonic() >= loop.paused_until)
    log.info("producer started", extra={
        "feeds_file": str(feeds_path), "feeds": len(config.enabled()), "once": once,
        "topic": ctx.publisher.topic, "compression": ctx.publisher.compression,
        "lease_owner": leases.owner})
    try:
        if once:
            return one_pass(ctx, store, loop, broker_wait_s)
        _forever(ctx, store, loop, feeds_path)
        return 0
    finally:
        _drain(loop)
        leases.close()
        close_context(ctx)
        engine.dispose()
        log.info("producer stopped", extra={"refreshes": loop.outcomes})


def _forever(ctx: Context, store: Store, loop: LoopState, feeds_path: Path) -> None:
    stop = ctx.stop
    with ThreadPoolExecutor(ctx.settings.producer_concurrency,
                            thread_name_prefix="refresh") as pool:
        next_scan = 0.0
        while not stop.stopping:
            if stop.take_reload():
                loop.config = reload_config(feeds_path, loop.config, store)
                next_scan = 0.0
            _collect(loop)
            _renew(ctx, loop)
            now = time.monotonic()
            if now >= next_scan and now >= loop.paused_until:
                try:
                    _submit_due(pool, ctx, store, loop)
                except SQLAlchemyError as error:
                    # Reading the feeds' state needs the database too: when it is away,
                    # pause like a refresh that found it away, instead of crashing the
                    # daemon (found by tests/e2e/test_faults.py restarting PostgreSQL).
                    if not is_unavailable(error):
                        raise
                    _pause(loop, error, feed_id=None)
                next_scan = now + SCAN_EVERY_S
            if loop.running:
                wait(list(loop.running.values()), timeout=SCAN_EVERY_S,
                     return_when=FIRST_COMPLETED)
            else:
                stop.wait(SCAN_EVERY_S)
        pool.shutdown(wait=True, cancel_futures=True)
        _collect(loop)


def one_pass(ctx: Context, store: Store, loop: LoopState, broker_wait_s: float = 120.0) -> int:
    """Refresh every due feed once with ``producer_concurrency`` workers; feeds Kafka
    failed are retried (after the broker backoff) until ``broker_wait_s``. Returns 0, or 1
    when some feeds could not be published."""
    deadline = time.monotonic() + broker_wait_s
    with ThreadPoolExecutor(ctx.settings.producer_concurrency,
                            thread_name_prefix="refresh") as pool:
        handed_out: set[str] = set()
        _submit_due(pool, ctx, store, loop, skip=handed_out)
        while loop.running and not ctx.stop.stopping:
            handed_out |= loop.running.keys()
            # Not longer than a scan: the leases of a pass longer than one lease period
            # are renewed as the daemon's are.
            wait(list(loop.running.values()), timeout=SCAN_EVERY_S, return_when=FIRST_COMPLETED)
            _collect(loop)
            _renew(ctx, loop)
            # Feeds held back by the per-host limit, once each.
            _submit_due(pool, ctx, store, loop, skip=handed_out)
            if not loop.running and loop.unpublished and time.monotonic() < deadline:
                ctx.stop.wait(max(0.0, min(loop.paused_until, deadline) - time.monotonic()))
                retry = [f for f in loop.config.enabled() if f.id in loop.unpublished]
                loop.unpublished.clear()
                _start(pool, ctx, loop, retry)
        pool.shutdown(wait=True, cancel_futures=True)
        _collect(loop)
    if loop.unpublished:
        log.error("Kafka or the database unavailable; these feeds were not published",
                  extra={"feeds": sorted(loop.unpublished)})
        return 1
    return 0


def _submit_due(pool: ThreadPoolExecutor, ctx: Context, store: Store, loop: LoopState,
                skip: set[str] | frozenset[str] = frozenset()) -> None:
    now = datetime.now(UTC)
    states = store.states()
    clock = time.monotonic()
    hosts = {feed.id: host_of(feed.url) for feed in loop.config.enabled()}
    busy = Counter(hosts.get(feed_id) for feed_id in loop.running)
    due = []
    for feed in loop.config.enabled():
        if (feed.id in loop.running or feed.id in skip
                or loop.feed_retry_at.get(feed.id, 0.0) > clock):
            continue
        state = states.get(feed.id)
        if state is None or state.is_due(now):
            waited_since = state.next_check_at if state is not None else None
            due.append((waited_since or _NEVER, feed))
    # The longest-waiting first: with a host at its limit, the feeds polled most often
    # would otherwise always take its slots and starve the rest of the list.
    picked = []
    for _, feed in sorted(due, key=lambda item: item[0]):
        host = hosts[feed.id]
        if host != "file://" and busy[host] >= ctx.settings.producer_per_host_concurrency:
            continue  # stays due: handed out when one of its host's refreshes ends
        picked.append(feed)
        busy[hosts[feed.id]] += 1
    _start(pool, ctx, loop, picked)


def _start(pool: ThreadPoolExecutor, ctx: Context, loop: LoopState,
           feeds: list[FeedConfig]) -> None:
    """Hand ``feeds`` to workers, those this process could lease (another producer on the
    same database may hold the rest)."""
    if ctx.leases is not None:
        claimed = set(ctx.leases.claim([feed.id for feed in feeds], datetime.now(UTC)))
        feeds = [feed for feed in feeds if feed.id in claimed]
        loop.leased |= claimed
    for feed in feeds:
        loop.running[feed.id] = pool.submit(_refresh_leased, feed, ctx, loop)


def _refresh_leased(feed: FeedConfig, ctx: Context, loop: LoopState) -> Outcome:
    """`refresh`, then give the feed's lease back: its outcome is recorded by then."""
    try:
        return refresh(feed, ctx)
    finally:
        loop.leased.discard(feed.id)
        if ctx.leases is not None:
            try:
                ctx.leases.release(feed.id)
            except SQLAlchemyError as error:  # it ends by itself after one lease period
                log.warning("could not release a feed lease: %s", short_reason(error),
                            extra={"feed": feed.id})


def _renew(ctx: Context, loop: LoopState) -> None:
    """Keep the leases of the running refreshes (rate-limited by the lease strategy)."""
    if ctx.leases is None:
        return
    try:
        ctx.leases.renew(set(loop.leased))
    except SQLAlchemyError as error:
        if not is_unavailable(error):
            raise
        _pause(loop, error, feed_id=None)


def _collect(loop: LoopState) -> None:
    """Take the finished refreshes' results; pause on a broker outage."""
    for feed_id, future in list(loop.running.items()):
        if not future.done():
            continue
        del loop.running[feed_id]
        if future.cancelled():
            continue
        loop.outcomes += 1
        error = future.exception()
        if error is None:
            loop.feed_failures.pop(feed_id, None)
            loop.feed_retry_at.pop(feed_id, None)
            if loop.broker_failures and future.result().published:
                log.warning("Kafka available again; resuming")
                loop.broker_failures = 0
                metrics.DEPENDENCY_UP.labels(STAGE).set(1)
        elif isinstance(error, ServiceUnavailableError) or is_unavailable(error):
            # Kafka or the database is away: nothing was recorded, the feed stays due.
            loop.unpublished.add(feed_id)
            _pause(loop, error, feed_id)
        else:
            failures = loop.feed_failures.get(feed_id, 0) + 1
            loop.feed_failures[feed_id] = failures
            delay = FEED_BUG_PAUSE.delay(failures - 1)
            loop.feed_retry_at[feed_id] = time.monotonic() + delay
            log.error("refresh failed unexpectedly; retrying this feed in %.0fs", delay,
                      exc_info=error, extra={"feed": feed_id, "attempt": failures})


def _pause(loop: LoopState, error: BaseException, feed_id: str | None) -> None:
    """Stop starting refreshes for a backoff delay: Kafka or the database is away."""
    if time.monotonic() < loop.paused_until:
        return
    loop.broker_failures += 1
    delay = OUTAGE_PAUSE.delay(loop.broker_failures - 1)
    loop.paused_until = time.monotonic() + delay
    metrics.DEPENDENCY_UP.labels(STAGE).set(0)
    log.error("%s unavailable; pausing %.1fs before trying again: %s",
              "Kafka" if isinstance(error, BrokerUnavailableError) else "database", delay,
              short_reason(error), extra={"feed": feed_id, "attempt": loop.broker_failures})


def _drain(loop: LoopState) -> None:
    for future in loop.running.values():
        future.cancel()
    loop.running.clear()
