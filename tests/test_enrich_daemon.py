"""The enrich daemon against a real broker: round trip, poison to the DLQ, kill and
SIGTERM mid-stream (reprocesses, never skips; exits cleanly with offsets committed)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from consumers.enrich.daemon import GROUP_ID, serve
from consumers.enrich.enrich import Enricher
from newswatch.daemon import StopFlag
from newswatch.settings import Settings
from schemas.messages import Article, DeadLetter, EnrichedArticle
from schemas.topics import TopicNames
from tests.factories import make_article
from tests.support.daemons import DaemonProcess
from tests.support.waits import wait_for

pytestmark = pytest.mark.integration

SEED = Path(__file__).resolve().parents[1] / "newswatch" / "demo" / "seed-article.txt"
LABELLED = Path(__file__).parent / "data" / "labelled" / "articles.jsonl"


def _labelled_articles(copies: int = 1) -> list[Article]:
    rows = [json.loads(line) for line in LABELLED.read_text().splitlines()]
    return [
        make_article(url=f"https://labelled.example/{row['id']}/{copy}", title=row["title"],
                     summary=row["text"])
        for copy in range(copies) for row in rows
    ]


def _produce(bootstrap: str, topic: str, payloads: list[tuple[bytes, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for key, value in payloads:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()


def _read(bootstrap: str, topic: str, idle_ms: int = 3000) -> list[bytes]:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=idle_ms)
    values = [record.value for record in consumer]
    consumer.close()
    return values


def _wait_for(bootstrap: str, topic: str, count: int, timeout_s: float = 90) -> list[bytes]:
    """Read from the start until ``count`` messages arrived (or the time is up)."""
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    deadline = time.monotonic() + timeout_s
    values: list[bytes] = []
    try:
        while len(values) < count and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                values.extend(record.value for record in records)
    finally:
        consumer.close()
    return values


def _committed(bootstrap: str, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=GROUP_ID,
                             enable_auto_commit=False)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        return sum(consumer.committed(TopicPartition(topic, p)) or 0 for p in partitions)
    finally:
        consumer.close()


def test_articles_round_trip_with_hits_and_poison_goes_to_dlq(
    kafka_bootstrap: str, enricher: Enricher
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    names = TopicNames.with_prefix(prefix)
    seed_lines = SEED.read_text().splitlines()
    seed = make_article(title=seed_lines[0], summary="\n".join(seed_lines[1:]))
    good = [seed, *_labelled_articles()[:20]]
    poison = [
        b"not json at all",
        json.dumps({"schema_version": 99, "id": "x"}).encode(),
        json.dumps({"schema_version": 1, "title": "no id, no dates"}).encode(),
    ]
    payloads = [(a.id.encode(), a.to_bytes()) for a in good[:10]]
    payloads += [(b"poison", p) for p in poison]
    payloads += [(a.id.encode(), a.to_bytes()) for a in good[10:]]
    _produce(kafka_bootstrap, names.articles, payloads)

    settings = Settings(kafka_bootstrap_servers=kafka_bootstrap, kafka_topic_prefix=prefix)
    stop = StopFlag()
    thread = threading.Thread(target=serve, args=(settings, enricher, stop))
    thread.start()
    try:
        out = _wait_for(kafka_bootstrap, names.enriched, len(good))
        letters = _wait_for(kafka_bootstrap, names.dlq, len(poison))
    finally:
        stop.stop()
        thread.join(timeout=60)

    enriched = [EnrichedArticle.model_validate_json(v) for v in out]
    assert sorted(e.article.id for e in enriched) == sorted(a.id for a in good)
    by_id = {e.article.id: e for e in enriched}
    seed_hits = {hit.topic: hit for hit in by_id[seed.id].topic_hits}
    assert set(seed_hits) == {"is_threat", "drug_trafficking", "recognition"}
    assert all(hit.evidence for hit in seed_hits.values())
    assert by_id[seed.id].topics_version == enricher.topics_version
    assert any(e.name == "Islamic State" for e in by_id[seed.id].entities)

    dead = [DeadLetter.model_validate_json(v) for v in letters]
    assert sorted(d.value_b64 for d in dead) == sorted(
        __import__("base64").b64encode(p).decode() for p in poison)
    assert {d.stage for d in dead} == {"enrich"}
    assert _committed(kafka_bootstrap, names.articles) == len(payloads)


def _start_daemon(bootstrap: str, prefix: str, log: Path) -> DaemonProcess:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
           "NEWSWATCH_KAFKA_TOPIC_PREFIX": prefix, "NEWSWATCH_ENRICH_BATCH_SIZE": "16",
           "NEWSWATCH_LOG_FORMAT": "json"}
    return DaemonProcess("enrich", ("enrich",), env, log).start()


@pytest.mark.parametrize("kill_signal", [signal.SIGKILL, signal.SIGTERM])
def test_daemon_stopped_mid_stream_then_restarted_skips_nothing(
    kafka_bootstrap: str, tmp_path: Path, kill_signal: signal.Signals
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    names = TopicNames.with_prefix(prefix)
    articles = _labelled_articles(copies=10)  # 460 articles: a few seconds of work
    _produce(kafka_bootstrap, names.articles, [(a.id.encode(), a.to_bytes()) for a in articles])

    first = _start_daemon(kafka_bootstrap, prefix, tmp_path / "first.log")
    try:
        partial = _wait_for(kafka_bootstrap, names.enriched, 40)
        assert len(partial) >= 40, first.tail(40)
        first.send(kill_signal)
        code = first.stop(signalled=True)
    finally:
        first.kill()
    committed = _committed(kafka_bootstrap, names.articles)
    if kill_signal == signal.SIGTERM:
        assert code == 0, first.tail(40)
        # A clean stop commits what it finished: everything enriched so far is committed
        # or about to be replayed, and the commit is not ahead of the output.
        assert committed > 0
    assert committed <= len(_read(kafka_bootstrap, names.enriched))
    assert committed < len(articles), "the daemon finished before it was stopped"

    second = _start_daemon(kafka_bootstrap, prefix, tmp_path / "second.log")
    try:
        out = _wait_for(kafka_bootstrap, names.enriched, len(articles), timeout_s=120)
        # Wait for every article, not for a count: what the first daemon sent and did not
        # commit is sent again, so the count is reached before the last article is done.
        wanted = {a.id for a in articles}

        def every_article_out() -> bool:
            out[:] = _read(kafka_bootstrap, names.enriched, idle_ms=1000)
            return {EnrichedArticle.model_validate_json(v).article.id for v in out} >= wanted

        wait_for(every_article_out, 120, "every article enriched", check=second.check,
                 interval_s=0)
    finally:
        assert second.stop() == 0, second.tail(40)

    ids = [EnrichedArticle.model_validate_json(v).article.id for v in out]
    assert set(ids) == {a.id for a in articles}, "an article was skipped"
    print(f"{kill_signal.name}: committed {committed} before the stop; "
          f"{len(ids)} outputs for {len(articles)} articles "
          f"({len(ids) - len(set(ids))} replayed, absorbed downstream)")
