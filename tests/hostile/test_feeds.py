"""Hostile feeds through the producer's real path: a local HTTP server, `refresh`, Kafka.

Each feed of the corpus carries good items around its hostile one. For each: the refresh
ends as expected (published, or failed for what is not a feed at all), the good items are
on news.articles with their text intact, the repair or error is logged with the feed's
id and counted (``newswatch_input_repaired_total`` / ``newswatch_feed_errors_total``).
A feed is a document, not a message, so nothing of it goes to the dead-letter topic.
"""

from __future__ import annotations

import logging
import random
import re
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from newswatch.daemon import StopFlag
from newswatch.db import make_engine
from newswatch.settings import Settings
from producers.daemon import LoopState, build_context, close_context, one_pass
from producers.entries import (
    MAX_CONTENT_CHARS,
    MAX_GUID_CHARS,
    MAX_NAMES,
    MAX_SUMMARY_CHARS,
    MAX_TITLE_CHARS,
)
from producers.refresh import Context, Outcome, refresh
from producers.state import Store
from schemas import tables
from schemas.feeds_file import FeedConfig, FeedsFile
from schemas.messages import Article
from tests.hostile.harness import DEMO_FEEDS, FEEDS, Metrics, log_lines, repaired
from tests.producer_fixtures import articles_topic, producer_settings, read_topic, unique_prefix
from tests.support.feed_server import FeedServer

pytestmark = pytest.mark.integration

GOOD_TITLE = "Zürich, café, naïve, Łódź"
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
ACTIVE = re.compile(r"<\s*script|alert\(|onerror|onload|javascript:", re.IGNORECASE)


class Pipeline:
    """One producer context (HTTP client, Kafka producer, SQLite state) for the module."""

    def __init__(self, config: Settings) -> None:
        self.settings = config
        self.engine = make_engine(config.sqlalchemy_url())
        tables.metadata.create_all(self.engine)
        self.store = Store(self.engine)
        self.ctx: Context = build_context(config, self.store, StopFlag())

    def refresh(self, feed: FeedConfig) -> Outcome:
        self.store.sync_feeds([feed])
        return refresh(feed, self.ctx)

    def published(self, feed_id: str) -> dict[str, Article]:
        """What news.articles holds for ``feed_id``, by GUID (or URL)."""
        topic = f"{self.settings.kafka_topic_prefix}news.articles"
        return {article.guid or article.url or article.id: article
                for _key, article in read_topic(self.settings.kafka_bootstrap_servers or "",
                                                topic) if article.feed_id == feed_id}

    def close(self) -> None:
        close_context(self.ctx)
        self.engine.dispose()


