"""Hostile messages for the store daemon (`run_store` in a thread, a real broker, SQLite
and PostgreSQL): poison goes to news.dlq with its original bytes and the error, counted
and logged, and the messages around it are stored and committed. NUL characters, which
PostgreSQL text cannot hold, are removed, counted and logged, and the article is stored.
"""

from __future__ import annotations

import base64
import json
import logging
import random
import string
from collections import Counter

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy import exc as sa_exc

from consumers.store import store_batch
from newswatch.consumer_loop import MAX_DEAD_LETTER_VALUE_BYTES
from newswatch.db_errors import is_unavailable
from schemas import tables
from schemas.messages import MAX_MESSAGE_BYTES, EnrichedArticle
from schemas.topics import TopicNames
from tests.factories import make_article, make_enriched, make_entity, make_hit
from tests.hostile.harness import (
    MESSAGES,
    Metrics,
    dead_letters,
    log_lines,
    original,
    prefix,
    produce,
    repaired,
    settings,
    store_until_caught_up,
)

pytestmark = pytest.mark.integration


def _long_name(length: int = 50_000) -> str:
    return "X" + "".join(random.Random(4).choices(string.ascii_lowercase, k=length))


def _poison() -> list[tuple[str, bytes | None, bytes | None, str]]:
    """(name, key, value, expected error type) of each poison message."""
    good = json.loads(make_enriched().to_bytes())
    wrong_types = {**good, "entities": "many", "topic_hits": [{"topic": 1, "score": "high"}]}
    missing = {"schema_version": 1, "article": good["article"]}
    huge = make_enriched(content="All work and no play. " * 350_000).to_bytes()
    assert len(huge) > MAX_MESSAGE_BYTES
    return [
        ("not-json", b"p1", (MESSAGES / "not-json.txt").read_bytes(), "ValidationError"),
        ("invalid-utf8", b"p2", (MESSAGES / "invalid-utf8.bin").read_bytes(),
         "ValidationError"),
        ("json-null", b"p3", (MESSAGES / "json-null.json").read_bytes(), "ValidationError"),
        ("truncated", b"p4", (MESSAGES / "truncated.json").read_bytes(), "ValidationError"),
        ("wrong-schema-version", b"p5", json.dumps({**good, "schema_version": 7}).encode(),
         "ValidationError"),
        ("missing-fields", b"p6", json.dumps(missing).encode(), "ValidationError"),
        ("wrong-types", b"p7", json.dumps(wrong_types).encode(), "ValidationError"),
        ("article-not-enriched", b"p8", make_article().to_bytes(), "ValidationError"),
        ("deeply-nested", b"p9", b"[" * 100_000 + b"]" * 100_000, "ValidationError"),
        ("tombstone", b"p10", None, "UnstorableMessageError"),
        ("huge", b"p11", huge, "OversizedMessageError"),
        # NER once called a 50,000-letter "word" a PERSON: PostgreSQL's index on entity
        # names refuses it, and the store took that for an outage, retrying forever.
        ("entity-name-50k", b"p12",
         make_enriched(entities=[make_entity(_long_name(), "PERSON")]).to_bytes(),
         "UnstorableMessageError"),
    ]


def test_poison_is_dead_lettered_and_its_neighbours_are_stored(
        kafka_bootstrap: str, engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    config = settings(kafka_bootstrap, prefix())
    names = TopicNames.with_prefix(config.kafka_topic_prefix)
    good = [make_enriched(title=f"Good {i}") for i in range(20)]
    nul = make_enriched(title="Tali\x00ban talks", summary="a\x00b",
                        entities=[make_entity("Mos\x00cow", "GPE")],
                        topics=[make_hit("recognition", 0.9, phrases=("recog\x00nise",))])
    script = make_enriched(title="<script>alert(1)</script>", summary="\x1b[31m red")
    stored: list[EnrichedArticle] = [*good, nul, script]
    poison = _poison()
    messages: list[tuple[bytes | None, bytes | None]] = []
    goods = iter(stored)
    for _name, key, value, _error in poison:  # every poison message after a good one
        item = next(goods)
        messages += [(item.article.id.encode(), item.to_bytes()), (key, value)]
    messages += [(item.article.id.encode(), item.to_bytes()) for item in goods]
    produce(kafka_bootstrap, names.enriched, messages)
    counted = Metrics()

    stats = store_until_caught_up(config, engine, f"hostile-store-{names.enriched}")

    assert stats.dead_lettered == len(poison)
    assert stats.processed == len(messages)
    with engine.connect() as conn:
        rows = {row.id: row for row in conn.execute(select(tables.articles))}
        entity_names = set(conn.execute(select(tables.entities.c.name)).scalars())
    assert set(rows) == {item.article.id for item in stored}
    assert rows[nul.article.id].title == "Taliban talks"  # no NUL, on PostgreSQL too
    assert rows[nul.article.id].summary == "ab"
    assert "Moscow" in entity_names
    assert rows[script.article.id].title == "<script>alert(1)</script>"  # stored as text

    letters = dead_letters(kafka_bootstrap, names.dlq, want=len(poison))
    by_key = {base64.b64decode(letter.key_b64 or ""): letter for letter in letters}
    for name, key, value, error in poison:
        letter = by_key[key or b""]
        assert (letter.stage, letter.source_topic) == ("store", names.enriched), name
        assert letter.error_type == error, (name, letter.error)
        if value is not None and len(value) > MAX_DEAD_LETTER_VALUE_BYTES:
            assert original(letter) == value[:MAX_DEAD_LETTER_VALUE_BYTES], name
            assert f"of {len(value)} bytes" in letter.error, name
        else:
            assert original(letter) == (value or b""), name
    assert "schema_version" in by_key[b"p5"].error
    assert "entities.name" in by_key[b"p12"].error

    for error, count in Counter(error for *_rest, error in poison).items():
        assert counted.delta("newswatch_dead_lettered_total", stage="store",
                             error=error) == count, error
    name, labels = repaired("store", "nul_removed")
    assert counted.delta(name, **labels) == 1
    assert len(log_lines(caplog.records, "newswatch.consumer_loop",
                         "dead-lettering message")) == len(poison)
    nul_lines = log_lines(caplog.records, "consumers.store", "NUL characters removed")
    assert [getattr(r, "article_id", None) for r in nul_lines] == [nul.article.id]
    assert not log_lines(caplog.records, "newswatch.consumer_loop", "unavailable")


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_value_over_a_postgresql_limit_is_refused_data_not_an_outage(engine: Engine) -> None:
    # What the store's edge now refuses, written directly: PostgreSQL answers with SQLSTATE
    # 54000 ("program limit exceeded"), which psycopg files under OperationalError, the
    # class of a lost connection. Retrying it can never succeed, so it must not count as
    # the database being unavailable.
    item = make_enriched(entities=[make_entity(_long_name(), "PERSON")])
    with pytest.raises(sa_exc.OperationalError) as caught:
        store_batch(engine, [item])
    assert getattr(caught.value.orig, "sqlstate", "") == "54000"
    assert not is_unavailable(caught.value)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(tables.articles)).scalar() == 0
        assert conn.execute(text("select 1")).scalar() == 1  # the database is fine
