"""Writing enriched articles to SQL: one transaction per batch, idempotent, in bulk.

The contract of `store_batch`:

- Everything in a batch is written in ONE transaction: after it returns, all of it is
  durable; after it raises, none of it is (but new entities on PostgreSQL, see below).
- Writing the same message twice changes nothing (a replay, a redelivery after a failed
  offset commit). An article is keyed by its id; what its hits and entities were computed
  from is (revision, content hash, topics version).
- When that differs and the message is newer, ordered by (revision, enriched_at), the
  article row is updated and its entity links and topic hits are replaced. An older
  message arriving late (a replay from offset 0 after a re-enrichment) changes nothing,
  so a replay never makes hits flip back and forth.
- Entities are get-or-create by (name, label), shared by every article that names them.
  On PostgreSQL the missing ones are created before the batch's transaction, each INSERT
  committed on its own (`create_entities`): they are the only rows two store processes
  share, and an uncommitted new entity made every other writer naming it wait until that
  transaction ended, which a frozen store process did not do (issue 16, item 2). An
  entity so created by a batch that then fails stays: an entity row without articles is
  harmless and the retry uses it.

Writers of one article are serialised by Kafka's partitioning (key = article id); the
inserts still say ON CONFLICT DO NOTHING so two writers racing on a rebalance cannot fail
or duplicate a row.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    Connection,
    Engine,
    String,
    Table,
    Text,
    bindparam,
    cast,
    column,
    delete,
    func,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.types import TypeEngine

from consumers.store.idle_guard import end_if_idle
from newswatch.upsert import insert_ignoring, insert_or_update
from schemas import tables
from schemas.messages import EnrichedArticle

# Values per IN list: far below SQLite's 32,766 and PostgreSQL's 65,535 bound parameters.
CHUNK = 500
# Rows per bulk INSERT: one JSON parameter on PostgreSQL, one executemany on SQLite.
ROWS_PER_INSERT = 2000

T = TypeVar("T")


@dataclass(frozen=True)
class StoreResult:
    """What one `store_batch` call did, counted in articles and child rows."""

    inserted: int = 0
    replaced: int = 0
    unchanged: int = 0
    entities_created: int = 0
    entity_links: int = 0
    hits: int = 0

    @property
    def written(self) -> int:
        """Articles whose rows were inserted or replaced."""
        return self.inserted + self.replaced


def store_batch(engine: Engine, enriched: Sequence[EnrichedArticle],
                now: datetime | None = None, *,
                idle_timeout_s: float | None = None) -> StoreResult:
    """Write ``enriched`` in one transaction; see the module docstring for the contract.

    ``now`` is the ``stored_at`` / ``created_at`` stamp (default: the current UTC time).
    ``idle_timeout_s``: PostgreSQL aborts the transaction when this process stalls inside
    it for that long (`consumers.store.idle_guard`).
    Database errors propagate as SQLAlchemy raises them; the caller decides which ones
    are worth a retry (`newswatch.db_errors`).
    """
    if not enriched:
        return StoreResult()
    created = create_entities(engine, enriched) if engine.dialect.name == "postgresql" else 0
    with engine.begin() as connection:
        end_if_idle(connection, idle_timeout_s)
        result = write_batch(connection, enriched, now)
    return replace(result, entities_created=result.entities_created + created)


def create_entities(engine: Engine, enriched: Sequence[EnrichedArticle]) -> int:
    """Create the entities ``enriched`` names that do not exist yet, each INSERT statement
    in a transaction of its own (autocommit), and return how many were missing.

    A statement in autocommit ends on the server with the statement, so no client stall
    can leave a new entity uncommitted for the others to wait on. Sorted inserts keep two
    writers from deadlocking on each other's new names.
    """
    wanted = sorted(set().union(*(_entity_counts(item) for item in enriched)))
    if not wanted:
        return 0
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        known = _lookup_entities(connection, wanted)
        missing = [key for key in wanted if key not in known]
        if missing:
            _bulk_insert(connection, tables.entities,
                         [{"name": name, "label": label} for name, label in missing])
    return len(missing)


def write_batch(connection: Connection, enriched: Sequence[EnrichedArticle],
                now: datetime | None = None) -> StoreResult:
    """`store_batch` inside a transaction the caller already opened on ``connection``.

    Several messages for one article in ``enriched`` count as one: the newest wins.
    """
    stamp = now or datetime.now(UTC)
    latest = _latest_per_article(enriched)
    stored = _stored_versions(connection, list(latest))
    new: list[EnrichedArticle] = []
    replace: list[EnrichedArticle] = []
    for article_id, item in latest.items():
        previous = stored.get(article_id)
        if previous is None:
            new.append(item)
        elif _replaces(item, previous):
            replace.append(item)
    unchanged = len(enriched) - len(new) - len(replace)
    changed = new + replace
    if not changed:
        return StoreResult(unchanged=unchanged)

    _upsert_articles(connection, changed, stamp)
    _link_placed_stories(connection, [item.article.id for item in new])
    if replace:
        # The new enrichment's hits and entities supersede the old ones as a whole.
        ids = [item.article.id for item in replace]
        for chunk in _chunks(ids):
            connection.execute(delete(tables.topic_hits)
                               .where(tables.topic_hits.c.article_id.in_(chunk)))
            connection.execute(delete(tables.article_entities)
                               .where(tables.article_entities.c.article_id.in_(chunk)))
    counts = [_entity_counts(item) for item in changed]
    entity_ids, created = _entity_ids(connection, sorted(set().union(*counts)))
    links = _insert_entity_links(connection, changed, counts, entity_ids)
    hits = _hit_rows(changed, stamp)
    _bulk_insert(connection, tables.topic_hits, hits)
    return StoreResult(inserted=len(new), replaced=len(replace), unchanged=unchanged,
                       entities_created=created, entity_links=links, hits=len(hits))


def _link_placed_stories(connection: Connection, ids: list[str]) -> None:
    """Copy the story of articles the stories stage placed before they were stored (the
    stage links the rows that exist when it places; this covers the other order)."""
    a, placed = tables.articles.c, tables.story_articles.c
    for chunk in _chunks(ids):
        mine = placed.article_id == a.id
        connection.execute(
            update(tables.articles)
            .where(a.id.in_(chunk))
            .where(select(placed.article_id).where(mine).exists())
            .values(story_id=select(placed.story_id).where(mine).scalar_subquery(),
                    duplicate_of=select(placed.duplicate_of).where(mine).scalar_subquery()))


# --- deciding what changes -------------------------------------------------------------

@dataclass(frozen=True)
class _Stored:
    revision: int
    content_hash: str
    topics_version: str
    enriched_at: datetime


def _utc(moment: datetime) -> datetime:
    # SQLite gives naive datetimes back and a producer may send one: naive means UTC.
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _order(item: EnrichedArticle) -> tuple[int, datetime]:
    return item.article.revision, _utc(item.enriched_at)


def _latest_per_article(enriched: Sequence[EnrichedArticle]) -> dict[str, EnrichedArticle]:
    """One message per article id: the newest; on a tie the later one in the batch."""
    latest: dict[str, EnrichedArticle] = {}
    for item in enriched:
        seen = latest.get(item.article.id)
        if seen is None or _order(item) >= _order(seen):
            latest[item.article.id] = item
    return latest


def _stored_versions(connection: Connection, ids: list[str]) -> dict[str, _Stored]:
    a = tables.articles.c
    found: dict[str, _Stored] = {}
    for chunk in _chunks(ids):
        query = (select(a.id, a.revision, a.content_hash, a.topics_version, a.enriched_at)
                 .where(a.id.in_(chunk)))
        # `.all()`: the driver's fetchall (iterating fetched row by row).
        for article_id, revision, content_hash, topics_version, enriched_at in (
                connection.execute(query).all()):
            found[article_id] = _Stored(revision, content_hash, topics_version,
                                        _utc(enriched_at))
    return found


def _replaces(item: EnrichedArticle, stored: _Stored) -> bool:
    same_input = (item.article.revision == stored.revision
                  and item.article.content_hash == stored.content_hash
                  and item.topics_version == stored.topics_version)
    if same_input:
        return False
    return _order(item) > (stored.revision, stored.enriched_at)


# --- rows --------------------------------------------------------------------------------

def _clean(text: str) -> str:
    # PostgreSQL text cannot hold NUL; a feed that sends one should not cost the article.
    return text.replace("\x00", "") if "\x00" in text else text


def _clean_opt(text: str | None) -> str | None:
    return None if text is None else _clean(text)


def _article_row(item: EnrichedArticle, stamp: datetime) -> dict[str, Any]:
    article = item.article
    return {
        "id": article.id,
        "url": _clean_opt(article.url),
        "guid": _clean_opt(article.guid),
        "title": _clean(article.title),
        "summary": _clean(article.summary),
        "content": _clean(article.content),
        "published": _utc(article.published),
        "published_estimated": article.published_estimated,
        "updated": _utc(article.updated) if article.updated is not None else None,
        "fetched_at": _utc(article.fetched_at),
        "feed_id": _clean(article.feed_id),
        "feed_name": _clean(article.feed_name),
        "language": _clean_opt(article.language),
        "authors": [_clean(author) for author in article.authors],
        "tags": [_clean(tag) for tag in article.tags],
        "revision": article.revision,
        "content_hash": _clean(article.content_hash),
        "topics_version": _clean(item.topics_version),
        "enriched_at": _utc(item.enriched_at),
        "stored_at": stamp,
    }


EntityKey = tuple[str, str]  # (name, label): what makes an entity one row


def _entity_counts(item: EnrichedArticle) -> dict[EntityKey, int]:
    """How often the article names each entity. Two spellings that enrichment normalised
    to one canonical name arrive as two counts: they are added up."""
    counts: dict[EntityKey, int] = {}
    for entity in item.entities:
        key = (_clean(entity.name), _clean(entity.label))
        counts[key] = counts.get(key, 0) + entity.count
    return counts


def _insert_entity_links(connection: Connection, changed: list[EnrichedArticle],
                         counts: list[dict[EntityKey, int]],
                         entity_ids: dict[EntityKey, int]) -> int:
    """Insert the article_entities rows of ``changed``; returns how many there were."""
    if connection.dialect.name != "postgresql":
        # One published datetime object per article: `_sqlite_insert` formats it once.
        rows = [{"article_id": item.article.id, "entity_id": entity_ids[key], "count": count,
                 "published": published}
                for item, article_counts in zip(changed, counts, strict=True)
                for published in (_utc(item.article.published),)
                for key, count in article_counts.items()]
        _bulk_insert(connection, tables.article_entities, rows)
        return len(rows)
    # ~10 links per article: one JSON record per article with its entity ids and counts
    # as arrays, unnested server-side, costs both sides less than ten flat records.
    records = [{"article_id": item.article.id, "published": _utc(item.article.published),
                "entity_ids": [entity_ids[key] for key in article_counts],
                "counts": list(article_counts.values())}
               for item, article_counts in zip(changed, counts, strict=True) if article_counts]
    for chunk in _chunks(records, ROWS_PER_INSERT):
        connection.execute(_PG_INSERT_LINKS,
                           {"rows": json.dumps(chunk, default=_json_default)})
    return sum(len(article_counts) for article_counts in counts)


def _pg_insert_links() -> Any:
    ae = tables.article_entities.c
    per_article = func.json_to_recordset(cast(bindparam("rows", type_=Text()), JSON)
                                         ).table_valued(
        column("article_id", Text()), column("published", ae.published.type),
        column("entity_ids", postgresql.ARRAY(ae.entity_id.type)),
        column("counts", postgresql.ARRAY(ae.count.type)),
    ).render_derived(with_types=True)
    # A function in FROM may refer to the items before it (implicitly LATERAL).
    pairs = func.unnest(per_article.c.entity_ids, per_article.c.counts).table_valued(
        "entity_id", "count").render_derived()
    source = select(per_article.c.article_id, pairs.c.entity_id, pairs.c.count,
                    per_article.c.published).select_from(per_article.join(pairs, true()))
    return insert_ignoring("postgresql", tables.article_entities).from_select(
        ["article_id", "entity_id", "count", "published"], source)


_PG_INSERT_LINKS = _pg_insert_links()


def _hit_rows(changed: Iterable[EnrichedArticle], stamp: datetime) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for item in changed:
        best: dict[str, dict[str, Any]] = {}
        for hit in item.topic_hits:
            topic = _clean(hit.topic)
            if topic in best and best[topic]["score"] >= hit.score:
                continue
            best[topic] = {
                "article_id": item.article.id,
                "topic": topic,
                "score": hit.score,
                "probability": hit.probability,
                "evidence": [
                    {"phrase": _clean(span.phrase), "start": span.start, "end": span.end,
                     "sentence": _clean(span.sentence), "rule": _clean(span.rule)}
                    for span in hit.evidence
                ],
                "topics_version": _clean(item.topics_version),
                "published": _utc(item.article.published),
                "created_at": stamp,
            }
        rows.extend(best.values())
    return rows


# --- statements --------------------------------------------------------------------------

def _upsert_articles(connection: Connection, changed: list[EnrichedArticle],
                     stamp: datetime) -> None:
    rows = [_article_row(item, stamp) for item in changed]
    key_columns = {column.name for column in tables.articles.primary_key.columns}
    # Wide rows (the article text): a statement per row in psycopg's pipeline costs the
    # server less than parsing them out of one JSON document (measured: 64 vs 92 us).
    _bulk_insert(connection, tables.articles, rows, update_on=key_columns,
                 one_json_parameter=False)


def _bulk_insert(connection: Connection, table: Table, rows: list[dict[str, Any]],
                 update_on: set[str] | None = None, one_json_parameter: bool = True) -> None:
    """INSERT ``rows`` in bulk. On a conflict with an existing row, overwrite it when
    ``update_on`` names the key columns, else leave it alone. All rows have the same keys.
    ``one_json_parameter`` picks the PostgreSQL method (see below).
    """
    if not rows:
        return
    names = list(rows[0])
    if connection.dialect.name == "postgresql" and one_json_parameter:
        # The whole chunk travels as ONE JSON parameter that the server turns back into
        # rows (json_to_recordset): the client's cost is one C-speed json.dumps, and the
        # SQL text stays the same size however many rows there are. Several times faster
        # than psycopg's statement-per-row executemany.
        source = func.json_to_recordset(cast(bindparam("rows", type_=Text()), JSON)).table_valued(
            *[column(name, _record_type(table.c[name].type)) for name in names]
        ).render_derived(with_types=True)
        statement = _on_conflict("postgresql", table, names, update_on).from_select(
            names, select(*[source.c[name] for name in names]))
        for chunk in _chunks(rows, ROWS_PER_INSERT):
            connection.execute(statement, {"rows": json.dumps(chunk, default=_json_default)})
        return
    if connection.dialect.name == "sqlite" and _sqlite_insert(connection, table, rows, names,
                                                               update_on):
        return
    statement = _on_conflict(connection, table, names, update_on)
    # psycopg's executemany sends the statements in one pipeline (and SQLAlchemy's runs
    # what `_sqlite_insert` leaves to it).
    for chunk in _chunks(rows, ROWS_PER_INSERT):
        connection.execute(statement, chunk)


@dataclass(frozen=True)
class _DriverInsert:
    """An INSERT compiled once for the driver: its SQL text, and for each of its
    positional parameters the row key and the column type's bind processor (None: the
    value goes as it is)."""

    sql: str
    keys: tuple[str, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]


# Compiled per (table, row keys, conflict key), once per process: a handful of statements.
# None is kept too: a statement left to SQLAlchemy is not compiled again for every batch.
_DRIVER_INSERTS: dict[tuple[str, tuple[str, ...], tuple[str, ...] | None],
                      _DriverInsert | None] = {}


def _driver_insert(connection: Connection, table: Table, names: list[str],
                   update_on: set[str] | None) -> _DriverInsert | None:
    """The SQLite INSERT of ``names`` into ``table``, compiled by SQLAlchemy as it would
    compile it for ``connection.execute``; None when its parameters are not exactly the
    row keys (a column default SQLAlchemy would fill in), which the caller leaves to
    SQLAlchemy."""
    key = (table.name, tuple(names), None if update_on is None else tuple(sorted(update_on)))
    if key not in _DRIVER_INSERTS:
        _DRIVER_INSERTS[key] = _compile_driver_insert(connection, table, names, update_on)
    return _DRIVER_INSERTS[key]


def _compile_driver_insert(connection: Connection, table: Table, names: list[str],
                           update_on: set[str] | None) -> _DriverInsert | None:
    dialect = connection.dialect
    compiled = _on_conflict(connection, table, names, update_on).compile(
        dialect=dialect, column_keys=names)
    order = tuple(compiled.positiontup or ())
    if sorted(order) != sorted(names):
        return None
    processors = tuple(compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
                       for name in order)
    return _DriverInsert(compiled.string, order, processors)


def _processed(process: Callable[[Any], Any], values: list[Any]) -> list[Any]:
    """``process`` of each value; a value that is the very object before it reuses that
    one's result (processors are pure): an article's entity links share its one
    ``published`` datetime, formatted once instead of ~45 times."""
    out: list[Any] = []
    last: Any = out  # no value is this list
    done: Any = None
    for value in values:
        if value is not last:
            last, done = value, process(value)
        out.append(done)
    return out


def _sqlite_insert(connection: Connection, table: Table, rows: list[dict[str, Any]],
                   names: list[str], update_on: set[str] | None) -> bool:
    """`_bulk_insert` on SQLite: the statement SQLAlchemy compiles, run by the driver's
    executemany (its loop is in C) on parameter tuples made here column by column with
    the same bind processors SQLAlchemy applies. SQLAlchemy's own executemany built a
    parameter dict and ran the processors row by row in Python: about half of the
    store's CPU per full-text article went there (~45 entity links a row each).
    False, having done nothing, when the statement's parameters are not the row keys
    (`_driver_insert`): the caller runs it through SQLAlchemy.
    """
    insert = _driver_insert(connection, table, names, update_on)
    if insert is None:
        return False
    columns: list[list[Any]] = []
    for name, process in zip(insert.keys, insert.processors, strict=True):
        values = [row[name] for row in rows]
        columns.append(values if process is None else _processed(process, values))
    parameters = list(zip(*columns, strict=True))
    for batch in _chunks(parameters, ROWS_PER_INSERT):
        connection.exec_driver_sql(insert.sql, list(batch))
    return True


def _on_conflict(dialect: str | Connection, table: Table, names: list[str],
                 update_on: set[str] | None) -> Any:
    if update_on is None:
        return insert_ignoring(dialect, table)
    return insert_or_update(dialect, table, key=sorted(update_on),
                            update=[name for name in names if name not in update_on])


def _record_type(column_type: TypeEngine[Any]) -> TypeEngine[Any]:
    # VARCHAR(n) in a record definition would silently truncate; TEXT lets the column's
    # own length check reject a value that is too long.
    if isinstance(column_type, String):
        return Text()
    return column_type


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot send {type(value).__name__} as JSON")


def _entity_ids(connection: Connection, wanted: list[EntityKey]
                ) -> tuple[dict[EntityKey, int], int]:
    """Ids of the ``wanted`` entities (sorted), creating the missing; and how many were."""
    if not wanted:
        return {}, 0
    ids = _lookup_entities(connection, wanted)
    missing = [key for key in wanted if key not in ids]
    if missing:
        # Looking up first keeps PostgreSQL's sequence from burning an id per conflict;
        # sorted inserts keep two writers from deadlocking on each other's new names.
        _bulk_insert(connection, tables.entities,
                     [{"name": name, "label": label} for name, label in missing])
        ids.update(_lookup_entities(connection, missing))
    return ids, len(missing)


def _lookup_entities(connection: Connection, keys: list[EntityKey]) -> dict[EntityKey, int]:
    e = tables.entities.c
    found: dict[EntityKey, int] = {}
    if connection.dialect.name == "postgresql":
        # Join on the (name, label) pairs sent as one JSON parameter, as in _bulk_insert.
        pairs = func.json_to_recordset(cast(bindparam("keys", type_=Text()), JSON)
                                       ).table_valued(column("name", Text()),
                                                      column("label", Text())
                                                      ).render_derived(with_types=True)
        query = select(e.id, e.name, e.label).join(
            pairs, (e.name == pairs.c.name) & (e.label == pairs.c.label))
        for chunk in _chunks(keys, ROWS_PER_INSERT):
            payload = json.dumps([{"name": name, "label": label} for name, label in chunk])
            for row in connection.execute(query, {"keys": payload}):
                found[(row.name, row.label)] = row.id
        return found
    wanted = set(keys)
    names = sorted({name for name, _label in keys})
    for some_names in _chunks(names):
        # By name only, which the (name, label) unique index serves; labels sorted out here.
        query = select(e.id, e.name, e.label).where(e.name.in_(some_names))
        for entity_id, name, label in connection.execute(query).all():  # fetchall
            key = (name, label)
            if key in wanted:
                found[key] = entity_id
    return found


def _chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
