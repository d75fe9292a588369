"""Hostile messages for the enrich daemon (`consumers.enrich.daemon.serve` in a thread, a
real broker): poison goes to news.dlq with its original bytes and the error, counted and
logged, and the good messages around it are enriched and committed. Valid but hostile
articles (megabyte-long words, a flood of one-letter tokens, non-English text, markup and
control characters) are enriched within bounded work and without false topic hits.
"""

from __future__ import annotations

import base64
import json
import logging
import random
import string
import tracemalloc
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from consumers.enrich.enrich import BATCH_TOKENS, MAX_TOKENS, Enricher, article_document
from consumers.enrich.entities import MAX_NAME_CHARS
from newswatch.consumer_loop import MAX_DEAD_LETTER_VALUE_BYTES
from producers.entries import normalise
from producers.parse import parse
from schemas.feeds_file import FeedConfig
from schemas.messages import MAX_MESSAGE_BYTES, Article, EnrichedArticle
from schemas.topics import TopicNames
from tests.factories import make_article, make_enriched
from tests.hostile.harness import (
    DEMO_FEEDS,
    MESSAGES,
    Metrics,
    dead_letters,
    enrich_until_caught_up,
    log_lines,
    original,
    prefix,
    produce,
    read_all,
    repaired,
    settings,
)

pytestmark = pytest.mark.integration

SEED = DEMO_FEEDS.parent / "seed-article.txt"


def _foreign_articles() -> list[Article]:
    """German, Russian and Chinese items of real captured feeds, as the producer makes them."""
    out: list[Article] = []
    for name, count in (("heise-online-tech-germany.xml", 12),
                        ("oren-ru-regional-russia.xml", 10), ("qq-tech-china.xml", 1)):
        parsed = parse((DEMO_FEEDS / name).read_bytes())
        out += normalise(parsed, FeedConfig(id=f"foreign-{name[:4]}", url="https://x.example/"),
                         fetched_at=datetime.now(UTC))[:count]
    return out


def _poison() -> list[tuple[str, bytes | None, bytes | None, str]]:
    """(name, key, value, expected error type) of each poison message."""
    article = json.loads(make_article().to_bytes())
    wrong_version = {**article, "schema_version": 2}
    wrong_types = {"schema_version": 1, "id": 12345, "url": ["x"], "title": {"a": 1},
                   "published": "yesterday", "fetched_at": True, "feed_id": None}
    huge = make_article(content="All work and no play. " * 350_000).to_bytes()
    assert len(huge) > MAX_MESSAGE_BYTES
    return [
        ("not-json", b"p1", (MESSAGES / "not-json.txt").read_bytes(), "ValidationError"),
        ("invalid-utf8", b"p2", (MESSAGES / "invalid-utf8.bin").read_bytes(),
         "ValidationError"),
        ("json-null", b"p3", (MESSAGES / "json-null.json").read_bytes(), "ValidationError"),
        ("truncated", b"p4", (MESSAGES / "truncated.json").read_bytes(), "ValidationError"),
        ("wrong-schema-version", b"p5", json.dumps(wrong_version).encode(),
         "ValidationError"),
        ("missing-fields", b"p6", b'{"schema_version": 1, "title": "no id, no dates"}',
         "ValidationError"),
        ("wrong-types", b"p7", json.dumps(wrong_types).encode(), "ValidationError"),
        ("enriched-not-article", b"p8", make_enriched().to_bytes(), "ValidationError"),
        ("id-too-long", b"p9", json.dumps({**article, "id": "x" * 65}).encode(),
         "ValidationError"),
        ("deeply-nested", b"p10", b"[" * 100_000 + b"]" * 100_000, "ValidationError"),
        ("tombstone", b"p11", None, "ValidationError"),
        ("huge", b"p12", huge, "OversizedMessageError"),
        # Random, so no compression saves the dead letter that repeats it (twice).
        ("huge-key", random.Random(6).randbytes(700_000), b"{not json", "ValidationError"),
    ]


