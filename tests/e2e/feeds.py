"""Feeds served over HTTP for the end-to-end and fault tests, and the rules files.

- `serve_demo_feeds`: the real captured feeds of ``newswatch/demo/feeds`` (all but the
  on-topic demo feed) plus a feed carrying only the seed article, with a feeds.yaml.
- `GrowingFeeds`: many feeds of short items built from the real texts of the labelled
  set, each item with a URL of its own, revealed a few at a time as a live site publishes
  them, so a fault can strike while articles are still arriving.
"""

from __future__ import annotations

import json
import random
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import yaml

from schemas.ids import article_id, canonical_url
from tests.support.feed_server import FeedServer, Reply

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "newswatch" / "demo"
LABELLED = REPO / "tests" / "data" / "labelled"
SEED_GUID = "newswatch-seed-article-2021-10-21"
SEED_TITLE = ("After Issuing Warning About the Threat Posed by The Islamic State, Russia has "
              "Invited the Afghan Taliban to Hold Talks")
DEFAULT_TOPICS = {"islamic-state-threat": "is_threat", "drug-trafficking": "drug_trafficking",
                  "regime-recognition": "recognition"}


def write_feeds_file(path: Path, feeds: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump({"feeds": feeds}, sort_keys=False, allow_unicode=True),
                    encoding="utf-8")
    return path


def seed_feed() -> bytes:
    """An RSS feed whose one item is the seed article, exactly as the demo feed carries it."""
    document = (DEMO / "feeds" / "demo-ontopic.xml").read_text(encoding="utf-8")
    item = re.search(r"<item>.*?</item>", document, re.S)
    assert item is not None
    assert SEED_GUID in item.group(0)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel>'
            "<title>Seed source</title><link>https://example.invalid/seed</link>"
            f"<description>The seed article</description>\n{item.group(0)}\n"
            "</channel></rss>\n").encode()


def serve_demo_feeds(server: FeedServer, feeds_file: Path) -> list[str]:
    """Serve the real demo feeds and the seed feed; write feeds.yaml; return the feed ids
    of the real (unrelated) feeds."""
    config = yaml.safe_load((DEMO / "feeds.yaml").read_text(encoding="utf-8"))
    entries: list[dict[str, Any]] = []
    unrelated: list[str] = []
    for feed in config["feeds"]:
        if feed["id"] == "demo-ontopic":
            continue  # it mixes on-topic items with the seed: the seed comes on its own
        body = (DEMO / feed["url"]).read_bytes()
        entry = dict(feed, url=server.feed(f"/demo/{Path(feed['url']).name}", body))
        entries.append(entry)
        unrelated.append(feed["id"])
    entries.append({"id": "seed", "name": "Seed source", "language": "en",
                    "url": server.feed("/seed.xml", seed_feed())})
    write_feeds_file(feeds_file, entries)
    return unrelated


# --- many feeds of short real texts -------------------------------------------------------


