"""Parsing and decoding: every bundled real feed, broken encodings, entity attacks."""

from __future__ import annotations

import re
import socket
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import pytest

from newswatch.errors import FeedError
from producers.decode import decode_feed
from producers.entries import normalise
from producers.parse import parse, strip_doctype
from schemas.feeds_file import FeedConfig, load_feeds_file

DEMO = Path(__file__).resolve().parents[1] / "newswatch" / "demo"
FETCHED = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
# UTF-8 read as Latin-1 or cp1252: "Ã" or "Â" before what was a continuation byte ("Ã©"
# for "é"), the replacement character, Cyrillic read as Latin-1. A capital "Ã" before a
# letter is Portuguese ("SÃO PAULO"), not mojibake.
MOJIBAKE = re.compile("[ÃÂ][\u0080-\u00bf\u2018-\u203a\u0152\u0153\u0160\u0161\u0178"
                      "\u017d\u017e\u0192\u02c6\u02dc\u20ac\u2122]|\ufffd|Ð|Ñ\x81")

# file, items with an id, first title, first published (UTC), encoding read with.
DEMO_FEEDS = [
    ("demo-ontopic.xml", 52, "After Issuing Warning About the Threat Posed by The Islamic "
     "State, Russia has Invited the Afghan Taliban to Hold Talks", "2021-10-21T09:00:00",
     "utf-8"),
    ("guardian-us-edition.xml", 55,
     "Trump State of the Union address promised unity but emphasized discord",
     "2018-01-31T07:26:05", "utf-8"),
    ("nytimes-homepage.xml", 25, "Can the Palestinian Authority Really Govern Gaza After the "
     "War?", "2023-11-24T13:14:28", "utf-8"),
    # Atom with a -05:00 offset.
    ("talkingpointsmemo-us-politics.xml", 20,
     "Hannity Announces Fox Has Hired Sebastian Gorka As NatSec Strategist",
     "2017-11-08T23:15:58", "utf-8"),
    # "EST" time zone abbreviation.
    ("washingtonpost-wellness.xml", 29, "Schools minister to kids’ fitness and nutrition needs",
     "2012-08-21T15:33:00", "utf-8"),
    # Declares ISO-8859-1, is UTF-8.
    ("dailymail-us-home.xml", 1, "Could the infamous Black Dahlia case be about to be solved? "
     "Cadaver dog discovers death scent at Hollywood home of suspect 66 years after the "
     "horrific murder", "2013-02-03T04:13:03", "utf-8"),
    ("googlenews-search-bearsears.xml", 92,
     "Trump again shrinks two national monuments in Utah - The Washington Post",
     "2026-07-14T03:33:16", "utf-8"),
    ("heise-online-tech-germany.xml", 150, "Top 10: Das beste günstige Tablet im Test",
     "2026-04-25T18:00:00", "utf-8"),
    # ISO-8859-1, declared; CRLF line endings; FeedBurner.
    ("jornaldenoticias-ultimas-portugal.xml", 40,
     "Mãe de utente é a nova presidente da Raríssimas", "2018-01-03T13:47:00", "cp1252"),
    # Latin-1, undeclared; Portuguese day and month names.
    ("uol-noticias-brazil.xml", 15,
     "Ibope: Bolsonaro perde de Haddad, Ciro e Alckmin em simulações de 2º turno",
     "2018-09-24T22:42:40", "cp1252"),
    ("oren-ru-regional-russia.xml", 10,
     "В Бузулуке главные стройплощадки – детсад и Ледовый дворец", "2014-01-22T14:31:31",
     "cp1251"),
    ("qq-tech-china.xml", 1, "拟298亿元重组盛大游戏后 世纪华通发20亿回购预案",
     "2018-09-19T05:11:22", "gb18030"),
    # 10 real items and 10 empty <item/>; "EST".
    ("pcmag-dvorak-tech.xml", 10, "My Professional Armchair Analysis of CES",
     "2018-01-17T20:50:00", "utf-8"),
    # Relative links, two-digit years.
    ("arcgames-neverwinter-news.xml", 2, "Neverwinter & Jingle Jam Humble Bundle!",
     "2017-12-07T18:00:29", "utf-8"),
]