def _hostile_but_valid() -> dict[str, Article]:
    rng = random.Random(3)
    long_name = "X" + "".join(rng.choices(string.ascii_lowercase, k=50_000))
    return {
        "megabyte-word": make_article(title="A megabyte-long word", content="x" * 1_048_576),
        "one-letter-tokens": make_article(title="Tokens", content="a " * 500_000),
        "megabyte-name": make_article(title="Talks",
                                      content=f"President {long_name} Smith met officials."),
        "markup-and-controls": make_article(title="<script>alert(1)</script>\x00\x1b[31m",
                                            summary="a\x00b <img src=x onerror=alert(2)>"),
    }


def test_poison_is_dead_lettered_and_its_neighbours_are_enriched(
        kafka_bootstrap: str, enricher: Enricher,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    config = settings(kafka_bootstrap, prefix())
    names = TopicNames.with_prefix(config.kafka_topic_prefix)
    seed_lines = SEED.read_text().splitlines()
    seed = make_article(title=seed_lines[0], summary="\n".join(seed_lines[1:]))
    plain = [make_article(title=f"Council meets on the budget, item {i}") for i in range(6)]
    foreign = _foreign_articles()
    hostile = _hostile_but_valid()
    good: list[Article] = [seed, *plain, *foreign, *hostile.values()]
    poison = _poison()
    messages: list[tuple[bytes | None, bytes | None]] = []
    goods = iter(good)
    for _name, key, value, _error in poison:  # every poison message between good ones
        messages += [(a.id.encode(), a.to_bytes()) for a in (next(goods), next(goods))]
        messages.append((key, value))
    messages += [(a.id.encode(), a.to_bytes()) for a in goods]
    produce(kafka_bootstrap, names.articles, messages)
    counted = Metrics()

    enrich_until_caught_up(config, enricher)

    out = [EnrichedArticle.model_validate_json(r.value)
           for r in read_all(kafka_bootstrap, names.enriched, want=len(good))]
    assert sorted(e.article.id for e in out) == sorted(a.id for a in good)
    by_id = {e.article.id: e for e in out}
    # The neighbours are enriched as usual: the seed article still finds its three topics.
    assert {hit.topic for hit in by_id[seed.id].topic_hits} == {
        "is_threat", "drug_trafficking", "recognition"}
    # Non-English text: enriched without error and without a false topic hit.
    assert all(not by_id[a.id].topic_hits for a in foreign), [
        (by_id[a.id].article.title, by_id[a.id].topic_hits) for a in foreign
        if by_id[a.id].topic_hits]
    # NER called the 50,000-letter word a PERSON; no such "name" reaches the entities.
    assert all(len(entity.name) <= MAX_NAME_CHARS for e in out for entity in e.entities)

    letters = dead_letters(kafka_bootstrap, names.dlq, want=len(poison))
    by_key = {base64.b64decode(letter.key_b64 or ""): letter for letter in letters}
    for name, key, value, error in poison:
        letter = by_key[(key or b"")[:1024]]
        assert letter.stage == "enrich", name
        assert letter.source_topic == names.articles, name
        assert letter.error_type == error, (name, letter.error)
        assert letter.error, name
        if value is not None and len(value) > MAX_DEAD_LETTER_VALUE_BYTES:
            assert original(letter) == value[:MAX_DEAD_LETTER_VALUE_BYTES], name
            assert f"of {len(value)} bytes" in letter.error, name
        else:
            assert original(letter) == (value or b""), name
    assert "schema_version" in by_key[b"p5"].error
    assert f"over the {MAX_MESSAGE_BYTES} bytes" in by_key[b"p12"].error

    errors = Counter(error for *_rest, error in poison)
    for error, count in errors.items():
        assert counted.delta("newswatch_dead_lettered_total", stage="enrich",
                             error=error) == count, error
    assert counted.delta("newswatch_messages_processed_total", stage="enrich") == len(messages)
    assert counted.delta("newswatch_articles_enriched_total") == len(good)
    name, labels = repaired("enrich", "text_cut")
    assert counted.delta(name, **labels) == 2  # the megabyte word, the one-letter tokens
    assert len(log_lines(caplog.records, "newswatch.consumer_loop",
                         "dead-lettering message")) == len(poison)
    cut = log_lines(caplog.records, "consumers.enrich", "article text cut for enrichment")
    assert {getattr(r, "article_id", None) for r in cut} == {
        hostile["megabyte-word"].id, hostile["one-letter-tokens"].id}


def test_output_the_broker_refuses_as_too_large_is_dead_lettered_not_retried_forever(
        kafka_bootstrap: str, enricher: Enricher,
        caplog: pytest.LogCaptureFixture) -> None:
    # An input topic that accepts 4 MB messages, an output topic at the broker's default
    # 1 MB: a 2 MB article of incompressible text gets in, its enrichment cannot get out.
    # Before: MessageSizeTooLargeError was taken for a broker outage and retried forever,
    # stalling the partition; now it is that message's poison.
    config = settings(kafka_bootstrap, prefix())
    names = TopicNames.with_prefix(config.kafka_topic_prefix)
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(names.articles, 1, 1,
                                      topic_configs={"max.message.bytes": str(4 << 20)})])
    finally:
        admin.close()
    noise = base64.b64encode(random.Random(5).randbytes(1_500_000)).decode()
    big = make_article(title="Incompressible", content=noise)
    assert 1 << 20 < len(big.to_bytes()) < MAX_MESSAGE_BYTES
    before, after = make_article(title="Before"), make_article(title="After")
    produce(kafka_bootstrap, names.articles,
            [(a.id.encode(), a.to_bytes()) for a in (before, big, after)])
    counted = Metrics()

    enrich_until_caught_up(config, enricher, timeout_s=45)

    out = [EnrichedArticle.model_validate_json(r.value)
           for r in read_all(kafka_bootstrap, names.enriched, want=2)]
    assert sorted(e.article.id for e in out) == sorted([before.id, after.id])
    letter, = dead_letters(kafka_bootstrap, names.dlq, want=1)
    assert letter.error_type == "MessageSizeTooLargeError"
    assert original(letter) == big.to_bytes()[:MAX_DEAD_LETTER_VALUE_BYTES]
    assert counted.delta("newswatch_dead_lettered_total", stage="enrich",
                         error="MessageSizeTooLargeError") == 1
    assert not log_lines(caplog.records, "newswatch.consumer_loop", "unavailable")


