"""Retention on SQLite and PostgreSQL: old articles go with their hits and entity links, by
stored time (or publication time); old alerts go with their deliveries; seen rows stay
while a feed may still list their item."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine, Table, func, select

from consumers.alert.group import ArticleRef
from consumers.alert.ledger import digest_sent, record_groups, top
from consumers.store import store_batch
from consumers.store.prune import Retention, preview, prune
from newswatch.daemon import StopFlag
from schemas import tables
from tests.factories import BASE_TIME, realistic_batch

NOW = BASE_TIME + timedelta(days=100)


def count(engine: Engine, table: Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def remaining_ids(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(tables.articles.c.id)).scalars())


@pytest.fixture
def stored(engine: Engine) -> tuple[list[str], list[str]]:
    """Ten articles published and stored 100 days before NOW, five 10 days before."""
    old = realistic_batch(10, seed=20, vocabulary=30, start=BASE_TIME)
    new = realistic_batch(5, seed=21, vocabulary=30, start=NOW - timedelta(days=10))
    store_batch(engine, old, now=BASE_TIME + timedelta(minutes=5))
    store_batch(engine, new, now=NOW - timedelta(days=10))
    return [i.article.id for i in old], [i.article.id for i in new]


def test_prune_deletes_old_articles_and_what_hangs_off_them(
    engine: Engine, stored: tuple[list[str], list[str]]
) -> None:
    old, new = stored
    links_before = count(engine, tables.article_entities)
    hits_before = count(engine, tables.topic_hits)
    entities_before = count(engine, tables.entities)

    result = prune(engine, timedelta(days=90), now=NOW)

    assert result.articles == 10
    assert remaining_ids(engine) == set(new)
    assert count(engine, tables.article_entities) == links_before - result.entity_links
    assert count(engine, tables.topic_hits) == hits_before - result.topic_hits
    assert result.entity_links == 100
    with engine.connect() as conn:
        orphans = conn.execute(
            select(func.count()).select_from(tables.article_entities)
            .where(tables.article_entities.c.article_id.in_(old))).scalar_one()
    assert orphans == 0
    # Entities are a shared dictionary: they stay.
    assert count(engine, tables.entities) == entities_before


def test_prune_works_in_bounded_batches_and_again_finds_nothing(
    engine: Engine, stored: tuple[list[str], list[str]]
) -> None:
    result = prune(engine, timedelta(days=90), now=NOW, batch_size=3)

    assert result.articles == 10
    assert result.batches == 4  # 3 + 3 + 3 + 1
    assert prune(engine, timedelta(days=90), now=NOW, batch_size=3).articles == 0


def test_prune_stops_when_asked(engine: Engine, stored: tuple[list[str], list[str]]) -> None:
    stop = StopFlag()
    stop.stop()
    assert prune(engine, timedelta(days=90), now=NOW, stop=stop).articles == 0
    assert len(remaining_ids(engine)) == 15


def test_a_pruned_article_seen_again_is_stored_again(engine: Engine) -> None:
    # Replaying an old topic after a prune must not trip over leftovers.
    batch = realistic_batch(3, seed=22, vocabulary=10, start=BASE_TIME)
    store_batch(engine, batch, now=BASE_TIME)
    prune(engine, timedelta(days=90), now=NOW)

    assert store_batch(engine, batch).inserted == 3
    assert count(engine, tables.article_entities) == 30


# --- issue 18: by stored time, dry run, held articles, alerts, seen rows ---------------


def test_an_archive_stored_today_is_kept_unless_pruning_by_publication(
    engine: Engine
) -> None:
    """Issue 18: a backfill of old articles was deleted minutes after it was stored."""
    archive = realistic_batch(6, seed=23, vocabulary=10, start=NOW - timedelta(days=3000))
    store_batch(engine, archive, now=NOW - timedelta(minutes=4))

    assert prune(engine, timedelta(days=1), now=NOW).articles == 0
    assert len(remaining_ids(engine)) == 6
    assert preview(engine, Retention.of(timedelta(days=1), by="published", now=NOW)
                   ).articles == 6
    assert prune(engine, timedelta(days=1), by="published", now=NOW).articles == 6


def test_the_dry_run_counts_exactly_what_prune_then_deletes(
    engine: Engine, stored: tuple[list[str], list[str]]
) -> None:
    before = count(engine, tables.articles)
    planned = preview(engine, Retention.of(timedelta(days=90), now=NOW))
    assert count(engine, tables.articles) == before  # nothing deleted
    assert planned.articles_total == 15
    assert planned.first_published == BASE_TIME
    done = prune(engine, timedelta(days=90), now=NOW)
    assert (planned.articles, planned.topic_hits, planned.entity_links) == (
        done.articles, done.topic_hits, done.entity_links) == (10, planned.topic_hits, 100)


def _alert(engine: Engine, *, created: datetime, status: str) -> int:
    with engine.begin() as conn:
        alert_id = int(conn.execute(tables.alerts.insert().values(
            dedup_key=f"r:{created.isoformat()}:{status}", rule="r", group_key="rule",
            kind="alert", status=status, reason="test", payload={}, created_at=created,
        )).inserted_primary_key[0])  # type: ignore[index]
        conn.execute(tables.alert_sends.insert().values(
            alert_id=alert_id, channel="out", status=status, attempts=1, updated_at=created))
        conn.execute(tables.deliveries.insert().values(
            alert_id=alert_id, channel="out", attempt=1, attempted_at=created,
            outcome="sent" if status == "sent" else "failed", status="http 200",
            latency_ms=1.0))
    return alert_id


def test_an_article_a_throttle_still_holds_is_kept_until_it_is_sent(
    engine: Engine, stored: tuple[list[str], list[str]]
) -> None:
    old, _ = stored
    with engine.begin() as conn:
        sent = record_groups(conn, [("r", [_taken(old[1])])], NOW)  # went out: the mark passed it
        conn.execute(tables.alert_groups.insert().values(
            rule="r", group_key="rule", labels={"rule": "r"}, sequence=1, last_alert_at=NOW,
            release_at=NOW + timedelta(hours=1), released_through=sent))
        record_groups(conn, [("r", [_taken(old[0])])], NOW)  # after the mark: the throttle holds it
    assert preview(engine, Retention.of(timedelta(days=90), now=NOW)).kept_held == 1
    result = prune(engine, timedelta(days=90), now=NOW)
    assert result.articles == 9
    assert result.kept_held == 1
    assert old[0] in remaining_ids(engine)
    assert old[1] not in remaining_ids(engine)
    with engine.connect() as conn:  # its ledger row went with it; the held one stays
        assert set(conn.execute(select(tables.alert_ledger.c.article_id)).scalars()) == {
            old[0]}
    with engine.begin() as conn:  # the group sends what it held
        conn.execute(tables.alert_groups.update().values(release_at=None,
                                                         released_through=top(conn)))
    assert prune(engine, timedelta(days=90), now=NOW).articles == 1
    assert old[0] not in remaining_ids(engine)


def test_an_article_waiting_for_a_digest_is_kept_until_the_digest_goes(
    engine: Engine, stored: tuple[list[str], list[str]]
) -> None:
    old, _ = stored
    with engine.begin() as conn:
        done = record_groups(conn, [("d", [_taken(old[0])])], NOW)  # in the last digest
        waiting = record_groups(conn, [("d", [_taken(old[1])])], NOW)  # released, digest not sent
        conn.execute(tables.alert_groups.insert(), [
            {"rule": "d", "group_key": "rule", "labels": {"rule": "d"}, "sequence": 2,
             "last_alert_at": NOW, "release_at": None, "released_through": waiting,
             "digested_through": done},
            {"rule": "d", "group_key": "*", "labels": {"rule": "d"}, "sequence": 1,
             "last_alert_at": NOW, "release_at": NOW + timedelta(days=1),
             "released_through": 0, "digested_through": 0}])
    assert prune(engine, timedelta(days=90), now=NOW).kept_held == 1
    assert old[0] not in remaining_ids(engine)
    assert old[1] in remaining_ids(engine)
    with engine.begin() as conn:
        digest_sent(conn, "d")
        conn.execute(tables.alert_groups.update().where(tables.alert_groups.c.group_key == "*")
                     .values(release_at=None))
    assert prune(engine, timedelta(days=90), now=NOW).articles == 1
    assert old[1] not in remaining_ids(engine)


def _taken(article: str) -> ArticleRef:
    return ArticleRef(article_id=article, published=BASE_TIME, group_key="rule",
                      labels={"rule": "r"})


def test_alerts_are_kept_longer_and_go_with_their_sends_and_deliveries(
    engine: Engine, stored: tuple[list[str], list[str]]
) -> None:
    ancient = _alert(engine, created=NOW - timedelta(days=200), status="sent")
    failed = _alert(engine, created=NOW - timedelta(days=120), status="failed")
    recent = _alert(engine, created=NOW - timedelta(days=60), status="sent")
    pending = _alert(engine, created=NOW - timedelta(days=300), status="pending")

    # Articles go after 30 days; alerts by default after 90 (kept longer).
    planned = preview(engine, Retention.of(timedelta(days=30), now=NOW))
    result = prune(engine, timedelta(days=30), now=NOW)
    assert (planned.alerts, planned.deliveries) == (result.alerts, result.deliveries) == (2, 2)
    with engine.connect() as conn:
        left = set(conn.execute(select(tables.alerts.c.id)).scalars())
        sends = set(conn.execute(select(tables.alert_sends.c.alert_id)).scalars())
        logged = set(conn.execute(select(tables.deliveries.c.alert_id)).scalars())
    assert left == sends == logged == {recent, pending}  # an unsent alert stays
    assert not {ancient, failed} & left
    assert prune(engine, timedelta(days=30), alerts_older_than=timedelta(days=45),
                 now=NOW).alerts == 1
    with pytest.raises(ValueError, match="at least as long as articles"):
        prune(engine, timedelta(days=30), alerts_older_than=timedelta(days=7), now=NOW)


def _seen(engine: Engine, article: str, feed: str, last_seen: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(tables.seen_items.insert().values(
            article_id=article, content_hash="h", revision=0, feed_id=feed,
            first_seen_at=last_seen, last_seen_at=last_seen))


def _feed(engine: Engine, feed: str, changed: datetime | None,
          disabled: str | None = None) -> None:
    with engine.begin() as conn:
        conn.execute(tables.feeds.insert().values(
            id=feed, url=f"https://{feed}.example.org/rss", last_changed_at=changed,
            last_success_at=NOW, disabled_reason=disabled))


def seen_ids(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(tables.seen_items.c.article_id)).scalars())


def test_seen_rows_stay_while_a_feed_may_still_list_their_item(engine: Engine) -> None:
    """Nothing re-ingested: a pruned article's item that a feed still lists (it answers
    304, or its last body listed it) keeps its seen row; nothing lost: a kept article
    keeps its row (so a revision is told from a new article)."""
    long_ago = NOW - timedelta(days=100)
    _feed(engine, "moving", changed=NOW - timedelta(hours=1))     # sent a body an hour ago
    _feed(engine, "static", changed=long_ago)                     # 304 for 100 days
    _feed(engine, "legacy", changed=None)                         # not polled since upgrade
    _feed(engine, "gone", changed=long_ago - timedelta(days=9), disabled="410 Gone")
    kept = realistic_batch(1, seed=24, vocabulary=20, start=NOW - timedelta(days=1))
    store_batch(engine, kept, now=NOW - timedelta(days=1))
    _seen(engine, "left-the-feed", "moving", long_ago)
    _seen(engine, "still-listed-behind-304", "static", long_ago)
    _seen(engine, "unknown-feed-state", "legacy", long_ago)
    _seen(engine, "feed-is-gone", "gone", long_ago)
    _seen(engine, "feed-was-removed", "no-such-feed", long_ago)
    _seen(engine, "seen-recently", "moving", NOW - timedelta(days=2))
    _seen(engine, kept[0].article.id, "moving", long_ago)  # its article is kept

    planned = preview(engine, Retention.of(timedelta(days=30), now=NOW))
    result = prune(engine, timedelta(days=30), now=NOW, batch_size=2)

    assert planned.seen_items == result.seen_items == 3
    assert seen_ids(engine) == {"still-listed-behind-304", "unknown-feed-state",
                                "seen-recently", kept[0].article.id}
