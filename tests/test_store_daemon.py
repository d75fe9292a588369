"""The store stage: decoding at the edge, the batch handler, and the daemon on a real broker.

Broker tests produce to uuid-named topics, run the real loop (`run_store`) in a thread
until its consumer group has committed everything, and look at the database and the
dead-letter topic. The outage test stops and starts a PostgreSQL server of its own.
"""

from __future__ import annotations

import base64
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer
from pydantic import ValidationError
from sqlalchemy import Engine, func, select, text

from consumers.store import store_batch
from consumers.store.daemon import StoreHandler, UnstorableMessageError, decode, run_store
from newswatch.consumer_loop import Backoff, LoopStats
from newswatch.daemon import StopFlag
from newswatch.db import make_engine
from newswatch.kafka_admin import ensure_topics
from newswatch.kafka_clients import make_producer
from newswatch.migrate import upgrade
from newswatch.settings import Settings
from schemas import tables
from schemas.messages import DeadLetter, EnrichedArticle
from schemas.topics import TopicNames
from tests.factories import make_article, make_enriched, make_entity, make_hit, realistic_batch
from tests.pg_server import PostgresServer
from tests.support.daemons import DaemonProcess
from tests.support.waits import lag, wait_for

ROOT = Path(__file__).resolve().parents[1]
FAST_GROUP = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000}


# --- decoding and the handler, without a broker ---------------------------------------

GOOD = make_enriched().to_bytes()


@pytest.mark.parametrize(("value", "error"), [
    (b"not json at all", ValidationError),
    (b'{"truncated": ', ValidationError),
    (b"[]", ValidationError),
    (GOOD.replace(b'"schema_version":2', b'"schema_version":3', 1), ValidationError),
    (make_article().to_bytes(), ValidationError),  # an Article, not an EnrichedArticle
    (GOOD.replace(b'"topics_version":', b'"topics_versio":', 1), ValidationError),
    (b"", UnstorableMessageError),
    (None, UnstorableMessageError),
    (make_enriched(topics=[make_hit("t" * 65)]).to_bytes(), UnstorableMessageError),
    (make_enriched(entities=[make_entity(label="L" * 17)]).to_bytes(), UnstorableMessageError),
    (make_enriched(feed_id="f" * 65).to_bytes(), UnstorableMessageError),
    (make_enriched(topics_version="v" * 65).to_bytes(), UnstorableMessageError),
    (make_enriched(published=datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5)))
                   ).to_bytes(), UnstorableMessageError),
    (make_enriched(enriched_at=datetime(9999, 12, 31, 23, tzinfo=timezone(-timedelta(hours=5)))
                   ).to_bytes(), UnstorableMessageError),
    (GOOD.replace(b'"score":0.8', b'"score":NaN', 1), ValidationError),
])
def test_decode_refuses_what_cannot_be_stored(value: bytes | None, error: type[Exception]) -> None:
    with pytest.raises(error):
        decode(value)


def test_decode_accepts_a_valid_message() -> None:
    assert decode(GOOD) == EnrichedArticle.model_validate_json(GOOD)


@dataclass(frozen=True)
class Record:
    """The fields of a kafka-python ConsumerRecord that the handler and the DLQ read."""

    value: bytes | None
    key: bytes | None = None
    topic: str = "news.enriched"
    partition: int = 0
    offset: int = 0


def _count(engine: Engine, table: Any = tables.articles) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_the_handler_stores_the_good_and_returns_the_poison(engine: Engine) -> None:
    good = [make_enriched() for _ in range(3)]
    records = [Record(g.to_bytes(), offset=i) for i, g in enumerate(good)]
    records.insert(1, Record(b"{oops", offset=9))

    poisons = StoreHandler(engine)(records)

    assert [p.record.offset for p in poisons] == [9]
    assert _count(engine) == 3


def test_a_message_the_database_refuses_is_poison_and_the_rest_is_stored(
    engine: Engine,
) -> None:
    # A rule of the database that decoding does not know: the batch fails as a whole, the
    # handler retries message by message and only the refused one is poison.
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE articles ADD CONSTRAINT ck_refuse "
                              "CHECK (title <> 'refuse me')"))
        else:
            conn.execute(text("CREATE TRIGGER refuse BEFORE INSERT ON articles "
                              "WHEN NEW.title = 'refuse me' "
                              "BEGIN SELECT RAISE(ABORT, 'refused'); END"))
    items = [make_enriched(), make_enriched(title="refuse me"), make_enriched()]
    records = [Record(item.to_bytes(), offset=i) for i, item in enumerate(items)]

    poisons = StoreHandler(engine)(records)

    assert [p.record.offset for p in poisons] == [1]
    assert _count(engine) == 2


# --- the daemon on a real broker --------------------------------------------------------

def _settings(bootstrap: str, prefix: str, database_url: str | None = None) -> Settings:
    return Settings(kafka_bootstrap_servers=bootstrap, kafka_topic_prefix=prefix,
                    database_url=database_url)