def _short(text: str, limit: int) -> str:
    """The first sentences of ``text`` up to about ``limit`` characters."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text.rfind(". ", 0, limit)
    return text[:cut + 1] if cut > limit // 3 else text[:limit]


def labelled_texts(limit: int = 320) -> list[tuple[str, str]]:
    """(title, short text) of every item of the labelled sets: real news text."""
    out = []
    for name in ("articles.jsonl", "extra.jsonl"):
        for line in (LABELLED / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                out.append((row["title"], _short(row.get("text") or "", limit)))
    return out


@dataclass
class GrowingFeeds:
    """``feeds`` x ``per_feed`` items, each feed revealing its items evenly over
    ``reveal_s`` seconds after `begin` (newest first, all revealed items kept, as a feed
    with a long window). ETags change with the item count, so unchanged polls get 304."""

    feeds: int = 20
    per_feed: int = 100
    reveal_s: float = 30.0
    seed: int = 0
    began: float | None = None
    items: dict[str, list[dict[str, str]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        texts = labelled_texts()
        rng = random.Random(self.seed)
        now = datetime.now(UTC).replace(microsecond=0)
        for f in range(self.feeds):
            feed_id = f"wire-{f:02d}"
            rows = []
            for n in range(self.per_feed):
                title, text = texts[rng.randrange(len(texts))]
                rows.append({
                    "title": title,
                    "link": f"https://wire{f % 5}.example.org/{feed_id}/{n:04d}-story.html",
                    "guid": f"{feed_id}-{n}",
                    "description": text,
                    "pubDate": format_datetime(now - timedelta(seconds=self.per_feed - n)),
                })
            self.items[feed_id] = rows

    @property
    def total(self) -> int:
        return self.feeds * self.per_feed

    def expected_ids(self) -> set[str]:
        return {article_id(canonical_url(item["link"]))
                for rows in self.items.values() for item in rows}

    def begin(self) -> None:
        self.began = time.monotonic()

    def visible(self, feed_id: str) -> int:
        if self.began is None:
            return 0
        share = (time.monotonic() - self.began) / self.reveal_s
        return max(0, min(self.per_feed, int(share * self.per_feed) + 1))

    def document(self, feed_id: str, count: int) -> bytes:
        parts = ['<?xml version="1.0" encoding="utf-8"?>', '<rss version="2.0"><channel>',
                 f"<title>{feed_id}</title><link>https://example.org/{feed_id}</link>"]
        for item in reversed(self.items[feed_id][:count]):
            parts.append("<item>" + "".join(f"<{key}>{escape(value)}</{key}>"
                                            for key, value in item.items()) + "</item>")
        parts.append("</channel></rss>")
        return "\n".join(parts).encode("utf-8")

    def install(self, server: FeedServer, feeds_file: Path) -> Path:
        """Add every feed to ``server`` and write feeds.yaml."""
        entries = []
        for feed_id in self.items:
            entries.append({"id": feed_id, "name": f"Wire {feed_id}", "language": "en",
                            "url": server.add(f"/{feed_id}.xml", self._route(feed_id))})
        return write_feeds_file(feeds_file, entries)

    def _route(self, feed_id: str) -> Any:
        def route(headers: dict[str, str]) -> Reply:
            count = self.visible(feed_id)
            etag = f'"{feed_id}-{count}"'
            reply_headers = {"Content-Type": "application/rss+xml; charset=utf-8",
                             "ETag": etag}
            if headers.get("if-none-match") == etag:
                return Reply(304, b"", reply_headers)
            return Reply(200, self.document(feed_id, count), reply_headers)

        return route


# --- rules --------------------------------------------------------------------------------


def rules_file(path: Path, *, webhook_url: str | None = None, smtp_port: int | None = None,
               group_by: str = "[rule, topic]", throttle: str = "0s",
               delivery: str = "max_attempts: 100\n  backoff: 0.2s\n  max_backoff: 1s\n"
                                "  deadline: 1h") -> Path:
    """One rule per default topic, sent to the webhook and/or the SMTP server."""
    channels, names = [], []
    if webhook_url is not None:
        channels.append(f"  hook:\n    type: webhook\n    url: {webhook_url}\n    timeout: 3s")
        names.append("hook")
    if smtp_port is not None:
        channels.append(f"  mail:\n    type: email\n    host: 127.0.0.1\n    port: {smtp_port}\n"
                        "    security: none\n    from: newswatch@example.org\n"
                        "    to: [analyst@example.org]\n    timeout: 3s")
        names.append("mail")
    rules = "\n".join(
        f"  - name: {rule}\n    description: Alerts on {topic}\n    match:\n"
        f"      topics: [{topic}]\n    group_by: {group_by}\n    throttle: {throttle}\n"
        f"    channels: [{', '.join(names)}]"
        for rule, topic in DEFAULT_TOPICS.items())
    path.write_text(f"version: 1\nchannels:\n{chr(10).join(channels)}\ndelivery:\n"
                    f"  {delivery}\nrules:\n{rules}\n", encoding="utf-8")
    return path
