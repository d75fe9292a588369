"""Full-text search over articles, ranked, with highlighted snippets and filters.

Each database searches with its own index (migration 0007): PostgreSQL the generated
``articles.search_document`` tsvector (GIN) with ``websearch_to_tsquery`` and
``ts_rank_cd``; SQLite the FTS5 table ``articles_fts`` with ``bm25`` (title weighted
above text). The same query language works on both: words (all must appear), "quoted
phrases", ``OR`` between words, and ``-word`` to exclude. Snippets are computed for the
page's rows only. Pages are found with one row of look-ahead instead of a count, which
would read every match. Ranking covers the newest `RANK_WINDOW` matches (after the
filters; on SQLite among the newest `SCAN_LIMIT` text matches unless dates are given),
which keeps a query for a common word about as fast as one for a rare word.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Engine,
    Select,
    and_,
    bindparam,
    column,
    exists,
    func,
    literal_column,
    select,
    table,
    text,
)

from consumers.web.highlight import MARK_END, MARK_START, Segment, marked, squash
from consumers.web.listing import Window
from newswatch.db_errors import unavailable_as_retryable
from newswatch.utc import as_utc
from schemas import tables

A, H = tables.articles.c, tables.topic_hits.c
E, AE = tables.entities.c, tables.article_entities.c
FTS = table("articles_fts", column("rowid"), column("article_id"))
# The FTS5 row shares its article's rowid (the triggers of migration 0007): joining on it
# is a direct row lookup, three times faster than the text primary key; comparing the
# ids too keeps the join exact even if a VACUUM renumbered the articles.
_SAME_ROW = and_(literal_column("articles.rowid") == FTS.c.rowid, A.id == FTS.c.article_id)
_TOKEN = re.compile(r'(-?)"([^"]*)"|(\S+)')
_WORDISH = re.compile(r"\w", re.UNICODE)
MAX_QUERY = 500
# Results are ranked among this many of the newest matching articles (after filters):
# a word found in half a million articles would otherwise be scored half a million
# times. Narrow with filters or dates to reach older matches.
RANK_WINDOW = 1000
# ...looked for among this many of the newest articles containing the words (SQLite;
# PostgreSQL's planner picks its own way), unless a date range is given.
SCAN_LIMIT = 20_000


@dataclass(frozen=True, kw_only=True)
class SearchQuery(Window):
    """What to look for; every field is optional (no text: newest first); the date range
    is of ``published``."""

    text: str = ""
    topic: str | None = None
    entity: str | None = None
    feed: str | None = None
    language: str | None = None


@dataclass(frozen=True)
class SearchHit:
    id: str
    title: str
    url: str | None
    feed_id: str
    feed_name: str
    language: str | None
    published: datetime
    rank: float | None
    snippet: list[Segment] = field(default_factory=list)
    topics: list[tuple[str, float]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "url": self.url, "feed_id": self.feed_id,
                "feed_name": self.feed_name, "language": self.language,
                "published": self.published.isoformat(), "rank": self.rank,
                "snippet": "".join(s.text for s in self.snippet),
                "highlights": [s.text for s in self.snippet if s.phrase],
                "topics": [{"topic": t, "score": s} for t, s in self.topics]}


@dataclass(frozen=True)
class SearchPage:
    hits: list[SearchHit]
    page: int
    has_more: bool


def fts5_query(user_text: str) -> str | None:
    """The user's query as FTS5 syntax with every term quoted (no operator injection).

    Words and "phrases" must all appear, ``a OR b`` takes either, ``-word`` excludes.
    None when nothing searchable is left.
    """
    groups: list[list[str]] = [[]]
    excluded: list[str] = []
    pending_or = False
    for match in _TOKEN.finditer(user_text[:MAX_QUERY]):
        negative, phrase, word = match.group(1), match.group(2), match.group(3)
        if word == "OR":
            pending_or = True
            continue
        if word is not None and word.startswith("-") and len(word) > 1:
            negative, word = "-", word[1:]
        term = phrase if phrase is not None else word
        if not term or not _WORDISH.search(term):
            continue
        quoted = '"' + term.replace('"', '""') + '"'
        if negative:
            excluded.append(quoted)
        elif pending_or and groups[-1]:
            groups[-1].append(quoted)
        else:
            groups.append([quoted])
        pending_or = False
    parts = [g[0] if len(g) == 1 else "(" + " OR ".join(g) + ")" for g in groups if g]
    if not parts:
        return None
    query = " AND ".join(parts)
    for term in excluded:
        query = f"{query} NOT {term}"
    return query


def _filters(query: Select[Any], q: SearchQuery) -> Select[Any]:
    if q.feed:
        query = query.where(A.feed_id == q.feed)
    if q.language:
        query = query.where(A.language == q.language)
    query = q.within(query, A.published)
    if q.topic:
        query = query.where(exists().where(H.article_id == A.id, H.topic == q.topic))
    if q.entity:
        ids = select(E.id).where(func.lower(E.name) == q.entity.lower())
        query = query.where(exists().where(AE.article_id == A.id, AE.entity_id.in_(ids)))
    return query


def _filtered(q: SearchQuery) -> bool:
    return any((q.feed, q.language, q.since, q.until, q.topic, q.entity))


def search_articles(engine: Engine, q: SearchQuery) -> SearchPage:
    """One page of articles matching ``q``: best match first (newest first without text)."""
    page = q.page_number
    columns = (A.id, A.title, A.url, A.feed_id, A.feed_name, A.language, A.published)
    words = q.text.strip()[:MAX_QUERY]
    with unavailable_as_retryable(), engine.connect() as conn:
        dialect = conn.dialect.name
        snippets: dict[str, str] = {}
        if not words:
            query: Select[Any] = _filters(select(*columns, literal_column("NULL").label("rank")), q)
            query = query.order_by(A.published.desc(), A.id)
        elif dialect == "postgresql":
            tsq = func.websearch_to_tsquery(literal_column("'english'::regconfig"),
                                            bindparam("q", words))
            document: Any = literal_column("articles.search_document")
            # Rank the newest matches only: ranking reads every candidate's tsvector.
            window = _filters(select(A.id).where(document.op("@@")(tsq)), q).order_by(
                A.published.desc()).limit(RANK_WINDOW).subquery()
            rank = func.ts_rank_cd(document, tsq)
            query = (select(*columns, rank.label("rank"))
                     .join(window, window.c.id == A.id)
                     .order_by(rank.desc(), A.published.desc()))
        else:
            match = fts5_query(words)
            if match is None:
                return SearchPage([], page, False)
            matching = literal_column("articles_fts").op("MATCH")(bindparam("q", match))
            # FTS5 walks matches in rowid (storage, so arrival) order cheaply; bm25 scores
            # every row it ranks. Ranking covers the RANK_WINDOW newest matches that pass
            # the filters, looked for among the SCAN_LIMIT newest text matches (all of
            # them when a date range is given: that is how to reach further back).
            scan_bound = None
            if q.since is None and q.until is None:
                scan_bound = conn.execute(
                    select(FTS.c.rowid).where(matching).order_by(FTS.c.rowid.desc())
                    .limit(1).offset(SCAN_LIMIT - 1), {"q": match}).scalar()
            text_matches: Select[Any] = select(FTS.c.rowid).select_from(FTS).where(matching)
            if _filtered(q):  # the join only when a filter needs the article
                text_matches = _filters(text_matches.join(tables.articles, _SAME_ROW), q)
            if scan_bound is not None:
                text_matches = text_matches.where(FTS.c.rowid >= scan_bound)
            bound = conn.execute(text_matches.order_by(FTS.c.rowid.desc()).limit(1)
                                 .offset(RANK_WINDOW - 1), {"q": match}).scalar()
            if bound is None:
                bound = scan_bound
            rank = func.bm25(literal_column("articles_fts"), 0.0, 4.0, 1.0)
            query = _filters(
                select(*columns, rank.label("rank"), FTS.c.rowid.label("fts_rowid"))
                .select_from(FTS).join(tables.articles, _SAME_ROW)
                .where(matching), q).order_by(rank, A.published.desc())
            if bound is not None:
                query = query.where(FTS.c.rowid >= bound)
        rows, has_more = q.split_page(conn.execute(q.one_page(query)).all())
        ids = [row.id for row in rows]
        if words and rows:
            snippets = _snippets(conn, dialect, words, rows)
        hits: dict[str, list[tuple[str, float]]] = {i: [] for i in ids}
        if ids:
            for hit in conn.execute(select(H.article_id, H.topic, H.score)
                                    .where(H.article_id.in_(ids))
                                    .order_by(H.score.desc())):
                hits[hit.article_id].append((hit.topic, float(hit.score)))
        summaries = {} if words else dict(conn.execute(
            select(A.id, func.substr(A.summary, 1, 300)).where(A.id.in_(ids))).all())
    return SearchPage([
        SearchHit(id=row.id, title=row.title, url=row.url, feed_id=row.feed_id,
                  feed_name=row.feed_name, language=row.language,
                  published=as_utc(row.published),
                  rank=None if row.rank is None else abs(float(row.rank)),
                  snippet=(marked(snippets.get(row.id, "")) if words
                           else [Segment(squash(summaries.get(row.id) or ""))]),
                  topics=hits[row.id])
        for row in rows
    ], page, has_more)


def _snippets(conn: Any, dialect: str, words: str, rows: Sequence[Any]) -> dict[str, str]:
    ids = [row.id for row in rows]
    if dialect == "postgresql":
        statement = text(
            "SELECT a.id, ts_headline('english', a.title || ' ' || a.summary || ' ' || "
            "left(a.content, 20000), websearch_to_tsquery('english', :q), :options) "
            "FROM articles a WHERE a.id = ANY(:ids)")
        options = (f"StartSel={MARK_START}, StopSel={MARK_END}, MaxWords=35, MinWords=12, "
                   "MaxFragments=2, FragmentDelimiter=\" … \"")
        return dict(conn.execute(statement, {"q": words, "options": options, "ids": ids}).all())
    match = fts5_query(words)
    statement = text(
        "SELECT article_id, snippet(articles_fts, -1, :start, :end, ' … ', 32) "
        "FROM articles_fts WHERE articles_fts MATCH :q AND rowid IN :rowids"
    ).bindparams(bindparam("rowids", expanding=True))
    return dict(conn.execute(statement, {"q": match, "start": MARK_START, "end": MARK_END,
                                         "rowids": [int(r.fts_rowid) for r in rows]}).all())


