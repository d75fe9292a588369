"""Helpers of the producer tests: feeds, settings, topics (the HTTP server they are served
from is `tests.support.feed_server`; the ``feed_server`` fixture is in ``tests/conftest.py``).
"""

from __future__ import annotations

import gzip
import time
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from newswatch.db import make_engine
from newswatch.kafka_admin import ensure_topics
from newswatch.migrate import upgrade
from newswatch.settings import Settings
from schemas.messages import Article

# --- Feeds ---------------------------------------------------------------------------------

BASE_DATE = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def rss(items: list[dict[str, str]], *, title: str = "Test feed",
        link: str = "https://news.example.org/", ttl: int | None = None,
        prolog: str = "") -> bytes:
    """An RSS 2.0 document; each item has title/link/guid/description/pubDate keys."""
    parts = ['<?xml version="1.0" encoding="utf-8"?>', prolog,
             '<rss version="2.0"><channel>', f"<title>{escape(title)}</title>",
             f"<link>{escape(link)}</link>"]
    if ttl is not None:
        parts.append(f"<ttl>{ttl}</ttl>")
    for item in items:
        parts.append("<item>")
        for key in ("title", "link", "guid", "description", "pubDate"):
            if key in item:
                parts.append(f"<{key}>{escape(item[key])}</{key}>")
        parts.append("</item>")
    parts.append("</channel></rss>")
    return "\n".join(part for part in parts if part).encode("utf-8")


def news_items(feed: str, count: int, *, start: int = 0, host: str = "news.example.org",
               words: int = 40) -> list[dict[str, str]]:
    """``count`` distinct items for ``feed``, like a news site's (title, teaser, date)."""
    teaser = " ".join(f"word{n}" for n in range(words))
    return [{
        "title": f"{feed} story {i}: officials meet to discuss the situation",
        "link": f"https://{host}/{feed}/story-{i}.html?utm_source=rss",
        "guid": f"{feed}-{i}",
        "description": f"<p>Story {i} of {feed}. {teaser}</p>",
        "pubDate": format_datetime(BASE_DATE + timedelta(minutes=i)),
    } for i in range(start, start + count)]


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6)


# --- Settings, topics, databases --------------------------------------------------------


def producer_settings(bootstrap: str, db_url: str, prefix: str, **overrides: Any) -> Settings:
    """Settings for one test: its own topic prefix and database, short timeouts."""
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": bootstrap, "kafka_topic_prefix": prefix,
        "database_url": db_url, "producer_connect_timeout_s": 2.0,
        "producer_read_timeout_s": 2.0, "producer_total_timeout_s": 5.0,
        "producer_delivery_timeout_s": 10.0, "producer_default_interval_s": 600.0,
        # Article pages are served on loopback here: the egress policy must allow it.
        "producer_fulltext_allow": "127.0.0.1",
    }
    values.update(overrides)
    return Settings(**values)


def unique_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}."


def articles_topic(settings: Settings) -> str:
    """Create the pipeline's topics (the default partition count) under the settings' prefix."""
    return ensure_topics(settings).articles


def migrated_sqlite(path: Path) -> str:
    """A SQLite database migrated to head (the daemon refuses an unmigrated one)."""
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


def read_topic(bootstrap: str, topic: str) -> list[tuple[str, Article]]:
    """Every message on ``topic`` from the beginning, as (key, article)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in partitions]
        if not tps:
            return []
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        out: list[tuple[str, Article]] = []
        deadline = time.monotonic() + 30
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            assert time.monotonic() < deadline, "could not read the topic to its end"
            for records in consumer.poll(timeout_ms=500).values():
                out.extend((r.key.decode(), Article.model_validate_json(r.value))
                           for r in records)
        return out
    finally:
        consumer.close()


def topic_size(bootstrap: str, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return sum(consumer.end_offsets(tps).values()) if tps else 0
    finally:
        consumer.close()


class TopicWatch:
    """How many messages the topic holds, asked cheaply and often."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._consumer = KafkaConsumer(bootstrap_servers=bootstrap)
        partitions = self._consumer.partitions_for_topic(topic) or set()
        self._tps = [TopicPartition(topic, p) for p in partitions]

    def size(self) -> int:
        return sum(self._consumer.end_offsets(self._tps).values())

    def close(self) -> None:
        self._consumer.close()
