"""The end-to-end section's publisher: feeds that gain on-topic items at a steady rate,
served over HTTP by the shared `FeedServer`, noting when a poll first returned each item."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from xml.sax.saxutils import escape

from consumers.enrich.enrich import Enricher
from producers.entries import normalise
from producers.parse import parse
from schemas.feeds_file import FeedConfig
from schemas.ids import article_id, canonical_url
from tests.support.daemons import REPO
from tests.support.feed_server import FeedServer, Reply


@dataclass
class SteadyFeeds:
    """Feeds that gain items at a steady rate, as a busy publisher's do.

    Items ``0..warm-1`` are there from the start; after `start_steady`, item ``warm + j``
    appears at ``began + j / rate``, in feed ``i % feeds``. A feed lists its newest
    ``window`` items, newest first, with an ETag that changes with each new item.
    `serve_steady_feeds` serves them and notes when a poll first returned each item.
    """

    stories: Sequence[tuple[str, str]]
    feeds: int
    warm: int
    steady: int
    rate: float
    token: str
    window: int = 20
    created: float = field(default_factory=time.time)
    began: float | None = None
    first_served: dict[int, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def link(self, item: int) -> str:
        return f"https://bench.example.org/{self.token}/world/story-{item}.html"

    def article_id(self, item: int) -> str:
        return article_id(canonical_url(self.link(item)))

    def added_at(self, item: int) -> float:
        if item < self.warm or self.began is None:
            return self.created
        return self.began + (item - self.warm) / self.rate

    def visible(self, now: float) -> int:
        if self.began is None or now < self.began:
            return self.warm
        return self.warm + min(self.steady, int((now - self.began) * self.rate) + 1)

    def start_steady(self) -> None:
        self.began = time.time()

    def served(self, items: Sequence[int], at: float) -> None:
        with self.lock:
            for item in items:
                self.first_served.setdefault(item, at)

    def item_xml(self, item: int) -> str:
        title, text = self.stories[item % len(self.stories)]
        body = "".join(f"<p>{escape(part)}</p>" for part in text.split("\n\n") if part.strip())
        published = format_datetime(datetime.fromtimestamp(self.added_at(item), UTC))
        return (f"<item><title>{escape(title)}</title><link>{self.link(item)}</link>"
                f"<guid isPermaLink=\"false\">{self.token}-{item}</guid>"
                f"<pubDate>{published}</pubDate><description>{escape(body)}</description>"
                "</item>")

    def document(self, number: int, now: float | None = None
                 ) -> tuple[bytes, str, list[int]]:
        """Feed ``number`` as it stands ``now``: the body, its ETag, the items in it."""
        count = self.visible(time.time() if now is None else now)
        items = [i for i in range(count - 1, -1, -1) if i % self.feeds == number]
        items = items[: self.window]
        xml = "".join([
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>',
            f"<title>Bench wire {number}</title><link>https://bench.example.org/</link>",
            *(self.item_xml(i) for i in items), "</channel></rss>"])
        return xml.encode(), f'"{number}-{items[0] if items else -1}"', items


def serve_steady_feeds(feeds: SteadyFeeds) -> FeedServer:
    """`SteadyFeeds` over HTTP on 127.0.0.1 (``/feed/<n>``, with ETags), in a thread of
    this process; each 200 notes when the poll first returned its items."""
    server = FeedServer()
    for number in range(feeds.feeds):
        server.add(f"/feed/{number}", _steady_route(feeds, number))
    return server


def _steady_route(feeds: SteadyFeeds, number: int) -> Callable[[dict[str, str]], Reply]:
    def route(headers: dict[str, str]) -> Reply:
        body, etag, items = feeds.document(number)
        if headers.get("if-none-match") == etag:
            return Reply(304, b"", {"ETag": etag})
        feeds.served(items, time.time())
        return Reply(200, body, {"ETag": etag,
                                 "Content-Type": "application/rss+xml; charset=utf-8"})

    return route


def feed_url(server: FeedServer, number: int) -> str:
    return server.url(f"/feed/{number}")


def on_topic_stories(enricher: Enricher, limit: int = 40) -> list[tuple[str, str]]:
    """Labelled on-topic items that, once through a feed and the producer's normalising,
    get at least one topic hit: each one the e2e feeds carry makes an alert."""
    candidates: list[tuple[str, str]] = []
    for path in sorted((REPO / "tests" / "data" / "labelled").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                if record.get("labels"):
                    candidates.append((record["title"], record["text"]))
    probe = SteadyFeeds(candidates, 1, len(candidates), 0, 1.0, "probe")
    body, _, items = probe.document(0)
    feed = FeedConfig(id="probe", url="http://127.0.0.1/probe")
    articles = normalise(parse(body), feed, fetched_at=datetime.now(UTC))
    by_id = {probe.article_id(item): candidates[item] for item in items}
    hits = enricher.enrich_many(articles)
    return [by_id[e.article.id] for e in hits if e.topic_hits and e.article.id in by_id][:limit]