def test_work_per_batch_is_bounded_by_tokens_not_by_the_batch(
        enricher: Enricher) -> None:
    # NER's memory grows with the tokens nlp.pipe holds at once (~16 KB each). Before the
    # bounds, 64 articles of "a a a ..." (100,000 characters, 50,000 tokens each) needed
    # ~50 GB in one call. The same mechanism at a small scale, so it runs in seconds:
    # six such articles, cut at 2,000 tokens each, piped at most 4,000 tokens at a time.
    assert MAX_TOKENS <= BATCH_TOKENS
    assert (enricher.max_tokens, enricher.batch_tokens) == (MAX_TOKENS, BATCH_TOKENS)
    small = Enricher(enricher.nlp, enricher.topics, max_tokens=2_000, batch_tokens=4_000)
    articles = [make_article(title=f"Flood {i}", content="a " * 500_000) for i in range(6)]
    repairs: Counter[str] = Counter()
    tracemalloc.start()
    try:
        out = small.enrich_many(articles, repairs)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"6 hostile articles, 2,000-token cut, 4,000 per pipe: peak {peak / 1e6:.0f} MB")
    assert [e.article.id for e in out] == [a.id for a in articles]
    assert repairs == Counter(text_cut=6)
    # Unbounded, one pipe call over 6 x 50,000 tokens measured ~4.8 GB.
    assert peak < 250 * 1024 * 1024


def test_evidence_offsets_still_point_into_the_text_of_a_cut_document(
        enricher: Enricher) -> None:
    small = Enricher(enricher.nlp, enricher.topics, max_tokens=300)
    title = "Islamic State claims attack"
    body = "Officials said the Islamic State claimed the attack. " * 100
    enriched = small.enrich(make_article(title=title, content=body))
    text = article_document(enriched.article).text
    spans: list[Any] = [span for hit in enriched.topic_hits for span in hit.evidence]
    assert spans
    for span in spans:
        assert text[span.start:span.end] == span.phrase