def _demo_feed(name: str) -> FeedConfig:
    config = load_feeds_file(DEMO / "feeds.yaml")
    return next(feed for feed in config.feeds if feed.url.endswith("/" + name))


def test_every_demo_feed_file_is_in_the_table() -> None:
    on_disk = {path.name for path in (DEMO / "feeds").glob("*.xml")}
    assert on_disk == {row[0] for row in DEMO_FEEDS}


@pytest.mark.parametrize(("name", "count", "title", "published", "encoding"), DEMO_FEEDS,
                         ids=[row[0] for row in DEMO_FEEDS])
def test_demo_feed_parses_with_right_titles_dates_and_text(
        name: str, count: int, title: str, published: str, encoding: str) -> None:
    feed = _demo_feed(name)
    parsed = parse((DEMO / "feeds" / name).read_bytes(), language=feed.language)
    articles = normalise(parsed, feed, fetched_at=FETCHED)

    assert parsed.encoding == encoding
    assert len(articles) == count
    assert articles[0].title == title
    assert articles[0].published == datetime.fromisoformat(published).replace(tzinfo=UTC)
    for article in articles:
        text = article.title + article.summary + article.content
        assert not MOJIBAKE.search(text), (article.id, text[:200])
        assert "<" not in article.title
        assert "&amp;" not in text
        assert "&#" not in text
        assert not article.published_estimated
        assert article.published.tzinfo is not None
        assert article.feed_id == feed.id
        assert article.language == feed.language
        assert article.url is None or article.url.startswith(("http://", "https://"))


def test_demo_texts_keep_their_characters() -> None:
    oren = normalise(parse((DEMO / "feeds/oren-ru-regional-russia.xml").read_bytes()),
                     _demo_feed("oren-ru-regional-russia.xml"), fetched_at=FETCHED)
    assert oren[0].summary.startswith("Работы по возведению детского сада")
    jn = normalise(parse((DEMO / "feeds/jornaldenoticias-ultimas-portugal.xml").read_bytes()),
                   _demo_feed("jornaldenoticias-ultimas-portugal.xml"), fetched_at=FETCHED)
    # FeedBurner's origLink is the article; its tracking pixel leaves no text.
    assert jn[0].url == ("https://www.jn.pt/nacional/interior/"
                         "sonia-laig-e-a-nova-presidente-da-rarissimas-9021600.html")
    assert jn[0].summary.endswith("é a nova presidente da direção da Raríssimas.")
    daily = decode_feed((DEMO / "feeds/dailymail-us-home.xml").read_bytes())
    assert "© Bettmann/CORBIS" in daily.text
    assert "Â©" not in daily.text


def test_relative_links_resolve_against_the_feed() -> None:
    arc = normalise(parse((DEMO / "feeds/arcgames-neverwinter-news.xml").read_bytes()),
                    _demo_feed("arcgames-neverwinter-news.xml"), fetched_at=FETCHED)
    assert arc[0].url == ("https://www.arcgames.com/en/games/neverwinter/news/detail/"
                          "10743874-neverwinter-%26-jingle-jam-humble-bundle%21")
    # TPM has site-relative Atom links and no base_url: its own <link> is the base.
    tpm = normalise(parse((DEMO / "feeds/talkingpointsmemo-us-politics.xml").read_bytes()),
                    _demo_feed("talkingpointsmemo-us-politics.xml"), fetched_at=FETCHED)
    assert tpm[0].url == ("http://talkingpointsmemo.com/livewire/"
                          "hannity-announces-fox-hired-sebastian-gorka-national-security-strategist")


