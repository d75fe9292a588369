"""Feed leases (producers/lease.py) on a real SQLite file and a real PostgreSQL schema.

Two lease objects with different owners stand for two producer processes: a feed is never
held by both, a lease ends after its period unless renewed, a released or dead owner's
feeds are free at once, and a feed another producer has just rescheduled is not claimed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, update

from newswatch.errors import LeaseLapsedError
from producers.daemon import SCAN_EVERY_S
from producers.lease import (
    FENCE_MARGIN,
    FeedLeases,
    RowLeases,
    WriterLease,
    dead_here,
    leases_for,
    owner_id,
)
from producers.state import Store
from schemas import tables
from schemas.feeds_file import FeedConfig
from tests.factories import make_article
from tests.producer_fixtures import (
    articles_topic,
    news_items,
    producer_settings,
    read_topic,
    rss,
    unique_prefix,
)
from tests.support.feed_server import FeedServer, Reply
from tests.support.waits import wait_for
from tests.test_producer_daemon import Producer, _env, _write_feeds

pytestmark = pytest.mark.integration
FEEDS = ["f1", "f2", "f3"]


@pytest.fixture
def feeds(engine: Engine) -> Engine:
    Store(engine).sync_feeds([FeedConfig(id=f, url=f"https://example.org/{f}") for f in FEEDS])
    return engine


def _now() -> datetime:
    return datetime.now(UTC)


def _exited_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_the_dialect_picks_its_strategy(feeds: Engine) -> None:
    leases = leases_for(feeds, 15.0)
    expected = RowLeases if feeds.dialect.name == "postgresql" else WriterLease
    assert isinstance(leases, expected)


def test_a_feed_is_never_held_by_two_producers(feeds: Engine) -> None:
    first, second = leases_for(feeds, 30.0), leases_for(feeds, 30.0)
    assert first.claim(["f1", "f2"], _now()) == ["f1", "f2"]
    got = second.claim(FEEDS, _now())
    if feeds.dialect.name == "postgresql":
        assert got == ["f3"], "per-feed leases: the free feed only"
    else:
        assert got == [], "SQLite: one writer polls, the other stands by"
    assert first.holds("f1")
    assert not second.holds("f1")
    first.close()  # a producer that stops gives its feeds up at once
    if isinstance(second, WriterLease):
        time.sleep(1.0)  # a standby asks at most once a second
    assert second.claim(FEEDS, _now()) == FEEDS


def test_a_lease_ends_unless_renewed(feeds: Engine) -> None:
    frozen, other = leases_for(feeds, 1.0), leases_for(feeds, 1.0)
    assert frozen.claim(FEEDS, _now()) == FEEDS
    assert other.claim(FEEDS, _now()) == []
    time.sleep(1.3)  # frozen stops renewing: its lease ends
    if isinstance(other, WriterLease):
        time.sleep(1.0)  # a standby asks at most once a second
    assert other.claim(FEEDS, _now()) == FEEDS
    assert not frozen.holds("f1"), "a producer whose lease ended must not publish"


def test_renewing_keeps_the_lease(feeds: Engine) -> None:
    holder, other = leases_for(feeds, 1.5), leases_for(feeds, 1.5)
    assert holder.claim(["f1"], _now()) == ["f1"]
    for _ in range(6):  # 3 s: twice the lease period
        time.sleep(0.5)
        holder.renew({"f1"})
        assert other.claim(["f1"], _now()) == []
    assert holder.holds("f1")


def test_the_leases_of_a_producer_that_exited_here_are_free_at_once(feeds: Engine) -> None:
    dead_owner = owner_id().split("/")
    dead_owner[2] = str(_exited_pid())
    dead = "/".join(dead_owner)
    assert dead_here(dead)
    assert not dead_here(owner_id()), "this process is alive"
    assert not dead_here(f"elsewhere.example/1/{_exited_pid()}/x"), "another host"
    victim = leases_for(feeds, 600.0, owner=dead)
    assert victim.claim(FEEDS, _now()) == FEEDS
    assert leases_for(feeds, 600.0).claim(FEEDS, _now()) == FEEDS


def test_a_feed_rescheduled_by_another_producer_is_not_claimed_again(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer: no second producer reads the feeds (the "
                    "writer-lease tests cover it)")
    Store(engine).sync_feeds([FeedConfig(id="f1", url="https://example.org/f1")])
    seen_due_at = _now()
    with engine.begin() as conn:  # another producer refreshed it after we read it as due
        conn.execute(update(tables.feeds).values(next_check_at=_now() + timedelta(minutes=5)))
    assert leases_for(engine, 30.0).claim(["f1"], seen_due_at) == []


def test_release_frees_the_feed_for_the_others(feeds: Engine) -> None:
    if feeds.dialect.name != "postgresql":
        pytest.skip("SQLite's writer lease covers every feed until close (tested above)")
    first, second = leases_for(feeds, 600.0), leases_for(feeds, 600.0)
    assert first.claim(["f1"], _now()) == ["f1"]
    first.release("f1")
    assert second.claim(["f1"], _now()) == ["f1"]


def _end_leases(engine: Engine) -> None:
    """Every lease ends now, as after a freeze longer than the lease period."""
    past = _now() - timedelta(minutes=1)
    with engine.begin() as conn:
        conn.execute(update(tables.feeds).values(lease_expires_at=past))
        conn.execute(update(tables.producer_leases).values(expires_at=past))


def _take_over(engine: Engine, feed_ids: list[str]) -> FeedLeases:
    """Another producer, holding ``feed_ids`` (on SQLite, the writer lease)."""
    other = leases_for(engine, 600.0)
    expected = FEEDS if isinstance(other, WriterLease) else feed_ids
    assert other.claim(feed_ids if isinstance(other, RowLeases) else FEEDS, _now()) == expected
    return other


def test_the_local_deadline_ends_before_anyone_else_may_take_the_lease(feeds: Engine) -> None:
    lease_s = 4.0
    holder, other = leases_for(feeds, lease_s), leases_for(feeds, lease_s)
    assert holder.claim(["f1"], _now()) == ["f1"]
    claimed = time.monotonic()  # after: the deadline was counted from before the claim
    holder.fence("f1", "poll")  # just claimed
    time.sleep(holder.renew_every_s + 0.05)
    holder.renew({"f1"})
    renewed = time.monotonic()
    time.sleep(max(0.0, claimed + lease_s * (1 - FENCE_MARGIN) + 0.05 - time.monotonic()))
    holder.fence("f1", "poll")  # past the claim's deadline: the renewal moved it on
    time.sleep(max(0.0, renewed + lease_s * (1 - FENCE_MARGIN) + 0.05 - time.monotonic()))
    with pytest.raises(LeaseLapsedError) as caught:
        holder.fence("f1", "poll")
    assert (caught.value.feed_id, caught.value.step) == ("f1", "poll")
    # The margin: the lease itself has not ended, so nobody else polls the feed yet.
    assert other.claim(["f1"], _now()) == []


def test_a_lease_lost_on_renewal_fences_at_once(feeds: Engine) -> None:
    holder = leases_for(feeds, 3.0)
    assert holder.claim(["f1", "f2"], _now()) == ["f1", "f2"]
    _end_leases(feeds)  # as if frozen past the lease...
    _take_over(feeds, ["f1"])  # ...while another producer took f1
    if isinstance(holder, WriterLease):
        time.sleep(holder.renew_every_s + 0.05)  # it renews at most this often
    holder.renew({"f1", "f2"})
    with pytest.raises(LeaseLapsedError):
        holder.fence("f1", "poll")  # its local deadline was still ahead
    if isinstance(holder, RowLeases):
        holder.fence("f2", "poll")  # renewed: nobody took it meanwhile
        with pytest.raises(LeaseLapsedError):
            holder.fence("f3", "poll")  # never claimed


def test_a_lease_held_again_after_another_producer_does_not_cover_stale_claims(
        feeds: Engine) -> None:
    store, now = Store(feeds), _now()
    stale = leases_for(feeds, 3.0)
    assert stale.claim(["f1"], now) == ["f1"]
    _end_leases(feeds)  # frozen past its lease...
    _take_over(feeds, ["f1"]).close()  # ...while another polled f1 and stopped
    if isinstance(stale, WriterLease):
        time.sleep(stale.renew_every_s + 0.05)  # it renews at most this often
    stale.renew({"f1"})  # resumed: on SQLite it takes the (free) writer lease back
    with pytest.raises(LeaseLapsedError):
        stale.fence("f1", "poll")  # the worker's claim is from before
    with pytest.raises(LeaseLapsedError):
        store.record_failure("f1", "HTTP 500", next_check_at=now, now=now,
                             fence=stale.write_fence("f1"))
    assert stale.claim(["f1"], _now()) == ["f1"]  # claimed afresh, it is covered
    stale.fence("f1", "poll")
    assert store.record_failure("f1", "HTTP 500", next_check_at=now, now=now,
                                fence=stale.write_fence("f1")) == 1


def test_a_stale_holders_late_writes_are_rolled_back(feeds: Engine) -> None:
    store = Store(feeds)
    stale = leases_for(feeds, 600.0)
    assert stale.claim(["f1"], _now()) == ["f1"]
    _end_leases(feeds)
    holder = _take_over(feeds, ["f1"])
    now = _now()
    store.mark_publishing("f1", now, fence=holder.write_fence("f1"))  # the new holder's
    article = make_article(feed_id="f1")
    late_writes = [
        ("record", lambda: store.record_success(
            "f1", published=[article], unchanged_ids=[], etag='"stale"', last_modified=None,
            next_check_at=now, now=now, fence=stale.write_fence("f1"))),
        ("record", lambda: store.record_failure(
            "f1", "HTTP 500", next_check_at=now, now=now, fence=stale.write_fence("f1"))),
        ("record", lambda: store.record_recovered(
            "f1", [article], now, fence=stale.write_fence("f1"))),
        ("publish", lambda: store.mark_publishing("f1", now, fence=stale.write_fence("f1"))),
    ]
    for step, write in late_writes:
        with pytest.raises(LeaseLapsedError) as caught:
            write()
        assert caught.value.step == step
    state = store.load("f1")
    assert state.publishing_since is not None, "the new holder's publishing mark was cleared"
    assert (state.etag, state.error_count, state.items_seen) == (None, 0, 0)
    assert store.seen([article.id]) == {}, "the seen row of a rolled-back write"
    store.record_success("f1", published=[article], unchanged_ids=[], etag='"new"',
                         last_modified=None, next_check_at=now, now=now,
                         fence=holder.write_fence("f1"))
    state = store.load("f1")
    assert (state.etag, state.publishing_since, state.items_seen) == ('"new"', None, 1)


def test_a_once_pass_longer_than_its_lease_publishes_every_feed(
        kafka_bootstrap: str, engine: Engine, tmp_path: Path, feed_server: FeedServer) -> None:
    # One worker, six feeds answering in 1 s each: the pass outlasts the 3 s lease of the
    # feeds waiting for the worker, which must be renewed along the way or the later feeds
    # are left unpublished.
    feeds = {}
    for n in range(6):
        feeds[f"s{n}"] = feed_server.add(f"/s{n}", Reply(200, rss(news_items(f"s{n}", 2)),
                                                         delay_s=1.0))
    feeds_file = tmp_path / "feeds.yaml"
    _write_feeds(feeds_file, feeds)
    db_url = engine.url.render_as_string(hide_password=False)
    prefix = unique_prefix()
    topic = articles_topic(producer_settings(kafka_bootstrap, db_url, prefix))
    env = _env({"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "NEWSWATCH_DATABASE_URL": db_url,
                "NEWSWATCH_KAFKA_TOPIC_PREFIX": prefix, "NEWSWATCH_PRODUCER_LEASE_S": "3",
                "NEWSWATCH_PRODUCER_CONCURRENCY": "1"})
    producer = Producer(env, feeds_file, "--once")
    assert producer.finish(timeout_s=120) == 0
    assert not producer.saw("feed lease lost"), "the pass lost its lease"
    assert len(read_topic(kafka_bootstrap, topic)) == 12


def test_a_producer_frozen_past_its_lease_does_not_poll_the_feeds_it_lost(
        kafka_bootstrap: str, engine: Engine, tmp_path: Path, feed_server: FeedServer) -> None:
    # The CI flake of test_two_producers, made deterministic: one worker, two feeds. "slow"
    # answers after 2 s; "queued", claimed in the same scan, waits for the worker. The
    # producer is frozen (SIGSTOP) while the server holds "slow", for longer than its 3 s
    # lease, and another producer (a lease object here) takes "queued" meanwhile. Resumed,
    # the worker finishes "slow" and comes to "queued": it must not poll it, since the
    # feed is the other producer's now; once the other gives it up, it is polled again.
    lease_s = 3.0
    feeds = {"slow": feed_server.add("/slow", Reply(200, rss(news_items("slow", 2)),
                                                    delay_s=2.0)),
             "queued": feed_server.add("/queued", Reply(200, rss(news_items("queued", 2))))}
    feeds_file = tmp_path / "feeds.yaml"
    _write_feeds(feeds_file, feeds)
    db_url = engine.url.render_as_string(hide_password=False)
    env = _env({"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "NEWSWATCH_DATABASE_URL": db_url,
                "NEWSWATCH_KAFKA_TOPIC_PREFIX": unique_prefix(),
                "NEWSWATCH_PRODUCER_LEASE_S": str(lease_s),
                "NEWSWATCH_PRODUCER_CONCURRENCY": "1",
                "NEWSWATCH_PRODUCER_PER_HOST_CONCURRENCY": "2"})
    producer = Producer(env, feeds_file)
    other = leases_for(engine, 600.0)
    try:
        wait_for(lambda: bool(feed_server.hits("/slow")), timeout_s=60,
                 what="the producer polling the slow feed", interval_s=0.02)
        os.kill(producer.process.pid, signal.SIGSTOP)
        try:
            time.sleep(lease_s + 1.5)  # the freeze: its leases end meanwhile
            # The other producer takes "queued" (on SQLite, the writer lease).
            assert other.claim(["queued"], _now()) == ["queued"], "the lease did not end"
        finally:
            os.kill(producer.process.pid, signal.SIGCONT)
        wait_for(lambda: bool(feed_server.hits("/queued"))
                 or producer.saw("feed lease lost before the poll"), timeout_s=30,
                 what="the resumed worker coming to the queued feed",
                 detail=lambda: f"last lines: {producer.lines[-5:]}")
        time.sleep(2 * SCAN_EVERY_S + 0.5)  # later scans must not poll it either
        assert feed_server.hits("/queued") == [], (
            "the resumed producer polled a feed whose lease another producer holds")
        other.close()  # the other one stops: the feed is polled again, not forgotten
        wait_for(lambda: bool(feed_server.hits("/queued")), timeout_s=30,
                 what="the queued feed polled once its lease is free")
    except BaseException:
        print("--- producer, last lines:", *producer.lines[-15:], sep="\n")
        raise
    finally:
        if producer.process.poll() is None:
            os.kill(producer.process.pid, signal.SIGCONT)
            producer.process.send_signal(signal.SIGTERM)
            producer.finish()
        other.close()
