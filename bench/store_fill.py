"""Pre-filling a bench database with N stored articles, server-side, in bounded time.

`fill_stored` writes ``count`` old articles (a year before the bench's own, published a
second apart in 12 feeds) with what the store writes for each: 10 entity links to a
vocabulary of 3,000 entities of their own and one evaluated topic hit. The rows are made
by the database from a numbers series (``generate_series`` on PostgreSQL, a recursive
CTE on SQLite), 100,000 articles per transaction, so a million take minutes, not the
hours the store's own path would.

One difference from the store's rows, to keep the time bounded: an article's text is a
300-character passage (one of 50 cut from `tests.factories.realistic_batch` bodies), not
~3.7 KB, so the search index (PostgreSQL's tsvector, SQLite's FTS5, both filled as the
store fills them) holds a million short documents. The B-tree indexes, the entity links
and the hits are the size a million stored articles make.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta

from sqlalchemy import Engine, text

from bench.harness import progress
from tests.factories import BASE_TIME, realistic_batch

VOCABULARY = 3000
LINKS_PER_ARTICLE = 10
CHUNK = 100_000
TEXT_CHARS = 300
TEMPLATES = 50
TOPICS = ("is_threat", "drug_trafficking", "recognition")
# A year before the bench's articles (tests.factories.BASE_TIME), one second apart.
FIRST_PUBLISHED = (BASE_TIME - timedelta(days=365)).replace(tzinfo=None)

_PG_NUMBERS = "SELECT i FROM generate_series(:lo, :hi - 1) AS g(i)"
_SQLITE_NUMBERS = ("WITH RECURSIVE n(i) AS (SELECT :lo UNION ALL SELECT i + 1 FROM n "
                   "WHERE i + 1 < :hi) SELECT i FROM n")


def _statements(dialect: str) -> dict[str, str]:
    """The fill's three INSERTs for ``dialect``; each reads the numbers [lo, hi)."""
    if dialect == "postgresql":
        numbers = _PG_NUMBERS
        moment = "(CAST(:first AS timestamp) + i * interval '1 second') AT TIME ZONE 'UTC'"
        passage = "(CAST(:templates AS json) ->> (i % :n_templates))"
        topic = "(CAST(:topics AS json) ->> (i % 3))"
        ident = "'stored-' || lpad(CAST(i AS text), 9, '0')"
        as_text, feed = "CAST(i AS text)", "CAST(i % 12 AS text)"
        links_source = "generate_series(0, :links - 1) AS k(k)"
        true = "true"
    else:
        numbers = _SQLITE_NUMBERS
        # The text form SQLAlchemy's SQLite DateTime writes and reads.
        moment = "strftime('%Y-%m-%d %H:%M:%f', :first, '+' || i || ' seconds')"
        passage = "json_extract(:templates, '$[' || (i % :n_templates) || ']')"
        topic = "json_extract(:topics, '$[' || (i % 3) || ']')"
        ident = "'stored-' || printf('%09d', i)"
        as_text, feed = "CAST(i AS TEXT)", "CAST(i % 12 AS TEXT)"
        links_source = ("(WITH RECURSIVE kk(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM kk "
                        "WHERE k + 1 < :links) SELECT k FROM kk)")
        true = "1"
    return {
        "articles": (
            "INSERT INTO articles (id, url, title, summary, content, published, fetched_at, "
            "feed_id, feed_name, language, authors, tags, revision, content_hash, "
            "topics_version, enriched_at, stored_at) "
            f"SELECT {ident}, 'https://stored.example.org/' || {as_text}, "
            f"'Stored article ' || {as_text}, {passage}, '', {moment}, {moment}, "
            f"'feed-' || {feed}, 'Stored', 'en', '[]', "
            f"'[\"world\"]', 0, 'h' || {as_text}, 'bench', {moment}, {moment} "
            f"FROM ({numbers}) AS numbers"),
        "links": (
            "INSERT INTO article_entities (article_id, entity_id, count, published) "
            f"SELECT {ident}, :first_entity + ((i * 7 + k * 13) % :vocabulary), "
            f"1 + (i + k) % 5, {moment} FROM ({numbers}) AS numbers, {links_source}"),
        "hits": (
            "INSERT INTO topic_hits (article_id, topic, score, probability, evidence, "
            "topics_version, published, created_at, evaluated) "
            f"SELECT {ident}, {topic}, 0.7, NULL, '[]', 'bench', {moment}, {moment}, {true} "
            f"FROM ({numbers}) AS numbers"),
    }


def _make_entities(engine: Engine) -> int:
    """Create the fill's vocabulary; return the id of its first entity (ids are
    consecutive: checked, because the link rows compute them)."""
    names = [{"name": f"Stored entity {n}", "label": ("ORG", "GPE", "PERSON")[n % 3]}
             for n in range(VOCABULARY)]
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO entities (name, label) VALUES (:name, :label)"), names)
        low, high, count = conn.execute(text(
            "SELECT min(id), max(id), count(*) FROM entities WHERE name LIKE 'Stored entity %'"
        )).one()
    if count != VOCABULARY or high - low != VOCABULARY - 1:
        raise RuntimeError(f"the fill's entities did not get consecutive ids ({low}..{high}, "
                           f"{count} rows)")
    return int(low)


def fill_stored(engine: Engine, count: int) -> float:
    """Write ``count`` stored articles as the module docstring says; return the seconds
    it took. The database must be migrated and hold no article with a ``stored-`` id."""
    if count <= 0:
        return 0.0
    began = time.perf_counter()
    first_entity = _make_entities(engine)
    templates = json.dumps([item.article.content[:TEXT_CHARS]
                            for item in realistic_batch(TEMPLATES, seed=99)])
    statements = _statements(engine.dialect.name)
    for lo in range(0, count, CHUNK):
        values = {"lo": lo, "hi": min(count, lo + CHUNK), "first": FIRST_PUBLISHED.isoformat(
            sep=" "), "templates": templates, "n_templates": TEMPLATES,
            "topics": json.dumps(TOPICS), "first_entity": first_entity,
            "vocabulary": VOCABULARY, "links": LINKS_PER_ARTICLE}
        with engine.begin() as conn:
            for statement in statements.values():
                conn.execute(text(statement), values)
        progress(f"filled {values['hi']:,} of {count:,} stored articles "
                 f"({time.perf_counter() - began:.0f} s)")
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            # As autovacuum would have by then; only the filled tables: a bare VACUUM
            # walks every schema of the database (the shared test server holds many).
            conn.execute(text("VACUUM ANALYZE articles, article_entities, topic_hits, "
                              "entities"))
    return time.perf_counter() - began