def test_feedflare_and_markup_leave_no_text() -> None:
    pcmag = normalise(parse((DEMO / "feeds/pcmag-dvorak-tech.xml").read_bytes()),
                      _demo_feed("pcmag-dvorak-tech.xml"), fetched_at=FETCHED)
    assert pcmag[0].summary == ("No one needs to go to this annual gadget tradeshow when "
                                "it's already over-covered by every media out")


# --- Encodings --------------------------------------------------------------------------

RUSSIAN = "Новости Оренбурга"
LATIN = "Notícias de São Paulo: ação"


@pytest.mark.parametrize(("body", "kwargs", "expected", "source"), [
    # A declaration that lies: bytes are UTF-8.
    (f'<?xml version="1.0" encoding="ISO-8859-1"?><x>{LATIN}</x>'.encode(), {}, LATIN,
     "utf-8"),
    (f'<?xml version="1.0" encoding="windows-1251"?><x>{RUSSIAN}</x>'.encode("cp1251"), {},
     RUSSIAN, "xml"),
    # Undeclared Latin-1.
    (f"<x>{LATIN}</x>".encode("latin-1"), {}, LATIN, "fallback"),
    # Undeclared Cyrillic: the feed's language says which legacy encoding to try.
    (f"<x>{RUSSIAN}</x>".encode("cp1251"), {"language": "ru"}, RUSSIAN, "language"),
    (f"<rss><language>ru</language><x>{RUSSIAN}</x></rss>".encode("cp1251"), {}, RUSSIAN,
     "language"),
    # The HTTP charset beats the XML declaration unless it is a server default.
    (f'<?xml version="1.0" encoding="iso-8859-1"?><x>{RUSSIAN}</x>'.encode("cp1251"),
     {"http_charset": "windows-1251"}, RUSSIAN, "http"),
    (f'<?xml version="1.0" encoding="windows-1251"?><x>{RUSSIAN}</x>'.encode("cp1251"),
     {"http_charset": "ISO-8859-1"}, RUSSIAN, "xml"),
    ("<x>中文新闻</x>".encode("gbk"), {"override": "gb2312"}, "中文新闻", "override"),
    ("\ufeff<x>UTF-8 with BOM é</x>".encode(), {}, "<x>UTF-8 with BOM é</x>", "utf-8"),
    ('<?xml version="1.0" encoding="utf-16"?><x>é</x>'.encode("utf-16"), {}, "<x>é</x>",
     "bom"),
])
def test_decode_finds_the_real_encoding(body: bytes, kwargs: dict[str, str], expected: str,
                                        source: str) -> None:
    decoded = decode_feed(body, **kwargs)
    assert expected in decoded.text
    assert decoded.source == source or (source == "utf-8" and decoded.source == "bom")


def test_decode_drops_characters_xml_forbids() -> None:
    decoded = decode_feed(b"<x>bell\x07 and \x0bvtab</x>")
    assert decoded.text == "<x>bell and vtab</x>"


def test_feed_with_forbidden_characters_still_parses_strictly() -> None:
    body = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>t\x01</title>'
            b"<item><title>ok\x02</title><link>http://a.example/1</link></item>"
            b"</channel></rss>")
    parsed = parse(body)
    assert parsed.warnings == ()
    assert parsed.entries[0]["title"] == "ok"


# --- Bozo, not-a-feed ----------------------------------------------------------------


def test_bozo_feed_keeps_its_items_and_reports_the_error() -> None:
    body = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>Broken</title>'
            b"<item><title>First &amp; fine</title><link>http://a.example/1</link></item>"
            b"<item><title>Second <b>unclosed</title><link>http://a.example/2</link></item>"
            b"</channel></rss>")
    parsed = parse(body)
    assert [entry["link"] for entry in parsed.entries] == ["http://a.example/1",
                                                           "http://a.example/2"]
    assert parsed.warnings
    assert "recoverable feed error" in parsed.warnings[0]