def _produce(settings: Settings, values: Sequence[tuple[bytes | None, bytes | None]]) -> None:
    producer = make_producer(settings)
    topic = TopicNames.with_prefix(settings.kafka_topic_prefix).enriched
    for key, value in values:
        producer.send(topic, key=key, value=value)
    producer.flush(timeout=60)
    producer.close()


def _messages(items: Sequence[EnrichedArticle]) -> list[tuple[bytes | None, bytes | None]]:
    return [(item.article.id.encode(), item.to_bytes()) for item in items]


@dataclass
class Daemon:
    """`run_store` in a thread, stopped by its flag; ``stats`` when it returned."""

    stop: StopFlag = field(default_factory=StopFlag)
    stats: LoopStats | None = None
    error: BaseException | None = None
    thread: threading.Thread | None = None

    def finish(self) -> LoopStats:
        self.stop.stop()
        assert self.thread is not None
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "the store loop did not stop"
        if self.error is not None:
            raise self.error
        assert self.stats is not None
        return self.stats


def _start(settings: Settings, engine: Engine, group: str, **options: Any) -> Daemon:
    daemon = Daemon()

    def body() -> None:
        try:
            daemon.stats = run_store(settings, daemon.stop, engine=engine, group_id=group,
                                     consumer_overrides=FAST_GROUP, **options)
        except BaseException as error:
            daemon.error = error

    daemon.thread = threading.Thread(target=body, name=f"store-{group}", daemon=True)
    daemon.thread.start()
    return daemon


def _run_until_caught_up(settings: Settings, engine: Engine, group: str,
                         timeout_s: float = 90, **options: Any) -> LoopStats:
    bootstrap = settings.kafka_bootstrap_servers
    assert bootstrap is not None
    topic = TopicNames.with_prefix(settings.kafka_topic_prefix).enriched
    daemon = _start(settings, engine, group, **options)
    try:
        wait_for(lambda: daemon.error is not None or lag(bootstrap, group, topic) == 0,
                  timeout_s, f"group {group} to commit all of {topic}")
    finally:
        stats = daemon.finish()
    return stats


def _snapshot(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        snap: dict[str, Any] = {
            table.name: conn.execute(select(func.count()).select_from(table)).scalar_one()
            for table in (tables.articles, tables.entities, tables.article_entities,
                          tables.topic_hits)
        }
        snap["hit_ids"] = sorted(conn.execute(select(tables.topic_hits.c.id)).scalars())
        snap["versions"] = {row.id: row.topics_version for row in conn.execute(
            select(tables.articles.c.id, tables.articles.c.topics_version))}
    return snap


@pytest.fixture
def prefix(topic: str) -> str:
    """A uuid prefix: this test's own news.enriched and news.dlq topics."""
    return f"{topic}."


@pytest.mark.integration
def test_replaying_the_topic_from_offset_zero_changes_nothing(
    kafka_bootstrap: str, prefix: str, group: str, engine: Engine
) -> None:
    settings = _settings(kafka_bootstrap, prefix)
    ensure_topics(settings, partitions=3)
    first = realistic_batch(80, seed=30, vocabulary=120)
    # Ten articles enriched again later with new topics: the replay must end where the
    # first run did, without flipping their hits back and forth.
    again = [make_enriched(item.article, topics_version="v2",
                           enriched_at=item.enriched_at + timedelta(hours=1),
                           entities=item.entities[:3], topics=[make_hit("recognition", 0.95)])
             for item in first[:10]]
    _produce(settings, _messages(first + again))

    stats = _run_until_caught_up(settings, engine, f"{group}-first", batch_size=25)
    after_first = _snapshot(engine)
    replay = _run_until_caught_up(settings, engine, f"{group}-replay", batch_size=25)

    assert stats.processed == replay.processed == 90
    assert after_first["articles"] == 80
    assert sum(v == "v2" for v in after_first["versions"].values()) == 10
    assert _snapshot(engine) == after_first


@pytest.mark.integration
def test_poison_goes_to_the_dead_letter_topic_and_the_rest_is_stored(
    kafka_bootstrap: str, prefix: str, group: str, engine: Engine
) -> None:
    settings = _settings(kafka_bootstrap, prefix)
    names = ensure_topics(settings, partitions=1)
    good = [make_enriched() for _ in range(30)]
    poison: list[tuple[bytes | None, bytes | None]] = [
        (b"p1", b"not json"),
        (b"p2", GOOD.replace(b'"schema_version":2', b'"schema_version":7', 1)),
        (b"p3", make_article().to_bytes()),
        (b"p4", make_enriched(topics=[make_hit("x" * 100)]).to_bytes()),
    ]
    values = _messages(good)
    for i, message in enumerate(poison):
        values.insert(5 + 7 * i, message)
    _produce(settings, values)

    stats = _run_until_caught_up(settings, engine, f"{group}-dlq", batch_size=10)

    assert stats.dead_lettered == 4
    assert _count(engine) == 30
    letters = _read_dead_letters(kafka_bootstrap, names.dlq, want=4)
    assert sorted(base64.b64decode(letter.value_b64) for letter in letters) == sorted(
        value for _key, value in poison if value is not None)
    assert {letter.stage for letter in letters} == {"store"}
    assert {letter.source_topic for letter in letters} == {names.enriched}
    by_key = {base64.b64decode(letter.key_b64 or ""): letter for letter in letters}
    assert by_key[b"p1"].error_type == "ValidationError"
    assert "schema_version" in by_key[b"p2"].error
    assert by_key[b"p4"].error_type == "UnstorableMessageError"


def _read_dead_letters(bootstrap: str, topic: str, want: int) -> list[DeadLetter]:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=5000)
    try:
        letters = [DeadLetter.model_validate_json(record.value) for record in consumer]
    finally:
        consumer.close()
    assert len(letters) == want
    return letters


