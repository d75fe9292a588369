"""The stories stage against a real database (SQLite and PostgreSQL): placements are
recorded once, a replay gets the old answers, a restart rebuilds the same memory, the
store and the stage link articles in either order, and the lease admits one writer."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from consumers.store.write import store_batch
from consumers.stories.cluster import ClusterConfig
from consumers.stories.daemon import StoriesHandler, rebuild
from consumers.stories.record import LeaseLostError, take_lease
from schemas import tables
from schemas.messages import EnrichedArticle
from tests.factories import make_article, make_enriched, make_entity

T0 = datetime(2026, 7, 13, 20, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)

HEADLINES = [
    ("Trump signs order shrinking Bears Ears and Grand Staircase-Escalante", "monuments"),
    ("Babylon Fire grows to 38,000 acres near Blanding", "fire"),
    ("Trump shrinks Bears Ears, Grand Staircase-Escalante national monuments again",
     "monuments"),
    ("Babylon Fire explodes in size, prompts forest closure in San Juan County", "fire"),
    ("Trump signs order shrinking Bears Ears and Grand Staircase-Escalante", "monuments"),
    ("Tenth Circuit revives Utah lawsuit over national monument boundaries", "court"),
]


def _stream(n: int = len(HEADLINES)) -> list[EnrichedArticle]:
    return [make_enriched(make_article(title=title, summary="", published=T0 + timedelta(
        minutes=10 * i), feed_name=f"Outlet {i % 3}"), entities=[make_entity("Utah", "GPE")])
        for i, (title, _event) in enumerate(HEADLINES[:n])]


def _records(items: Sequence[EnrichedArticle]) -> list[Any]:
    return [SimpleNamespace(value=item.to_bytes(), key=item.article.id.encode(),
                            topic="news.enriched", partition=0, offset=i)
            for i, item in enumerate(items)]


def _handler(engine: Engine, owner: str = "test:1") -> StoriesHandler:
    with engine.begin() as connection:
        assert take_lease(connection, owner, datetime.now(UTC), LEASE)
    return StoriesHandler(engine, rebuild(engine, ClusterConfig()), owner, LEASE)


def _placements(engine: Engine) -> dict[str, tuple[str, str | None]]:
    sa = tables.story_articles.c
    with engine.connect() as connection:
        return {row.article_id: (row.story_id, row.duplicate_of)
                for row in connection.execute(select(sa.article_id, sa.story_id,
                                                     sa.duplicate_of))}


def _linked(engine: Engine) -> dict[str, tuple[str | None, str | None]]:
    a = tables.articles.c
    with engine.connect() as connection:
        return {row.id: (row.story_id, row.duplicate_of)
                for row in connection.execute(select(a.id, a.story_id, a.duplicate_of))}


def test_one_story_per_event_recorded_and_linked(engine: Engine) -> None:
    items = _stream()
    store_batch(engine, items)  # stored first: the stage links the existing rows
    assert _handler(engine)(_records(items)) == []
    placed = _placements(engine)
    ids = [item.article.id for item in items]
    events = [event for _title, event in HEADLINES]
    story_of_event: dict[str, str] = {}
    for article_id, event in zip(ids, events, strict=True):
        assert story_of_event.setdefault(event, placed[article_id][0]) == placed[article_id][0]
    assert len(set(story_of_event.values())) == 3
    assert placed[ids[4]] == (placed[ids[0]][0], ids[0])  # the same headline again: a copy
    assert _linked(engine) == {i: placed[i] for i in ids}
    with engine.connect() as connection:
        story = connection.execute(select(tables.stories).where(
            tables.stories.c.id == story_of_event["monuments"])).one()
    assert (story.articles, story.outlets) == (3, 3)
    assert story.title == HEADLINES[0][0]


def test_the_store_links_what_the_stage_placed_first(engine: Engine) -> None:
    items = _stream()
    _handler(engine)(_records(items))
    store_batch(engine, items)
    placed = _placements(engine)
    assert _linked(engine) == placed


def test_a_replay_gets_the_old_answers_and_writes_nothing_new(engine: Engine) -> None:
    items = _stream()
    _handler(engine)(_records(items))
    before = _placements(engine)
    # A new process (fresh memory, rebuilt from SQL) replays the topic from offset 0.
    _handler(engine)(_records(items))
    assert _placements(engine) == before
    with engine.connect() as connection:
        assert connection.execute(
            select(func.count()).select_from(tables.story_articles)).scalar_one() == len(items)


def test_a_restart_mid_stream_continues_as_if_uninterrupted(engine: Engine) -> None:
    items = _stream()
    _handler(engine)(_records(items[:3]))  # then the process dies
    _handler(engine)(_records(items[3:]))  # a new one rebuilds from SQL and goes on
    interrupted = _placements(engine)
    from consumers.stories.cluster import cluster_all
    from consumers.stories.daemon import story_input

    straight = cluster_all([story_input(item) for item in items])
    assert interrupted == {p.id: (p.story, p.duplicate_of) for p in straight}


def test_a_restart_rebuilds_what_the_written_text_tells(engine: Engine) -> None:
    # A digest (here only its list marks tell it) and names (their capitals) are read
    # from the text as written; `story_articles` keeps it so, and a rebuilt stage
    # decides as the first did.
    texts = [("What you missed overnight",
              "Boeing machinists approve contract and end strike + Fed holds rates steady "
              "+ Messi signs with Inter Miami + Storm floods Valencia"),
             ("Hezbollah's new leader says Lebanon will not bow to pressure",
              "Hezbollah's newly named chief said in a speech that Lebanon would not bow "
              "to foreign pressure over the group's weapons."),
             ("Boeing machinists end strike after approving new contract",
              "Boeing's machinists voted on Monday to approve a new contract, ending a "
              "strike that halted production of the 737."),
             ("Israeli drone kills two Hezbollah fighters in southern Lebanon",
              "An Israeli drone killed two Hezbollah fighters near the Lebanese border "
              "village of Aitaroun, the military said.")]
    items = [make_enriched(make_article(title=title, summary=text, published=T0 + timedelta(
        minutes=10 * i), feed_name=f"Outlet {i}")) for i, (title, text) in enumerate(texts)]
    _handler(engine)(_records(items[:2]))  # then the process dies
    _handler(engine)(_records(items[2:]))
    placed = _placements(engine)
    # Each is its own story: the item does not join the digest, nor the drone strike
    # the speech (they share only names).
    assert {story for story, _ in placed.values()} == {item.article.id for item in items}


def test_poison_is_returned_and_the_rest_placed(engine: Engine) -> None:
    items = _stream(2)
    records = _records(items)
    records.insert(1, SimpleNamespace(value=b"{not json", key=b"x", topic="news.enriched",
                                      partition=0, offset=99))
    poisons = _handler(engine)(records)
    assert [p.record.offset for p in poisons] == [99]
    assert len(_placements(engine)) == 2


def test_a_second_instance_waits_and_a_usurped_one_stops(engine: Engine) -> None:
    now = datetime.now(UTC)
    with engine.begin() as connection:
        assert take_lease(connection, "a:1", now, LEASE)
        assert not take_lease(connection, "b:2", now, LEASE)  # standby
        assert take_lease(connection, "a:1", now, LEASE)  # renewal
        # a:1 stops renewing; after the lease runs out, b:2 takes over.
        assert take_lease(connection, "b:2", now + LEASE + timedelta(seconds=1), LEASE)
    handler = StoriesHandler(engine, rebuild(engine, ClusterConfig()), "a:1", LEASE)
    with pytest.raises(LeaseLostError, match="held by 'b:2'"):
        handler(_records(_stream(1)))
    assert _placements(engine) == {}  # nothing written by the instance that lost it


def test_the_listing_shows_recent_stories_biggest_first(engine: Engine) -> None:
    from consumers.stories.listing import recent_stories

    items = _stream()
    store_batch(engine, items)
    _handler(engine)(_records(items))
    with engine.connect() as connection:
        listed = recent_stories(connection, T0 - timedelta(days=1))
        on_topic = recent_stories(connection, T0 - timedelta(days=1), topic="recognition")
        none = recent_stories(connection, T0 + timedelta(days=1))
    assert [(s.title, s.articles) for s in listed] == [
        (HEADLINES[0][0], 3), (HEADLINES[1][0], 2), (HEADLINES[5][0], 1)]
    assert listed[0].recent == 3
    assert listed[0].first_seen == T0
    assert len(on_topic) == 3  # the factory's articles all hit "recognition"
    assert none == []


def test_replaying_an_article_of_a_closed_story_leaves_the_story_closed(engine: Engine) -> None:
    items = _stream(3)
    late = make_enriched(make_article(title="Tenth Circuit revives Utah lawsuit", summary="",
                                      published=T0 + timedelta(days=5)), entities=[])
    handler = _handler(engine)
    handler(_records(items))
    handler(_records([late]))  # five days on: the first stories went quiet and closed
    s = tables.stories.c
    with engine.connect() as connection:
        before = {row.id: (row.articles, row.closed_at is not None)
                  for row in connection.execute(select(s.id, s.articles, s.closed_at))}
    assert before[items[0].article.id] == (2, True)
    handler(_records(items))  # replayed
    with engine.connect() as connection:
        after = {row.id: (row.articles, row.closed_at is not None)
                 for row in connection.execute(select(s.id, s.articles, s.closed_at))}
    assert after == before
