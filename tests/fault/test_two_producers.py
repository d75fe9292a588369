"""High availability of issue 16: two producer processes on one database.

Two `newswatch producer` processes poll ten feeds of a real HTTP server on 127.0.0.1 that
keep getting new items, into a real broker, on SQLite and on PostgreSQL. On PostgreSQL they
share the feeds (per-feed leases); on SQLite one polls and the other stands by. Then:

1. the one holding feeds is frozen (SIGSTOP) for longer than a lease: the other polls its
   feeds once their leases end (at most ``producer_lease_s``, 15 s), and the frozen one,
   resumed, does not publish what it had in hand;
2. the other is killed with SIGKILL while it holds feeds: the resumed one takes them over
   (at once: the dead owner's leases are freed).

Throughout: no feed is polled by two processes at once, every item is on the topic exactly
once (nothing duplicated, nothing skipped). The takeover times are printed.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from itertools import pairwise
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from newswatch.settings import Settings
from schemas import tables
from schemas.ids import article_id, canonical_url
from tests.fault.chaos import report
from tests.producer_fixtures import (
    articles_topic,
    news_items,
    read_topic,
    rss,
    unique_prefix,
)
from tests.support.feed_server import FeedServer, Reply
from tests.support.waits import wait_for
from tests.test_producer_daemon import Producer, _env, _write_feeds

pytestmark = [pytest.mark.integration, pytest.mark.fault]

FEEDS = 10
ITEM_EVERY_S = 2.0  # each feed gets a new item this often until the test stops it
REPLY_DELAY_S = 0.3  # a poll lasts this long: two at once on one feed would overlap
LEASE_S = 15.0  # the default producer_lease_s


class GrowingFeeds:
    """Ten feeds on a real HTTP server; each lists its items so far. Records every poll."""

    def __init__(self, server: FeedServer) -> None:
        self.server = server
        self.started = time.monotonic()
        self.stopped_at: float | None = None
        self.killed_at: float | None = None  # set by the test when it kills a producer
        self.polls: list[tuple[str, float]] = []
        self._lock = threading.Lock()
        self.urls = {f"g{n}": server.add(f"/g{n}", self._route(f"g{n}")) for n in range(FEEDS)}

    def _count(self) -> int:
        end = self.stopped_at or time.monotonic()
        return 1 + int((end - self.started) / ITEM_EVERY_S)

    def _route(self, feed: str):  # type: ignore[no-untyped-def]
        def route(_headers: dict[str, str]) -> Reply:
            with self._lock:
                self.polls.append((feed, time.monotonic()))
            return Reply(200, rss(news_items(feed, self._count()), title=feed),
                         delay_s=REPLY_DELAY_S)
        return route

    def stop_growing(self) -> None:
        self.stopped_at = time.monotonic()

    def expected(self) -> set[str]:
        return {article_id(canonical_url(item["link"]))
                for feed in self.urls for item in news_items(feed, self._count())}

    def polled_after(self, feed: str, since: float) -> float | None:
        with self._lock:
            return next((at for name, at in self.polls if name == feed and at > since), None)

    def closest_polls(self) -> float:
        """The shortest time between two polls of one feed (all feeds).

        A request still being answered when its producer was killed is not counted
        against the poll after it: a dead process never reads that reply, so the feed is
        refreshed once. A killed producer's leases are free at once (docs/reliability.md,
        known limits), so the survivor may poll while the server still answers the dead
        one; every other pair of polls must be a whole reply apart.
        """
        with self._lock:
            by_feed: dict[str, list[float]] = {}
            for name, at in self.polls:
                by_feed.setdefault(name, []).append(at)
        gaps = [b - a for times in by_feed.values() for a, b in pairwise(times)
                if not self._cut_by_the_kill(a, b)]
        return min(gaps)

    def _cut_by_the_kill(self, first: float, second: float) -> bool:
        killed = self.killed_at
        return killed is not None and killed - REPLY_DELAY_S <= first < killed <= second


def _holders(engine: Engine) -> dict[str, int]:
    """Feed (or "*" for SQLite's writer lease) -> pid of the producer holding it now."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            owner = conn.execute(select(tables.producer_leases.c.owner)).scalar()
            return {"*": int(owner.split("/")[2])} if owner else {}
        rows = conn.execute(select(tables.feeds.c.id, tables.feeds.c.lease_owner)
                            .where(tables.feeds.c.lease_owner.is_not(None))).all()
    return {row.id: int(row.lease_owner.split("/")[2]) for row in rows}


def _victim_feeds(engine: Engine, pid: int, feeds: list[str]) -> list[str]:
    holders = _holders(engine)
    if "*" in holders:
        return list(feeds) if holders["*"] == pid else []
    return [feed for feed, holder in holders.items() if holder == pid]


def _refreshed(producer: Producer) -> set[str]:
    return {str(line["feed"]) for line in list(producer.lines)
            if line.get("message") == "feed refreshed" and "feed" in line}


def _takeover(feeds: GrowingFeeds, victims: list[str], since: float) -> float:
    """Wait until every victim feed was polled after ``since``; the longest wait."""
    wait_for(lambda: all(feeds.polled_after(f, since) for f in victims),
             timeout_s=2 * LEASE_S, what=f"the other producer polling {victims}")
    return max((feeds.polled_after(f, since) or since) - since for f in victims)


def test_two_producers_share_feeds_and_take_over_a_frozen_then_a_killed_one(
        kafka_bootstrap: str, engine: Engine, tmp_path: Path,
        feed_server: FeedServer) -> None:
    feeds = GrowingFeeds(feed_server)
    feeds_file = tmp_path / "feeds.yaml"
    _write_feeds(feeds_file, feeds.urls)
    db_url = engine.url.render_as_string(hide_password=False)
    prefix = unique_prefix()
    topic = articles_topic(Settings(kafka_bootstrap_servers=kafka_bootstrap,
                                    kafka_topic_prefix=prefix, database_url=db_url))
    env = _env({"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "NEWSWATCH_DATABASE_URL": db_url,
                "NEWSWATCH_KAFKA_TOPIC_PREFIX": prefix,
                "NEWSWATCH_PRODUCER_PER_HOST_CONCURRENCY": "4",
                "NEWSWATCH_PRODUCER_LEASE_S": str(LEASE_S),
                "NEWSWATCH_STATE_DIR": str(tmp_path / "state")})
    first = Producer(env, feeds_file, "--default-interval", "1")
    second = Producer(env, feeds_file, "--default-interval", "1")
    shared = engine.dialect.name == "postgresql"
    names = list(feeds.urls)
    try:
        # Both running; on PostgreSQL both poll, on SQLite one does.
        wait_for(lambda: len(_refreshed(first) | _refreshed(second)) == FEEDS, timeout_s=60,
                 what="every feed refreshed")
        time.sleep(4)
        if shared:
            assert _refreshed(first), "the second producer did all the work"
            assert _refreshed(second), "the first producer did all the work"
        else:
            assert not (_refreshed(first) and _refreshed(second)), "two writers on SQLite"

        # 1. Freeze the one holding feeds for longer than a lease.
        frozen, other = (first, second) if _refreshed(first) else (second, first)
        wait_for(lambda: bool(_victim_feeds(engine, frozen.process.pid, names)), timeout_s=30,
                 what="the producer to freeze holding a feed")
        os.kill(frozen.process.pid, signal.SIGSTOP)
        frozen_at = time.monotonic()
        victims = _victim_feeds(engine, frozen.process.pid, names)
        after_freeze = _takeover(feeds, victims, frozen_at)
        os.kill(frozen.process.pid, signal.SIGCONT)
        time.sleep(4)

        # 2. Kill the other one while it holds feeds: the resumed one takes them over.
        wait_for(lambda: bool(_victim_feeds(engine, other.process.pid, names)), timeout_s=30,
                 what="the producer to kill holding a feed")
        victims = _victim_feeds(engine, other.process.pid, names)
        os.kill(other.process.pid, signal.SIGKILL)
        killed_at = feeds.killed_at = time.monotonic()
        # Reaped at once, as a supervisor does: a zombie still answers to its pid.
        assert other.finish() == -signal.SIGKILL
        victims = sorted(set(victims) | set(_victim_feeds(engine, other.process.pid, names)))
        after_kill = _takeover(feeds, victims, killed_at)

        feeds.stop_growing()
        expected = feeds.expected()
        wait_for(lambda: {key for key, _ in read_topic(kafka_bootstrap, topic)} >= expected,
                 timeout_s=60, what="every item on the topic")
        time.sleep(2)  # a duplicate would come now, with the next polls
        frozen.process.send_signal(signal.SIGTERM)
        assert frozen.finish(timeout_s=60) == 0
    except BaseException:
        for name, producer in (("first", first), ("second", second)):
            print(f"--- {name} producer (pid {producer.process.pid}), last lines:")
            for line in list(producer.lines)[-15:]:
                print(line)
        raise
    finally:
        for producer in (first, second):
            if producer.process.poll() is None:
                os.kill(producer.process.pid, signal.SIGCONT)
                producer.process.kill()
                producer.finish()

    keys = Counter(key for key, _ in read_topic(kafka_bootstrap, topic))
    duplicates = {key: n for key, n in keys.items() if n > 1}
    print(f"two producers on {engine.dialect.name}: {len(expected)} items, "
          f"{sum(keys.values())} messages, {len(duplicates)} duplicated, "
          f"{len(expected - set(keys))} lost; frozen producer's feeds polled after "
          f"{after_freeze:.1f}s, killed producer's after {after_kill:.1f}s "
          f"(target <= 30 s, lease {LEASE_S:.0f} s)")
    assert not duplicates, f"published twice: {sorted(duplicates)[:5]}"
    assert set(keys) == expected, f"lost: {len(expected - set(keys))}"
    assert feeds.closest_polls() >= REPLY_DELAY_S, "one feed polled by two producers at once"
    report(f"Two producers on one database ({engine.dialect.name})",
           faults="SIGSTOP of one past its lease, then kill -9 of the other",
           volume=f"{len(expected)} items from {FEEDS} feeds", lost=len(expected - set(keys)),
           duplicated=len(duplicates),
           recovery=f"frozen one's feeds polled after {after_freeze:.1f} s, killed one's "
                    f"after {after_kill:.1f} s (target 30 s)")
