"""Fixtures and helpers of the producer tests: a real HTTP server, feeds, settings, topics.

Import the fixtures into a test module (``from tests.producer_fixtures import
feed_server``) so pytest finds them; helpers are plain functions.
"""

from __future__ import annotations

import gzip
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from newswatch.db import make_engine
from newswatch.kafka_admin import ensure_topics
from newswatch.migrate import upgrade
from newswatch.settings import Settings
from schemas.messages import Article
from schemas.topics import TopicNames

# --- A real HTTP server on 127.0.0.1 ----------------------------------------------------


@dataclass
class Reply:
    """What the server answers: status, headers, body, and how slowly."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # before the status line
    chunked: bool = False  # no Content-Length: the body's size is unknown until read


Route = Callable[[dict[str, str]], Reply]


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # clients that hang up early (timeouts, size limits) are what tests do


class FeedServer:
    """A threaded http.server whose routes tests set; it records every request."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()
        self._server = _QuietServer((host, 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self._server.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def add(self, path: str, reply: Reply | Route) -> str:
        self.routes[path] = reply if callable(reply) else (lambda _headers: reply)
        return self.url(path)

    def feed(self, path: str, document: bytes, *, etag: str | None = None,
             last_modified: str | None = None, content_type: str = "application/rss+xml",
             extra: dict[str, str] | None = None) -> str:
        """Serve ``document`` with validators; a matching conditional GET gets 304."""

        def route(headers: dict[str, str]) -> Reply:
            reply_headers = {"Content-Type": content_type, **(extra or {})}
            if etag:
                reply_headers["ETag"] = etag
            if last_modified:
                reply_headers["Last-Modified"] = last_modified
            if (etag and headers.get("if-none-match") == etag) or (
                    last_modified and not etag
                    and headers.get("if-modified-since") == last_modified):
                return Reply(304, b"", reply_headers)
            return Reply(200, document, reply_headers)

        return self.add(path, route)

    def hits(self, path: str) -> list[dict[str, str]]:
        return [headers for p, headers in self.requests if p == path]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                with server._lock:
                    server.requests.append((self.path, headers))
                    server.active += 1
                    server.max_active = max(server.max_active, server.active)
                try:
                    route = server.routes.get(self.path)
                    reply = route(headers) if route else Reply(404, b"not found")
                    if reply.delay_s:
                        time.sleep(reply.delay_s)
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    if reply.chunked:
                        self.send_header("Transfer-Encoding", "chunked")
                        self.end_headers()
                        for start in range(0, len(reply.body), 65536):
                            chunk = reply.body[start:start + 65536]
                            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                        self.wfile.write(b"0\r\n\r\n")
                    else:
                        self.send_header("Content-Length", str(len(reply.body)))
                        self.end_headers()
                        self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeouts, size limits): expected in tests
                finally:
                    with server._lock:
                        server.active -= 1

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    server = FeedServer()
    try:
        yield server
    finally:
        server.close()


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


__all__ = ["TopicNames", "feed_server"]
