"""``newswatch stories``: the recent stories, biggest first, from SQL.

Each row: size (articles), distinct outlets, first and last seen, growth (articles in the
last `GROWTH_WINDOW` before the story's last article, against the story's size) and the
leading title. ``topic`` keeps stories with at least one article hitting that topic.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from rich.console import Console
from rich.table import Table
from sqlalchemy import Connection, func, select

from newswatch.db import make_engine
from newswatch.settings import Settings
from newswatch.utc import as_utc
from schemas import tables

GROWTH_WINDOW = timedelta(hours=6)


@dataclass(frozen=True)
class StoryRow:
    id: str
    title: str
    articles: int
    outlets: int
    first_seen: datetime
    last_seen: datetime
    recent: int  # articles in the GROWTH_WINDOW before last_seen
    closed: bool





def recent_stories(connection: Connection, since: datetime, topic: str | None = None,
                   limit: int = 30) -> list[StoryRow]:
    """Stories last seen at or after ``since``, most articles first."""
    st, sa, hits = tables.stories.c, tables.story_articles.c, tables.topic_hits.c
    query = select(st.id, st.title, st.articles, st.outlets, st.first_seen, st.last_seen,
                   st.closed_at).where(st.last_seen >= since)
    if topic is not None:
        query = query.where(st.id.in_(
            select(sa.story_id).join(tables.topic_hits, hits.article_id == sa.article_id)
            .where(hits.topic == topic)))
    query = query.order_by(st.articles.desc(), st.last_seen.desc(), st.id).limit(limit)
    rows = list(connection.execute(query))
    recent: dict[str, int] = {}
    for row in rows:
        start = as_utc(row.last_seen) - GROWTH_WINDOW
        recent[row.id] = connection.execute(
            select(func.count()).where(sa.story_id == row.id, sa.published >= start)
        ).scalar_one()
    return [StoryRow(row.id, row.title, row.articles, row.outlets, as_utc(row.first_seen),
                     as_utc(row.last_seen), recent[row.id], row.closed_at is not None)
            for row in rows]


def print_stories(settings: Settings, *, since: datetime, topic: str | None, limit: int,
                  as_json: bool) -> int:
    engine = make_engine(settings.sqlalchemy_url())
    try:
        with engine.connect() as connection:
            stories = recent_stories(connection, since, topic, limit)
    finally:
        engine.dispose()
    if as_json:
        for story in stories:
            print(json.dumps(asdict(story), default=str, ensure_ascii=False))
        return 0
    table = Table(title=f"Stories since {since:%Y-%m-%d %H:%M} UTC"
                  + (f" with topic {topic}" if topic else ""))
    for name in ("articles", "outlets", "first seen", "last seen", "last 6h", "title"):
        table.add_column(name, overflow="fold")
    for story in stories:
        table.add_row(str(story.articles), str(story.outlets),
                      f"{story.first_seen:%m-%d %H:%M}", f"{story.last_seen:%m-%d %H:%M}",
                      f"+{story.recent}", story.title[:100] + (" (closed)" if story.closed
                                                              else ""))
    Console().print(table)
    if not stories:
        print("no stories in that time (is the stories stage running? `newswatch stories run`)")
    return 0
