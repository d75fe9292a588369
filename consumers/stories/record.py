"""The stories stage's SQL: its decisions (story_articles), the stories, the links on
articles, and the lease that keeps one clusterer active.

Contract:

- ``story_articles`` is the record: an article placed once keeps its story. Rows are
  inserted with ON CONFLICT DO NOTHING, so a replay writes nothing new.
- ``articles.story_id``/``duplicate_of`` are copies for readers. The stage sets them on
  the rows that exist; the store sets them when it inserts an article the stage placed
  first (`consumers.store.write`); `link_unlinked` repairs the rare case where both
  transactions ran at once and neither saw the other's row.
- ``story_state`` holds a lease: only its owner writes. A second instance waits (a
  standby), so a story is never split between two clusterers' memories.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, and_, or_, select, update

from consumers.stories.cluster import OpenStory, Placement, StoryInput
from newswatch.chunks import chunks
from newswatch.errors import NewswatchError
from newswatch.upsert import insert_ignoring, insert_or_update
from newswatch.utc import as_utc
from schemas import tables
from schemas.messages import LANGUAGE_LENGTH

LEASE_NAME = "clusterer"
CHUNK = 500


class LeaseLostError(NewswatchError):
    """Another stories stage holds the lease now: this one must stop writing."""


@dataclass(frozen=True)
class Known:
    story: str
    duplicate_of: str | None


# --- what was decided before -------------------------------------------------------------

def known_placements(connection: Connection, ids: Sequence[str]) -> dict[str, Known]:
    """The stored placement of each of ``ids`` that has one."""
    sa = tables.story_articles.c
    found: dict[str, Known] = {}
    for chunk in chunks(list(ids), CHUNK):
        for row in connection.execute(select(sa.article_id, sa.story_id, sa.duplicate_of)
                                      .where(sa.article_id.in_(chunk))):
            found[row.article_id] = Known(row.story_id, row.duplicate_of)
    return found


@dataclass(frozen=True)
class StoredMember:
    article: StoryInput
    story: str
    duplicate_of: str | None


def open_members(connection: Connection) -> Iterator[StoredMember]:
    """The articles of the stories not closed, in placement order: what a restart feeds
    back to the clusterer (`StoryClusterer.restore`) to rebuild its memory."""
    sa, st = tables.story_articles.c, tables.stories.c
    query = (select(sa.article_id, sa.story_id, sa.duplicate_of, sa.published, sa.outlet,
                    sa.title, sa.lead, sa.entities, sa.language)
             .join(tables.stories, st.id == sa.story_id)
             .where(st.closed_at.is_(None))
             .order_by(sa.id))
    for row in connection.execute(query).yield_per(2000):
        yield StoredMember(
            StoryInput(id=row.article_id, title=row.title, text=row.lead,
                       published=as_utc(row.published), outlet=row.outlet,
                       entities=tuple(row.entities or ()), language=row.language),
            row.story_id, row.duplicate_of)


# --- writing a batch ---------------------------------------------------------------------

@dataclass(frozen=True)
class NewPlacement:
    placement: Placement
    article: StoryInput  # with ``text`` cut to what the clusterer reads


def write_batch(connection: Connection, placed: Sequence[NewPlacement],
                touched: Iterable[OpenStory], closed: Iterable[OpenStory],
                now: datetime) -> int:
    """Record new placements, refresh the touched stories, mark closed ones; link the
    articles that are already stored. Returns how many article rows were linked."""
    if placed:
        rows = [{"article_id": p.placement.id, "story_id": p.placement.story,
                 "duplicate_of": p.placement.duplicate_of,
                 "published": as_utc(p.article.published or now), "outlet": p.article.outlet,
                 "title": p.article.title, "lead": p.article.text,
                 "entities": list(p.article.entities),
                 "language": ((p.article.language or None)
                              and p.article.language[:LANGUAGE_LENGTH]),
                 "placed_at": now}
                for p in placed]
        statement = insert_ignoring(connection, tables.story_articles)
        for chunk in chunks(rows, CHUNK):
            connection.execute(statement, list(chunk))
    _upsert_stories(connection, list(touched), now)
    closed_ids = sorted({story.id for story in closed})
    for ids in chunks(closed_ids, CHUNK):
        connection.execute(update(tables.stories)
                           .where(tables.stories.c.id.in_(ids))
                           .values(closed_at=now, updated_at=now))
    return _link(connection, [p.placement for p in placed])


def _upsert_stories(connection: Connection, stories: list[OpenStory], now: datetime) -> None:
    if not stories:
        return
    rows = [{"id": story.id, "title": story.title,
             "first_seen": as_utc(story.first_seen or now),
             "last_seen": as_utc(story.last_seen or now),
             "articles": story.articles, "outlets": len(story.outlets), "closed_at": None,
             "updated_at": now}
            for story in sorted(stories, key=lambda s: s.id)]
    statement = insert_or_update(connection, tables.stories, key=["id"],
                                 update=("last_seen", "first_seen", "articles", "outlets",
                                         "closed_at", "updated_at"))
    for chunk in chunks(rows, CHUNK):
        connection.execute(statement, list(chunk))


def _link(connection: Connection, placements: Sequence[Placement]) -> int:
    a = tables.articles.c
    linked = 0
    # Grouped by (story, original) so that a batch costs a few statements, not one each.
    groups: dict[tuple[str, str | None], list[str]] = {}
    for placement in placements:
        groups.setdefault((placement.story, placement.duplicate_of), []).append(placement.id)
    for (story, original), ids in sorted(groups.items(), key=lambda item: item[0][0]):
        for chunk in chunks(ids, CHUNK):
            result = connection.execute(
                update(tables.articles).where(a.id.in_(chunk))
                .where(or_(a.story_id.is_(None), a.story_id != story))
                .values(story_id=story, duplicate_of=original))
            linked += result.rowcount or 0
    return linked


def link_unlinked(connection: Connection, since: datetime) -> int:
    """Copy placements onto stored articles that still have no story (placed since
    ``since``): the repair for a store and a stage that wrote the same article at once."""
    a, sa = tables.articles.c, tables.story_articles.c
    pending = (select(sa.article_id, sa.story_id, sa.duplicate_of)
               .join(tables.articles, a.id == sa.article_id)
               .where(and_(a.story_id.is_(None), sa.placed_at >= since)))
    rows = list(connection.execute(pending))
    for row in rows:
        connection.execute(update(tables.articles).where(a.id == row.article_id)
                           .values(story_id=row.story_id, duplicate_of=row.duplicate_of))
    return len(rows)


# --- the lease ---------------------------------------------------------------------------

def take_lease(connection: Connection, owner: str, now: datetime, length: timedelta) -> bool:
    """Take or renew the lease when it is free, expired or ours; True when we hold it."""
    s = tables.story_state.c
    connection.execute(insert_ignoring(connection, tables.story_state).values(
        name=LEASE_NAME, owner=owner, lease_until=now + length, updated_at=now))
    result = connection.execute(
        update(tables.story_state)
        .where(s.name == LEASE_NAME)
        .where(or_(s.owner == owner, s.lease_until < now))
        .values(owner=owner, lease_until=now + length, updated_at=now))
    return bool(result.rowcount)


def renew_lease(connection: Connection, owner: str, now: datetime, length: timedelta) -> None:
    """Extend our lease; `LeaseLostError` when another instance holds it now."""
    s = tables.story_state.c
    result = connection.execute(
        update(tables.story_state)
        .where(s.name == LEASE_NAME).where(s.owner == owner)
        .values(lease_until=now + length, updated_at=now))
    if not result.rowcount:
        holder = connection.execute(select(s.owner).where(s.name == LEASE_NAME)).scalar()
        raise LeaseLostError(f"the stories lease is held by {holder!r}, not {owner!r}: "
                             "another stories stage took over; stopping")


def release_lease(connection: Connection, owner: str) -> None:
    s = tables.story_state.c
    connection.execute(update(tables.story_state)
                       .where(s.name == LEASE_NAME).where(s.owner == owner)
                       .values(lease_until=datetime(1970, 1, 1, tzinfo=UTC)))
