"""Writes the made-by-us files of the hostile corpus (see README.md), byte for byte.

    .venv/bin/python tests/hostile/corpus/make_corpus.py

The files are committed; this script says exactly how their odd bytes (raw NUL, invalid
UTF-8, UTF-16, Latin-1) were made, and remakes them identically. Large inputs (the 50 MB
feed, megabyte-long words, huge messages) are not files: the tests generate them.
"""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import escape

HERE = Path(__file__).resolve().parent
FEEDS = HERE / "feeds"
MESSAGES = HERE / "messages"
GOOD_DATE = "Mon, 01 Jan 2024 10:00:00 GMT"


def item(feed: str, guid: str, title: str, desc: str = "A plain good item.",
         date: str | None = GOOD_DATE, *, raw: bool = False, link: str | None = None) -> str:
    """One RSS item; ``raw`` puts title and description in unescaped (markup, entities)."""
    link = link if link is not None else f"https://hostile.example/{feed}/{guid}"
    title = title if raw else escape(title)
    desc = desc if raw else escape(desc)
    dated = f"<pubDate>{date}</pubDate>" if date is not None else ""
    return (f'<item><title>{title}</title><link>{link}</link><guid isPermaLink="false">'
            f"{guid}</guid><description>{desc}</description>{dated}</item>\n")


def good(feed: str, n: int) -> str:
    """A good item whose accents show any decoding mistake."""
    return item(feed, f"good-{n}", f"Good item {n}: Zürich, café, naïve, Łódź",
                f"Good item {n} keeps its accents: Zürich café.",
                f"Mon, 0{n} Jan 2024 10:00:00 GMT")


def rss(feed: str, body: str, *, prolog: str = "",
        declaration: str = '<?xml version="1.0" encoding="utf-8"?>') -> str:
    return (f'{declaration}\n{prolog}<rss version="2.0"><channel><title>Hostile: {feed}'
            f"</title><link>https://hostile.example/</link>\n{body}</channel></rss>\n")


def splice(document: str, marker: str, raw: bytes) -> bytes:
    """``document`` as UTF-8 with ``marker`` replaced by bytes no str can hold."""
    return document.encode("utf-8").replace(marker.encode(), raw)