@pytest.fixture(scope="module")
def pipeline(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[Pipeline]:
    db = tmp_path_factory.mktemp("hostile-feeds") / "producer.db"
    config = producer_settings(kafka_bootstrap, f"sqlite:///{db}", unique_prefix())
    articles_topic(config)
    pipe = Pipeline(config)
    try:
        yield pipe
    finally:
        pipe.close()


# --- the corpus, case by case ---------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A corpus feed, what its refresh must do and what must be true of its articles."""

    source: Path
    repairs: tuple[str, ...] = ()  # kinds counted at least once
    log: str = "feed input repaired"
    good: tuple[str, ...] = ("good-1", "good-2")  # GUIDs that must be published intact
    status: str = "published"
    error_kind: str | None = None  # for a failed refresh: newswatch_feed_errors_total kind
    check: Callable[[dict[str, Article]], None] | None = None
    content_type: str = "application/rss+xml"
    extra: dict[str, str] = field(default_factory=dict)


def _no_expansion(articles: dict[str, Article]) -> None:
    bomb = articles["hostile-1"]
    assert "lollol" not in bomb.title + bomb.summary
    assert "aaaaaaaa" not in bomb.title + bomb.summary
    assert "root:" not in bomb.title + bomb.summary  # /etc/passwd was not read


def _no_active_content(articles: dict[str, Article]) -> None:
    assert len(articles) == 6
    for article in articles.values():
        for text in (article.title, article.summary, article.content, article.url or ""):
            assert not ACTIVE.search(text), (article.guid, text)
    assert articles["hostile-escaped"].title == "Escaped script title"
    assert articles["hostile-cdata"].title == "CDATA script title"
    assert articles["hostile-double-escaped"].title == "Double escaped title"
    assert articles["hostile-js-link"].url is None  # not a URL: identified by its GUID


def _no_control_characters(articles: dict[str, Article]) -> None:
    assert {"hostile-raw", "hostile-refs"} <= set(articles)
    for article in articles.values():
        for text in (article.title, article.summary, article.content, *article.tags):
            assert not CONTROL.search(text), (article.guid, text)
    assert articles["hostile-refs"].title == "Refs NUL SOH ESC DEL end"


def _absurd_dates_replaced(articles: dict[str, Article]) -> None:
    assert len(articles) == 9
    good = articles["good-1"]
    assert good.published == datetime(2024, 1, 1, 10, tzinfo=UTC)
    assert not good.published_estimated
    for guid, article in articles.items():
        if guid.startswith("hostile-"):
            assert article.published_estimated, guid
            assert article.published == article.fetched_at, guid


def _accents_kept(*titles: str) -> Callable[[dict[str, Article]], None]:
    def check(articles: dict[str, Article]) -> None:
        found = {article.title for article in articles.values()}
        for title in titles:
            assert title in found, (title, found)
        assert not any("Ã" in title for title in found), found  # no mojibake
    return check


CASES = [
    Case(FEEDS / "malformed-truncated.xml", ("xml_recovered",)),
    Case(FEEDS / "malformed-mismatched-tags.xml", ("xml_recovered",)),
    Case(FEEDS / "malformed-not-a-feed.xml", status="failed", error_kind="parse",
         log="feed poll failed: not a feed", good=()),
    Case(FEEDS / "malformed-invalid-utf8-byte.xml", ("invalid_bytes",),
         check=_accents_kept(f"Good item 1: {GOOD_TITLE}", f"Good item 2: {GOOD_TITLE}")),
    Case(FEEDS / "encoding-declares-utf8-is-latin1.xml", ("encoding_mismatch",),
         check=_accents_kept("São Paulo: ação e reação", "Zürich café naïve")),
    Case(FEEDS / "encoding-utf16-bom-declares-utf8.xml", ("encoding_mismatch",),
         check=_accents_kept("中文新闻：世纪华通", f"Good item 2: {GOOD_TITLE}")),
    # Real captures, read in place (see corpus/README.md).
    Case(DEMO_FEEDS / "dailymail-us-home.xml", ("encoding_mismatch",), good=(),
         check=_accents_kept()),
    Case(DEMO_FEEDS / "uol-noticias-brazil.xml", ("encoding_guessed",), good=(),
         check=_accents_kept("Ibope: Bolsonaro perde de Haddad, Ciro e Alckmin em "
                             "simulações de 2º turno")),
    Case(FEEDS / "entity-billion-laughs.xml", ("entities_removed",), check=_no_expansion),
    Case(FEEDS / "entity-billion-laughs-one-line.xml", ("entities_removed",),
         check=_no_expansion),
    Case(FEEDS / "entity-quadratic-blowup.xml", ("entities_removed",), check=_no_expansion),
    Case(FEEDS / "entity-xxe.xml", ("entities_removed",), check=_no_expansion),
    Case(FEEDS / "script-tags.xml", ("script_removed",), check=_no_active_content),
    Case(FEEDS / "control-chars.xml", ("control_chars",), check=_no_control_characters),
    Case(FEEDS / "absurd-dates.xml", ("absurd_date",), good=("good-1",),
         check=_absurd_dates_replaced),
]


def _feed_id(path: Path) -> str:
    return "h-" + path.stem[:60]


@pytest.mark.parametrize("case", CASES, ids=[case.source.stem for case in CASES])
def test_hostile_feed_costs_only_its_hostile_part(
        case: Case, pipeline: Pipeline, feed_server: FeedServer,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    feed_id = _feed_id(case.source)
    url = feed_server.feed(f"/{case.source.name}", case.source.read_bytes(),
                           content_type=case.content_type, extra=case.extra)
    counted = Metrics()

    outcome = pipeline.refresh(FeedConfig(id=feed_id, url=url))

    assert outcome.status == case.status, outcome
    articles = pipeline.published(feed_id)
    if case.status == "published":
        assert outcome.published == len(articles) > 0
    else:
        assert articles == {}
    for guid in case.good:
        assert guid in articles, (guid, sorted(articles))
        assert GOOD_TITLE in articles[guid].title or case.check is not None
    if case.check is not None:
        case.check(articles)
    for kind in case.repairs:
        name, labels = repaired("producer", kind)
        assert counted.delta(name, **labels) >= 1, kind
    if case.error_kind is not None:
        assert counted.delta("newswatch_feed_errors_total", feed=feed_id,
                             kind=case.error_kind) == 1
        assert counted.delta("newswatch_feed_polls_total", feed=feed_id, outcome="failed") == 1
    lines = log_lines(caplog.records, "producers", case.log)
    assert lines, [r.getMessage() for r in caplog.records]
    assert all(getattr(r, "feed", None) == feed_id for r in lines)
    assert all(r.levelno >= logging.WARNING for r in lines)


# --- generated: megabyte-long words and oversized item fields ----------------------------


def _oversized_feed() -> bytes:
    rng = random.Random(8)
    word = "x" * 1_048_576  # one megabyte-long word
    noise = "".join(rng.choices(string.ascii_letters + string.digits, k=1_200_000))
    items = [
        "<item><title>Good item 1: Zürich, café, naïve, Łódź</title>"
        "<link>https://hostile.example/oversized/good-1</link><guid>good-1</guid>"
        "<pubDate>Mon, 01 Jan 2024 10:00:00 GMT</pubDate></item>",
        # A megabyte-long word in every text field, and as a date.
        f"<item><title>Word {word}</title><link>https://hostile.example/oversized/word</link>"
        f"<guid>hostile-word</guid><description>{word}</description>"
        f'<content:encoded xmlns:content="http://purl.org/rss/1.0/modules/content/">'
        f"{word} {word}</content:encoded><pubDate>{word}</pubDate></item>",
        # Fields feeds leave unbounded: a 1.2 MB random GUID (lz4 cannot shrink it below
        # Kafka's 1 MB), a 1 MB link, 5,000 categories, a 1 MB author.
        f"<item><title>Oversized fields</title><link>https://hostile.example/{'p/' * 500_000}"
        f"</link><guid>{noise}</guid><author>{noise[:1_000_000]}</author>"
        + "".join(f"<category>tag-{i}-{noise[i:i + 300]}</category>" for i in range(5_000))
        + "</item>",
        "<item><title>Good item 2: Zürich, café, naïve, Łódź</title>"
        "<link>https://hostile.example/oversized/good-2</link><guid>good-2</guid>"
        "<pubDate>Tue, 02 Jan 2024 10:00:00 GMT</pubDate></item>",
    ]
    return ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>Oversized {word[:10]}</title><link>https://hostile.example/</link>"
            + "".join(items) + "</channel></rss>").encode()


def test_megabyte_words_and_oversized_fields_are_cut_and_the_feed_still_publishes(
        pipeline: Pipeline, feed_server: FeedServer,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    body = _oversized_feed()
    assert len(body) > 4_000_000
    url = feed_server.feed("/oversized", body)
    counted = Metrics()

    outcome = pipeline.refresh(FeedConfig(id="h-oversized", url=url))

    # Before the field bounds, the 1.2 MB GUID made a message Kafka refused: the whole
    # feed failed ("Kafka refused an article as too large") on every poll, good items too.
    assert outcome.status == "published", outcome
    articles = pipeline.published("h-oversized")
    assert {"good-1", "good-2", "hostile-word"} <= set(articles), sorted(articles)
    assert len(articles) == 4
    word = articles["hostile-word"]
    assert len(word.title) <= MAX_TITLE_CHARS + 1
    assert len(word.summary) <= MAX_SUMMARY_CHARS + 1
    assert len(word.content) <= MAX_CONTENT_CHARS + 1
    assert word.published_estimated
    fields = next(a for guid, a in articles.items() if guid not in {"good-1", "good-2",
                                                                   "hostile-word"})
    assert fields.url is None  # a megabyte "URL" is no URL: the GUID identifies the item
    assert fields.guid is not None
    assert len(fields.guid) <= MAX_GUID_CHARS + 1
    assert len(fields.tags) <= MAX_NAMES
    assert len(fields.authors) <= MAX_NAMES
    assert all(len(name) <= 201 for name in (*fields.tags, *fields.authors))
    assert all(len(a.to_bytes()) < 1_000_000 for a in articles.values())
    # Two items, and the document's 1 MB <author> (cut before feedparser: its e-mail regex
    # took quadratic time, hours for a megabyte).
    name, labels = repaired("producer", "clipped")
    assert counted.delta(name, **labels) == 3
    assert log_lines(caplog.records, "producers.refresh", "clipped=3")


# --- non-English feeds (real captures) ----------------------------------------------------


@pytest.mark.parametrize("name", ["heise-online-tech-germany.xml",
                                  "oren-ru-regional-russia.xml", "qq-tech-china.xml"])
def test_non_english_feeds_publish_every_item_readably(
        name: str, pipeline: Pipeline, feed_server: FeedServer) -> None:
    body = (DEMO_FEEDS / name).read_bytes()
    url = feed_server.feed(f"/{name}", body, content_type="text/xml")
    outcome = pipeline.refresh(FeedConfig(id=_feed_id(Path(name)), url=url))
    assert outcome.status == "published"
    articles = pipeline.published(_feed_id(Path(name)))
    assert len(articles) == outcome.items > 0
    text = " ".join(a.title for a in articles.values())
    assert "\ufffd" not in text
    assert "Ã" not in text
    assert re.search("[äöüß]|[а-яё]|[\u4e00-\u9fff]", text)


# --- one pass over every hostile feed at once: the neighbours publish ------------------


def test_one_pass_over_all_hostile_feeds_publishes_the_good_feed(
        kafka_bootstrap: str, tmp_path: Path, feed_server: FeedServer) -> None:
    config = producer_settings(kafka_bootstrap, f"sqlite:///{tmp_path / 'p.db'}",
                               unique_prefix(), producer_concurrency=4)
    articles_topic(config)
    pipe = Pipeline(config)
    try:
        feeds = [FeedConfig(id=_feed_id(case.source),
                            url=feed_server.feed(f"/all/{case.source.name}",
                                                 case.source.read_bytes()))
                 for case in CASES]
        good = (DEMO_FEEDS / "guardian-us-edition.xml").read_bytes()
        feeds.append(FeedConfig(id="good-neighbour", url=feed_server.feed("/all/good", good)))
        pipe.store.sync_feeds(feeds)
        loop = LoopState(config=FeedsFile(feeds=tuple(feeds)))
        counted = Metrics()

        assert one_pass(pipe.ctx, pipe.store, loop, broker_wait_s=30) == 0

        states = pipe.store.states()
        assert states["good-neighbour"].error_count == 0
        assert len(pipe.published("good-neighbour")) == 55
        failed = sorted(feed_id for feed_id, state in states.items() if state.error_count)
        assert failed == ["h-malformed-not-a-feed"]
        assert counted.delta("newswatch_feed_errors_total", feed="h-malformed-not-a-feed",
                             kind="parse") == 1
        published = sum(counted.delta("newswatch_articles_published_total", feed=feed.id)
                        for feed in feeds)
        assert published == sum(len(pipe.published(feed.id)) for feed in feeds)
    finally:
        pipe.close()


def test_a_date_over_a_day_ahead_is_replaced_and_one_within_a_day_is_kept(
        pipeline: Pipeline, feed_server: FeedServer) -> None:
    # A date a day and five minutes ahead is refused; one 23 hours ahead is kept (clocks
    # and time zones drift; a day is the tolerance the contract states).
    now = datetime.now(UTC)
    ahead = (now + timedelta(days=1, minutes=5)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    near = (now + timedelta(hours=23)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    body = (f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
            f"<item><title>a</title><link>https://hostile.example/ahead</link>"
            f"<pubDate>{ahead}</pubDate></item><item><title>b</title>"
            f"<link>https://hostile.example/near</link><pubDate>{near}</pubDate></item>"
            "</channel></rss>").encode()
    url = feed_server.feed("/ahead", body)
    pipeline.refresh(FeedConfig(id="h-ahead", url=url))
    articles = {a.url: a for a in pipeline.published("h-ahead").values()}
    assert articles["https://hostile.example/ahead"].published_estimated
    assert not articles["https://hostile.example/near"].published_estimated