@pytest.fixture
def outage_engine(disposable_postgres: PostgresServer) -> Iterator[Engine]:
    engine = make_engine(disposable_postgres.url, connect_args={"connect_timeout": 3})
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.mark.integration
def test_the_database_going_away_mid_run_loses_nothing(
    kafka_bootstrap: str, prefix: str, group: str, disposable_postgres: PostgresServer,
    outage_engine: Engine, caplog: pytest.LogCaptureFixture,
) -> None:
    settings = _settings(kafka_bootstrap, prefix)
    names = ensure_topics(settings, partitions=3)
    items = realistic_batch(400, seed=31, vocabulary=300)

    def feed() -> None:
        # Messages keep arriving before, during and after the outage.
        for start in range(0, len(items), 20):
            _produce(settings, _messages(items[start:start + 20]))
            time.sleep(0.1)

    feeder = threading.Thread(target=feed)
    caplog.set_level(logging.INFO, logger="newswatch.consumer_loop")
    daemon = _start(settings, outage_engine, f"{group}-outage", batch_size=20,
                    backoff=Backoff(initial_s=0.2, max_s=1.0))
    feeder.start()
    try:
        wait_for(lambda: _count(outage_engine) >= 60, 60, "the first articles")
        disposable_postgres.stop()
        time.sleep(3)  # the loop fails, rewinds and backs off meanwhile
        disposable_postgres.start()
        feeder.join(timeout=60)
        wait_for(lambda: lag(kafka_bootstrap, f"{group}-outage", names.enriched) == 0, 90,
                  "the store to catch up after the outage")
    finally:
        stats = daemon.finish()

    assert stats.retries >= 1
    snap = _snapshot(outage_engine)
    assert snap["articles"] == 400
    assert snap["article_entities"] == sum(len(i.entities) for i in items)
    assert snap["topic_hits"] == sum(len(i.topic_hits) for i in items)
    # Logged once when the database went away and once when it came back, not per retry.
    messages = [r.getMessage() for r in caplog.records if r.name == "newswatch.consumer_loop"]
    assert sum(m.startswith("output unavailable") for m in messages) == 1
    assert sum(m.startswith("output available again") for m in messages) == 1


@pytest.mark.integration
def test_sigterm_finishes_the_batch_commits_and_exits(
    kafka_bootstrap: str, prefix: str, group: str, engine: Engine, db_url: str,
    tmp_path: Path
) -> None:
    settings = _settings(kafka_bootstrap, prefix)
    names = ensure_topics(settings, partitions=3)
    items = realistic_batch(1500, seed=32, vocabulary=500)
    _produce(settings, _messages(items))
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
           "NEWSWATCH_KAFKA_TOPIC_PREFIX": prefix, "NEWSWATCH_DATABASE_URL": db_url,
           "NEWSWATCH_LOG_FORMAT": "json"}
    daemon = DaemonProcess("store", ("store", "--group", f"{group}-sigterm", "--batch-size",
                                     "50"), env, tmp_path / "store.log", cwd=ROOT).start()
    try:
        wait_for(lambda: _count(engine) >= 200, 90, "the daemon to store its first batches",
                 check=daemon.check)
        code = daemon.stop()
    finally:
        daemon.kill()
    assert code == 0, daemon.tail(40)
    assert daemon.logged("stop requested")
    stored = _count(engine)
    # Stopped mid-stream, and every stored article's offset is committed: a restart goes
    # on from exactly there.
    assert stored < len(items)
    assert len(items) - lag(kafka_bootstrap, f"{group}-sigterm", names.enriched) == stored


@pytest.mark.integration
def test_messages_stored_twice_by_two_runs_are_one_row(
    kafka_bootstrap: str, prefix: str, group: str, engine: Engine
) -> None:
    # Redelivery after a failed commit looks like this: the same records, a second time.
    settings = _settings(kafka_bootstrap, prefix)
    ensure_topics(settings, partitions=1)
    items = realistic_batch(20, seed=33, vocabulary=40)
    store_batch(engine, items[:10])
    _produce(settings, _messages(items))

    _run_until_caught_up(settings, engine, f"{group}-redelivery", batch_size=7)

    assert _snapshot(engine)["articles"] == 20