@pytest.mark.parametrize("body", [
    b"<!DOCTYPE html><html><head><title>Login</title></head><body>Hi</body></html>",
    b"<html><body><h1>404 Not Found</h1></body></html>",
    b"This is not XML at all, just an error message from a proxy.",
    b"",
])
def test_not_a_feed_is_an_error(body: bytes) -> None:
    with pytest.raises(FeedError) as caught:
        parse(body)
    assert caught.value.kind == "parse"
    assert "not a feed" in str(caught.value) or "HTML page" in str(caught.value)


# --- Entity expansion attacks --------------------------------------------------------

_LAUGHS = "\n".join(['<!ENTITY lol "lol">'] + [
    f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
    for i in range(1, 10)])


def _attack(prolog: str, reference: str) -> bytes:
    return (f'<?xml version="1.0"?>{prolog}<rss version="2.0"><channel><title>t</title>'
            f"<item><title>{reference}</title><link>http://a.example/1</link>"
            f"<description>{reference}</description></item></channel></rss>").encode()


ATTACKS = {
    # 10^9 "lol"s from a 1 KB document.
    "billion-laughs": _attack(f"\n<!DOCTYPE rss [\n{_LAUGHS}\n]>\n", "&lol9;"),
    # The same on one line: feedparser itself only removes declarations at a line start.
    "billion-laughs-one-line": _attack(f"<!DOCTYPE rss [{_LAUGHS.replace(chr(10), '')}]>",
                                       "&lol9;"),
    # One 10 KB entity referenced 10,000 times: 100 MB from 50 KB, no nesting needed.
    "quadratic-blowup": _attack(f'\n<!DOCTYPE rss [\n<!ENTITY a "{"a" * 10_000}">\n]>\n',
                                "&a;" * 10_000),
    # External entity: must not read a local file.
    "xxe": _attack('\n<!DOCTYPE rss [\n<!ENTITY xxe SYSTEM "file:///etc/hostname">\n]>\n',
                   "&xxe;"),
}


@pytest.mark.parametrize("name", list(ATTACKS))
def test_entity_attacks_do_not_expand(name: str) -> None:
    body = ATTACKS[name]
    tracemalloc.start()
    try:
        parsed = parse(body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The memory peak shows nothing expanded; how fast parsing is, bench_producer says.
    assert peak < 16 * 1024 * 1024, f"{name}: peak {peak / 1e6:.1f} MB"
    title = str(parsed.entries[0].get("title", ""))
    assert len(title) <= len(body)
    assert "lollol" not in title
    assert "aaaa" not in title
    assert any("entity declarations removed" in warning for warning in parsed.warnings)
    hostname = Path("/etc/hostname")
    if hostname.exists() and hostname.read_text().strip():
        assert hostname.read_text().strip() not in title


def test_parsing_never_fetches_external_dtds_or_entities() -> None:
    # A listening socket stands in for an attacker's server: nothing may connect to it.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.3)
        port = listener.getsockname()[1]
        body = _attack(f'\n<!DOCTYPE rss SYSTEM "http://127.0.0.1:{port}/evil.dtd" [\n'
                       f'<!ENTITY ext SYSTEM "http://127.0.0.1:{port}/secret">\n]>\n',
                       "x &ext;")
        parsed = parse(body)
        with pytest.raises(TimeoutError):
            listener.accept()
    assert str(parsed.entries[0]["title"]).startswith("x")


def test_strip_doctype_only_touches_the_prolog() -> None:
    text = ('<?xml version="1.0"?>\n<!-- note -->\n<!DOCTYPE rss [ <!ENTITY x "]>" > ]>'
            "<rss><![CDATA[<!DOCTYPE kept>]]></rss>")
    stripped, had_entities = strip_doctype(text)
    assert had_entities
    assert stripped == ('<?xml version="1.0"?>\n<!-- note -->\n'
                        "<rss><![CDATA[<!DOCTYPE kept>]]></rss>")
