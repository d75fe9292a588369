"""Normalisation of feed items: ids, URLs, plain text, dates, languages (tables of cases)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from producers.dates import parse_loose_date
from producers.decode import decode_feed
from producers.entries import normalise, normalise_entry, normalise_language
from producers.parse import ParsedFeed, parse
from producers.text import clip, html_to_text, one_line, plain_to_text
from schemas.feeds_file import FeedConfig
from schemas.ids import article_id
from tests.producer_fixtures import rss

FETCHED = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
FEED = FeedConfig(id="f1", url="https://news.example.org/rss", name="Example News",
                  tags=("world",))


@pytest.mark.parametrize(("html", "text"), [
    ("<p>One</p><p>Two &amp; three</p>", "One\n\nTwo & three"),
    ("Tom &amp; Jerry&nbsp;&nbsp;run   fast", "Tom & Jerry run fast"),
    ("<b>Bold</b> and <i>italic</i> stay inline", "Bold and italic stay inline"),
    ("Line one<br>line two<br/>line three", "Line one\n\nline two\n\nline three"),
    ("<script>alert('x')</script><style>p{color:red}</style>Visible", "Visible"),
    ('Teaser<div class="feedflare"><a href="x">Share <b>this</b></a></div>', "Teaser"),
    ('<p>News</p><img src="pixel.gif" width="1" height="1"/>', "News"),
    ("&#8220;Quoted&#8221; &eacute;t&eacute; &#x263A;", "“Quoted” été ☺"),
    ("Plain\n\nparagraphs\nkept", "Plain\n\nparagraphs\n\nkept"),
    ("<p>  lots \n\t of   space </p>", "lots of space"),
    ("zero\u200bwidth soft\u00adhyphen", "zerowidth softhyphen"),
    ("<ul><li>a</li><li>b</li></ul>", "a\n\nb"),
    ("<p>unclosed <b>bold", "unclosed bold"),
    ("", ""),
])
def test_html_to_text(html: str, text: str) -> None:
    assert html_to_text(html) == text


def test_invisible_and_control_characters_are_removed_as_translate_did() -> None:
    # The cleaning removes them with a regex now (faster than str.translate on non-ASCII
    # text); every code point below U+3000 must come out as the dict-based translate had it.
    invisible = dict.fromkeys([*map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"),
                               *range(0x01, 0x09), *range(0x0E, 0x1C), 0x7F,
                               *range(0x80, 0x85), *range(0x86, 0xA0)])
    every = "".join(chr(code) for code in range(1, 0x3000))
    expected = " ".join(every.translate(invisible).split())
    assert one_line(every) == expected
    assert html_to_text(f"a{every}b") == plain_to_text(f"a{every.translate(invisible)}b")
    xml_illegal = dict.fromkeys([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20),
                                 0xFFFE, 0xFFFF])
    document = ("<rss>" + "".join(chr(code) for code in range(0, 0x3000))
                + "\ufffe\uffff</rss>").encode()
    decoded = decode_feed(document, http_charset="utf-8")
    assert decoded.text == document.decode().translate(xml_illegal)


@pytest.mark.parametrize(("raw", "expected"), [
    ("Seg, 24 Set 2018 19:42:40 -0300", "2018-09-24T22:42:40"),
    ("Mié, 03 Ene 2018 10:00:00 +0100", "2018-01-03T09:00:00"),
    ("mar., 05 févr. 2019 08:30:00 +01:00", "2019-02-05T07:30:00"),
    ("Do, 12 Dez 2019 14:00:00 CET", "2019-12-12T13:00:00"),
    ("12 juillet 2020 06:05", "2020-07-12T06:05:00"),
    ("Thu, 07 Dec 17 10:00:29 -0800", "2017-12-07T18:00:29"),
])
def test_loose_dates_in_several_languages(raw: str, expected: str) -> None:
    assert parse_loose_date(raw) == datetime.fromisoformat(expected).replace(tzinfo=UTC)


@pytest.mark.parametrize("raw", ["", "yesterday", "32 Foo 2020 10:00", "99 Jan 2020 10:00"])
def test_unreadable_loose_dates(raw: str) -> None:
    assert parse_loose_date(raw) is None


@pytest.mark.parametrize(("raw", "expected"), [
    ("en_US", "en-US"), ("EN-gb", "en-GB"), ("pt-br", "pt-BR"), ("zh-Hant-TW", "zh-hant-TW"),
    ("de", "de"), ("", None), (None, None), ("english", None), ("12", None),
])
def test_languages(raw: str | None, expected: str | None) -> None:
    assert normalise_language(raw) == expected


def _one(item: dict[str, str], feed: FeedConfig = FEED, **kwargs: Any) -> Any:
    parsed = parse(rss([item], **kwargs))
    articles = normalise(parsed, feed, fetched_at=FETCHED)
    return articles[0] if articles else None


def test_article_fields() -> None:
    article = _one({"title": "  Big   <b>news</b> today ", "link": "/a/1?utm_source=x&id=5",
                    "guid": "g-1", "description": "<p>Teaser &amp; more</p>",
                    "pubDate": "Tue, 24 Nov 2026 10:00:00 +0100"})
    assert article.title == "Big news today"
    assert article.url == "https://news.example.org/a/1?id=5"
    assert article.id == article_id("https://news.example.org/a/1?id=5")
    assert article.guid == "g-1"
    assert article.summary == "Teaser & more"
    assert article.published == datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    assert not article.published_estimated
    assert article.fetched_at == FETCHED
    assert article.feed_id == "f1"
    assert article.feed_name == "Example News"
    assert article.tags == ("world",)
    assert article.revision == 0
    assert len(article.content_hash) == 64


@pytest.mark.parametrize("date", [None, "not a date", "Mon, 01 Jan 1970 00:00:00 GMT",
                                  "Fri, 01 Jan 2100 00:00:00 GMT"])
def test_missing_or_absurd_date_becomes_fetch_time_flagged(date: str | None) -> None:
    item = {"title": "t", "link": "https://a.example/1"}
    if date is not None:
        item["pubDate"] = date
    article = _one(item)
    assert article.published == FETCHED
    assert article.published_estimated


def test_item_without_link_uses_guid_and_item_with_neither_is_skipped() -> None:
    parsed = parse(rss([{"title": "guid only", "guid": "urn:x:1"}, {"title": "nothing"},
                        {"title": "bad link", "link": "javascript:alert(1)", "guid": "g2"},
                        {"title": "plain guid", "guid": "story-3"},
                        {"title": "permalink guid", "guid": "https://a.example/4"}]))
    articles = normalise(parsed, FEED, fetched_at=FETCHED)
    assert [(a.title, a.url, a.id) for a in articles] == [
        ("guid only", None, article_id(None, "urn:x:1")),
        ("bad link", None, article_id(None, "g2")),
        ("plain guid", None, article_id(None, "story-3")),
        ("permalink guid", "https://a.example/4", article_id("https://a.example/4")),
    ]


def test_duplicate_items_in_one_feed_are_one_article() -> None:
    items = [{"title": "first", "link": "https://a.example/1?utm_medium=rss"},
             {"title": "again", "link": "https://A.example/1#comments"}]
    articles = normalise(parse(rss(items)), FEED, fetched_at=FETCHED)
    assert [a.title for a in articles] == ["first"]


def test_feed_tags_and_item_categories_merge() -> None:
    entry = {"title": "t", "link": "https://a.example/1",
             "tags": [{"term": "Politics"}, {"term": "world"}, {"term": ""}]}
    feed = FeedConfig(id="f", url="https://a.example/rss", tags=("World", "eu"))
    article = normalise_entry(entry, feed=feed, feed_title="", language=None, base=None,
                              fetched_at=FETCHED)
    assert article is not None
    assert article.tags == ("World", "eu", "Politics")


def test_content_is_kept_only_when_it_is_more_than_the_summary() -> None:
    base = {"title": "t", "link": "https://a.example/1", "summary": "A short teaser.",
            "summary_detail": {"type": "text/html"}}
    caption = normalise_entry({**base, "content": [{"type": "text/plain", "value": "Cap"}]},
                              feed=FEED, feed_title="", language=None, base=None,
                              fetched_at=FETCHED)
    body = normalise_entry(
        {**base, "content": [{"type": "text/html",
                              "value": "<p>A short teaser.</p><p>And the whole story.</p>"}]},
        feed=FEED, feed_title="", language=None, base=None, fetched_at=FETCHED)
    assert caption is not None
    assert caption.content == ""
    assert body is not None
    assert body.content == "A short teaser.\n\nAnd the whole story."


def test_content_hash_changes_with_the_text() -> None:
    one = _one({"title": "t", "link": "https://a.example/1", "description": "v1"})
    two = _one({"title": "t", "link": "https://a.example/1", "description": "v2"})
    assert one.id == two.id
    assert one.content_hash != two.content_hash


def test_language_comes_from_config_then_feed() -> None:
    parsed = ParsedFeed(title="x", link=None, language="pt_BR", ttl_minutes=None,
                        entries=({"title": "t", "link": "https://a.example/1"},),
                        version="rss20", encoding="utf-8")
    assert normalise(parsed, FEED, fetched_at=FETCHED)[0].language == "pt-BR"
    configured = FeedConfig(id="f", url="https://a.example/rss", language="pt-PT")
    assert normalise(parsed, configured, fetched_at=FETCHED)[0].language == "pt-PT"


def test_clip_cuts_at_a_word() -> None:
    assert clip("short", 10) == "short"
    assert clip("one two three four five six seven", 20) == "one two three four…"