def feeds() -> dict[str, bytes]:
    out: dict[str, bytes] = {}

    name = "malformed-truncated"
    document = rss(name, good(name, 1) + good(name, 2) + "<item><title>Cut off in the midd")
    out[name] = document[:document.index("in the midd") + len("in the midd")].encode()

    name = "malformed-mismatched-tags"
    bad = (f"<item><title>Broken <b>markup</title><link>https://hostile.example/{name}/"
           "hostile-1</link><guid>hostile-1</guid><description>a < b & c > d</description>"
           "</item>\n")
    out[name] = rss(name, good(name, 1) + bad + good(name, 2)).encode()

    out["malformed-not-a-feed"] = b"\x00\x01\x02<<<>>>&&&;]]><?xml?>\xff\xfe\x00garbage " * 40

    name = "malformed-invalid-utf8-byte"
    out[name] = splice(rss(name, good(name, 1) + "@HOSTILE@" + good(name, 2)), "@HOSTILE@",
                       b"<item><title>Stray bytes \xff\xfe here and a cut sequence \xe2\x82 "
                       b"there</title><link>https://hostile.example/malformed-invalid-utf8-"
                       b"byte/hostile-1</link><guid>hostile-1</guid></item>\n")

    name = "encoding-declares-utf8-is-latin1"
    out[name] = rss(name, item(name, "good-1", "São Paulo: ação e reação",
                               "Notícias em português.")
                    + item(name, "good-2", "Zürich café naïve", "Ça va très bien.",
                           "Tue, 02 Jan 2024 10:00:00 GMT")).encode("latin-1")

    name = "encoding-utf16-bom-declares-utf8"
    out[name] = b"\xff\xfe" + rss(name, item(name, "good-1", "中文新闻：世纪华通", "中文内容。")
                                  + good(name, 2)).encode("utf-16-le")

    laughs = "\n".join(['<!ENTITY lol "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)])
    bombs = {
        "entity-billion-laughs": (f"<!DOCTYPE rss [\n{laughs}\n]>\n", "&lol9;"),
        "entity-billion-laughs-one-line": (f"<!DOCTYPE rss [{laughs.replace(chr(10), '')}]>",
                                           "&lol9;"),
        "entity-quadratic-blowup": (f'<!DOCTYPE rss [\n<!ENTITY a "{"a" * 10_000}">\n]>\n',
                                    "&a;" * 4_000),
        "entity-xxe": ('<!DOCTYPE rss [\n<!ENTITY xxe SYSTEM "file:///etc/passwd">\n]>\n',
                       "&xxe;"),
    }
    for name, (prolog, reference) in bombs.items():
        bad = item(name, "hostile-1", f"Bomb {reference}", f"Body {reference}", raw=True)
        out[name] = rss(name, good(name, 1) + bad + good(name, 2), prolog=prolog).encode()

    name = "script-tags"
    out[name] = rss(name, "".join([
        good(name, 1),
        item(name, "hostile-escaped", "&lt;script&gt;alert('t1')&lt;/script&gt;Escaped script "
             "title", "&lt;p&gt;Teaser&lt;script&gt;alert('d0')&lt;/script&gt;&lt;/p&gt;",
             raw=True),
        item(name, "hostile-cdata", "<![CDATA[<script>alert('t2')</script>CDATA script title]]>",
             "<![CDATA[<p>Text<img src=x onerror=\"alert('d1')\"><script>alert('d2')</script>"
             "<iframe src=\"javascript:alert('d3')\"></iframe><svg onload=\"alert('d4')\"></svg>"
             "<object data=\"x.swf\">alert('d5')</object></p>]]>", raw=True),
        item(name, "hostile-double-escaped",
             "&amp;lt;script&amp;gt;alert('t3')&amp;lt;/script&amp;gt;Double escaped title",
             "Plain teaser.", raw=True),
        item(name, "hostile-js-link", "A link that runs script", "Its link is not a URL.",
             link="javascript:alert('l1')"),
        good(name, 2)])).encode()

    name = "control-chars"
    refs = item(name, "hostile-refs", "Refs &#0;NUL &#x1;SOH &#27;ESC &#x7F;DEL end",
                "Teaser &#x1b;[31mred&#x1b;[0m", raw=True)
    out[name] = splice(rss(name, good(name, 1) + "@RAW@" + refs + good(name, 2)), "@RAW@",
                       b"<item><title>Raw\x00NUL \x01SOH \x1bESC \x7fDEL \xc2\x9bCSI \xc2\x85NEL"
                       b" end</title><link>https://hostile.example/control-chars/hostile-raw"
                       b"</link><guid>hostile-raw</guid><description>Raw \x00 in the teaser"
                       b"\x08\x08</description></item>\n")

    name = "absurd-dates"
    dates = {"year-1": "Mon, 01 Jan 0001 00:00:00 GMT",
             "year-9999": "Fri, 31 Dec 9999 23:59:59 GMT",
             "year-9999-west": "Fri, 31 Dec 9999 23:59:59 -1200",
             "before-epoch": "Wed, 31 Dec 1969 23:59:59 GMT",
             "negative-epoch": "-86400",
             "far-future": "Sun, 01 Jan 2999 00:00:00 GMT",
             "iso-zeros": "0000-00-00T00:00:00Z",
             "iso-year-1": "0001-01-01T00:00:00+14:00"}
    out[name] = rss(name, item(name, "good-1", "Good item with a real date") + "".join(
        item(name, f"hostile-{key}", f"Dated {value}", date=value)
        for key, value in dates.items())).encode()
    return out


def messages() -> dict[str, bytes]:
    return {
        "not-json.txt": b"this is not JSON at all {",
        "invalid-utf8.bin": b'{"schema_version": 1, "id": "\xff\xfe\xfd", "title": "\xc3\x28"}',
        "json-null.json": b"null",
        "truncated.json": b'{"schema_version": 1, "id": "abc", "title": "cut',
    }


def main() -> None:
    FEEDS.mkdir(exist_ok=True)
    MESSAGES.mkdir(exist_ok=True)
    for name, data in feeds().items():
        (FEEDS / f"{name}.xml").write_bytes(data)
    for name, data in messages().items():
        (MESSAGES / name).write_bytes(data)


if __name__ == "__main__":
    main()
