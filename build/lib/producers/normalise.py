"""Feed items to `schemas.messages.Article`: the same shape whatever the feed looked like.

Contract of every article produced here:

- ``id`` is `schemas.ids.article_id` of the canonical URL (tracking parameters dropped,
  relative links resolved against the feed), else of the GUID; an item with neither is
  skipped, since it could not be deduplicated. Only http(s) links count as URLs.
- ``title`` is one line of plain text; ``summary`` and ``content`` are plain text with
  paragraphs separated by a blank line: tags stripped (scripts, styles and FeedBurner
  "feedflare" blocks with their text), entities decoded, whitespace folded, control
  characters (NUL, ESC, C1 codes) removed.
- ``content`` is kept only when it is more than the summary: feedparser files an RSS
  item's second description (an image caption, ``media:description``) as content, and
  copies a lone Atom content into the summary; neither is article text of its own.
- ``published`` is UTC. A missing date, or one before 1995 or more than a day after the
  fetch, is replaced by the fetch time with ``published_estimated=True``. Dates feedparser
  cannot read (Portuguese, Spanish, French, German, Italian month names) are read here.
- ``content_hash`` covers title, summary and content: it is what a revision compares.
- Every field is bounded (text, URL, GUID, authors, tags, feed name), so one hostile item
  cannot make a message Kafka refuses, which would stop its whole feed: a URL too long to
  be one is dropped (the GUID identifies the item), everything else is cut.

`normalise` counts what it had to repair (``absurd_date``, ``control_chars``,
``script_removed``, ``clipped``) in a ``repairs`` counter the caller passes, for its log
and metric.
"""

from __future__ import annotations

import calendar
import hashlib
import html
import logging
import re
import time
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

from producers.parse import ParsedFeed
from schemas.feeds_file import FeedConfig
from schemas.ids import article_id, canonical_url
from schemas.messages import Article

log = logging.getLogger(__name__)

EARLIEST_PLAUSIBLE = datetime(1995, 1, 1, tzinfo=UTC)  # before the first web feeds
FUTURE_TOLERANCE = timedelta(days=1)
# Bounds that keep one article well inside Kafka's default 1 MB message limit.
MAX_TITLE_CHARS = 1_000
MAX_SUMMARY_CHARS = 20_000
MAX_CONTENT_CHARS = 200_000
MAX_URL_CHARS = 4_096  # longer is no URL a browser follows; the item falls back to its GUID
MAX_GUID_CHARS = 1_024
MAX_NAMES = 50  # authors, and tags, per article
MAX_NAME_CHARS = 200  # one author or tag


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, at a word boundary when there is one."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ", int(limit * 0.9))
    return (cut[:space] if space > 0 else cut).rstrip() + "…"

# --- HTML to plain text ---------------------------------------------------------------

_BLOCK_TAGS = frozenset({
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption",
    "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main",
    "nav", "ol", "p", "pre", "section", "table", "tr", "ul",
})
_SKIP_TAGS = frozenset({"script", "style", "noscript", "template", "iframe", "object", "svg",
                        "head", "title"})
_SKIP_CLASSES = frozenset({"feedflare"})
_VOID_TAGS = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link",
                        "meta", "param", "source", "track", "wbr"})
_TAG_LIKE = re.compile(r"<[A-Za-z!/][^>]*>")
_ENTITY_LIKE = re.compile(r"&(#\d+|#x[0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")
_SPACES = re.compile(r"[^\S\n]+")
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))
# Control characters nobody can see, which a feed smuggles in as &#1; or raw bytes (found
# by tests/hostile: they reached titles). NUL is left to _fold, which uses it as a marker
# (a NUL in the input becomes a break); the rest of C0 is whitespace to str.split().
_CONTROLS = [*range(0x01, 0x09), *range(0x0E, 0x1C), 0x7F, *range(0x80, 0x85),
             *range(0x86, 0xA0)]
_INVISIBLE.update(dict.fromkeys(_CONTROLS))
_CONTROL_LIKE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_ACTIVE_CONTENT = re.compile(r"<\s*(?:script|iframe|object|embed)\b|^\s*javascript:",
                             re.IGNORECASE)
_PARAGRAPH = "\x00"  # marks a block boundary until whitespace is folded


class _TextExtractor(HTMLParser):
    """Collects text, marking block boundaries and skipping invisible or junk elements."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip_stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skip_stack:
            if tag == self._skip_stack[0] and tag not in _VOID_TAGS:
                self._skip_stack.append(tag)
            return
        classes = next((value or "" for name, value in attrs if name == "class"), "")
        if tag in _SKIP_TAGS or _SKIP_CLASSES.intersection(classes.split()):
            if tag not in _VOID_TAGS:
                self._skip_stack.append(tag)
            return
        if tag in _BLOCK_TAGS:
            self.parts.append(_PARAGRAPH)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if not self._skip_stack and tag in _BLOCK_TAGS:
            self.parts.append(_PARAGRAPH)

    def handle_endtag(self, tag: str) -> None:
        if self._skip_stack:
            if tag == self._skip_stack[-1]:
                self._skip_stack.pop()
            return
        if tag in _BLOCK_TAGS:
            self.parts.append(_PARAGRAPH)

    def handle_data(self, data: str) -> None:
        if not self._skip_stack:
            self.parts.append(data)


def _fold(text: str) -> str:
    """Fold whitespace inside paragraphs; paragraphs (marked by \\x00) get a blank line."""
    text = text.translate(_INVISIBLE)
    paragraphs = (" ".join(chunk.split()) for chunk in text.split(_PARAGRAPH))
    return "\n\n".join(p for p in paragraphs if p)


def html_to_text(value: str) -> str:
    """Plain text of an HTML fragment, paragraphs separated by a blank line."""
    if not _TAG_LIKE.search(value):
        value = html.unescape(value)
        if not _TAG_LIKE.search(value):
            return plain_to_text(value)
        # Markup escaped twice ("&lt;script&gt;" in HTML) is markup all the same: left as
        # text, a <script> reached titles (found by tests/hostile).
    parser = _TextExtractor()
    try:
        parser.feed(value)
        parser.close()
    except (AssertionError, ValueError):  # html.parser gives up on some malformed markup
        log.debug("HTML parser gave up; stripping tags with a pattern", exc_info=True)
        return plain_to_text(html.unescape(_TAG_LIKE.sub(" ", value)))
    return _fold("".join(parser.parts))


def plain_to_text(value: str) -> str:
    """Plain text with its line breaks kept as paragraph breaks, whitespace folded."""
    return _fold(re.sub(r"\s*\n\s*", _PARAGRAPH, value.replace("\r", "\n")))


def one_line(value: str) -> str:
    """Text on a single line: every run of whitespace becomes one space."""
    return " ".join(value.translate(_INVISIBLE).replace("\x00", " ").split())


def _detail_text(value: Any, detail: Any) -> str:
    """Plain text of a feedparser value whose ``*_detail`` says whether it is HTML."""
    if not value:
        return ""
    text = str(value)
    kind = str(detail.get("type", "")) if isinstance(detail, Mapping) else ""
    if "html" in kind or _TAG_LIKE.search(text):
        return html_to_text(text)
    # Plain text: feedparser decoded it once; feeds that escape twice need a second pass.
    if _ENTITY_LIKE.search(text):
        text = html.unescape(text)
        if _TAG_LIKE.search(text):
            return html_to_text(text)  # markup escaped twice: see html_to_text
    return plain_to_text(text)


# --- Dates -----------------------------------------------------------------------------

_MONTHS = {
    "jan": 1, "ene": 1, "gen": 1, "fev": 2, "feb": 2, "fevr": 2, "mar": 3, "mrz": 3,
    "abr": 4, "apr": 4, "avr": 4, "mai": 5, "may": 5, "mag": 5, "jun": 6, "giu": 6,
    "jui": 6, "jul": 7, "lug": 7, "ago": 8, "aug": 8, "aou": 8, "set": 9, "sep": 9,
    "out": 10, "oct": 10, "okt": 10, "ott": 10, "nov": 11, "dez": 12, "dec": 12, "dic": 12,
}
_LOOSE_DATE = re.compile(
    r"(\d{1,2})\.?\s+([^\W\d_]+)\.?,?\s+(\d{2,4}),?\s*(?:T|\s)\s*(\d{1,2}):(\d{2})(?::(\d{2}))?"
    r"\s*(Z|[+-]\d{2}:?\d{2}|[A-Za-z]{1,5})?"
)
_ZONES = {"GMT": 0, "UT": 0, "UTC": 0, "Z": 0, "EST": -5, "EDT": -4, "CST": -6, "CDT": -5,
          "MST": -7, "MDT": -6, "PST": -8, "PDT": -7, "CET": 1, "CEST": 2, "BRT": -3,
          "WET": 0, "WEST": 1, "MSK": 3}


def _month(name: str) -> int | None:
    folded = unicodedata.normalize("NFKD", name.lower()).encode("ascii", "ignore").decode()
    if folded.startswith("juil"):
        return 7
    return _MONTHS.get(folded[:4]) or _MONTHS.get(folded[:3])


def parse_loose_date(value: str) -> datetime | None:
    """A day-month-year date with a time, in several languages; None when unreadable."""
    match = _LOOSE_DATE.search(value)
    if not match:
        return None
    day, month_name, year, hour, minute, second, zone = match.groups()
    month = _month(month_name)
    if month is None:
        return None
    full_year = int(year) + (2000 if len(year) == 2 and int(year) < 70 else
                             1900 if len(year) == 2 else 0)
    offset = timedelta(0)
    if zone and zone[0] in "+-":
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        offset = -offset if zone[0] == "-" else offset
    elif zone:
        offset = timedelta(hours=_ZONES.get(zone.upper(), 0))
    try:
        local = datetime(full_year, month, int(day), int(hour), int(minute), int(second or 0),
                         tzinfo=timezone(offset))
        # A date at the edge of the calendar ("31 Dec 9999 23:59 -1200") has no UTC twin:
        # astimezone overflows. Unreadable, like any other absurd date, not a feed failure.
        return local.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _struct_to_utc(value: Any) -> datetime | None:
    if not isinstance(value, time.struct_time):
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), UTC)
    except (OverflowError, ValueError, OSError):
        return None


def _own(entry: Mapping[str, Any], key: str) -> Any:
    """``entry[key]`` or None, bypassing feedparser's lookup, which answers ``updated``
    with the published date (a deprecated fallback)."""
    if isinstance(entry, dict):
        return dict.get(entry, key)
    return entry.get(key)


def _entry_date(entry: Mapping[str, Any], name: str) -> datetime | None:
    parsed = _struct_to_utc(_own(entry, f"{name}_parsed"))
    text = _own(entry, name)
    if parsed is None and text:
        parsed = parse_loose_date(str(text))
    return parsed


def _plausible(value: datetime | None, fetched_at: datetime) -> datetime | None:
    if value is None or value < EARLIEST_PLAUSIBLE or value > fetched_at + FUTURE_TOLERANCE:
        return None
    return value


# --- Fields ----------------------------------------------------------------------------


def normalise_language(value: str | None) -> str | None:
    """``en_US`` / ``EN-us`` -> ``en-US``; None when it does not look like a language tag."""
    if not value:
        return None
    parts = re.split(r"[-_]", value.strip())
    if not re.fullmatch(r"[A-Za-z]{2,3}", parts[0]) or not all(
        re.fullmatch(r"[A-Za-z0-9]{1,8}", part) for part in parts[1:]
    ):
        return None
    tag = [parts[0].lower()] + [p.upper() if len(p) == 2 else p.lower() for p in parts[1:]]
    joined = "-".join(tag)
    return joined if len(joined) <= 16 else tag[0]


_ABSOLUTE_HTTP = re.compile(r"^https?://", re.IGNORECASE)


def _http_url(link: str | None, base: str | None) -> str | None:
    if not link or not link.strip():
        return None
    try:
        canonical = canonical_url(link, base)
    except ValueError:  # e.g. an invalid port number
        return None
    parts = urlsplit(canonical)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return canonical


def _authors(entry: Mapping[str, Any]) -> tuple[str, ...]:
    names: list[str] = []
    for author in (entry.get("authors") or ())[:MAX_NAMES]:
        if isinstance(author, Mapping):
            names.append(str(author.get("name") or author.get("email") or ""))
    if not names and entry.get("author"):
        names.append(str(entry["author"]))
    return _unique(clip(one_line(html_to_text(name[:MAX_NAME_CHARS * 4])), MAX_NAME_CHARS)
                   for name in names)


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for value in values:
        if value and value.casefold() not in seen:
            seen[value.casefold()] = value
    return tuple(seen.values())


def _content(entry: Mapping[str, Any], summary: str) -> str:
    texts = []
    for item in entry.get("content") or ():
        if isinstance(item, Mapping) and item.get("value"):
            texts.append(_detail_text(item["value"], item))
    best = max(texts, key=len, default="")
    return best if len(best) > len(summary) else ""


def content_hash(title: str, summary: str, content: str) -> str:
    """SHA-256 over title, summary and content: a change of any is a new revision."""
    return hashlib.sha256("\x1f".join((title, summary, content)).encode("utf-8")).hexdigest()


def link_base(feed: FeedConfig, parsed: ParsedFeed, fetched_url: str | None) -> str | None:
    """What relative item links resolve against: the feed's ``base_url``, else the URL it
    was fetched from when that is http(s), else the feed's own absolute ``<link>``."""
    if feed.base_url:
        return feed.base_url
    if fetched_url and urlsplit(fetched_url).scheme in ("http", "https"):
        return fetched_url
    if parsed.link and urlsplit(parsed.link).scheme in ("http", "https"):
        return parsed.link
    return None


def normalise_entry(entry: Mapping[str, Any], *, feed: FeedConfig, feed_title: str,
                    language: str | None, base: str | None, fetched_at: datetime,
                    repairs: Counter[str] | None = None) -> Article | None:
    """One feed item as an `Article` (revision 0), or None when it has no link nor GUID.

    What had to be repaired is counted in ``repairs`` (see the module docstring).
    """
    link = entry.get("feedburner_origlink") or entry.get("link")
    guid = str(entry.get("id") or "").strip() or None
    if entry.get("guidislink") and link == guid and not _ABSOLUTE_HTTP.match(guid or ""):
        link = None  # feedparser made a link of a GUID such as "story-123": not a URL
    link = str(link) if link else None
    url = _http_url(link, base) if link and len(link) <= MAX_URL_CHARS else None
    if url is None and guid is None:
        return None
    raw_title, raw_summary = entry.get("title"), entry.get("summary")
    title_text = one_line(_detail_text(raw_title, entry.get("title_detail")))
    summary_text = _detail_text(raw_summary, entry.get("summary_detail"))
    title = clip(title_text, MAX_TITLE_CHARS)
    summary = clip(summary_text, MAX_SUMMARY_CHARS)
    content_text = _content(entry, summary)
    content = clip(content_text, MAX_CONTENT_CHARS)
    published_raw = _entry_date(entry, "published")
    updated_raw = _entry_date(entry, "updated")
    published = _plausible(published_raw, fetched_at)
    updated = _plausible(updated_raw, fetched_at)
    entry_language = normalise_language(str(entry.get("language") or "")) if not \
        feed.language else None
    tags = _unique([*feed.tags, *(clip(one_line(str(tag.get("term") or tag.get("label") or "")
                                                [:MAX_NAME_CHARS * 4]), MAX_NAME_CHARS)
                                  for tag in (entry.get("tags") or ())[:MAX_NAMES * 2]
                                  if isinstance(tag, Mapping))])[:MAX_NAMES]
    article = Article(
        id=article_id(url, guid),
        url=url,
        guid=clip(guid, MAX_GUID_CHARS) if guid else None,
        title=title,
        summary=summary,
        content=content,
        published=published or updated or fetched_at,
        published_estimated=published is None and updated is None,
        updated=updated if updated != published else None,
        fetched_at=fetched_at,
        authors=_authors(entry)[:MAX_NAMES],
        tags=tags,
        feed_id=feed.id,
        feed_name=clip(feed.name or feed_title, MAX_TITLE_CHARS),
        language=entry_language or language,
        content_hash=content_hash(title, summary, content),
    )
    if repairs is not None:
        raw = [str(value) for value in (raw_title, raw_summary, *(
            item.get("value") for item in entry.get("content") or ()
            if isinstance(item, Mapping))) if value]
        clipped = (len(title_text) > MAX_TITLE_CHARS or len(summary_text) > MAX_SUMMARY_CHARS
                   or len(content_text) > MAX_CONTENT_CHARS
                   or (link is not None and len(link) > MAX_URL_CHARS)
                   or (guid is not None and len(guid) > MAX_GUID_CHARS))
        _count_repairs(repairs, raw, link, clipped=clipped,
                       dates_refused=(_dated(entry, "published") and published is None)
                       or (_dated(entry, "updated") and updated is None))
    return article


def _dated(entry: Mapping[str, Any], name: str) -> bool:
    """Whether the item gives a ``name`` date at all (readable or not)."""
    return bool(_own(entry, name) or _own(entry, f"{name}_parsed"))


def _count_repairs(repairs: Counter[str], raw: list[str], link: str | None, *,
                   clipped: bool, dates_refused: bool) -> None:
    """Count what `normalise_entry` repaired in one item, once per kind."""
    if dates_refused:
        repairs["absurd_date"] += 1  # replaced by the fetch time, published_estimated
    if any(_CONTROL_LIKE.search(text) for text in raw):
        repairs["control_chars"] += 1
    if any(_ACTIVE_CONTENT.search(text) or ("&lt;" in text and _ACTIVE_CONTENT.search(
            html.unescape(text))) for text in raw) or (link and _ACTIVE_CONTENT.search(link)):
        repairs["script_removed"] += 1
    if clipped:
        repairs["clipped"] += 1


def normalise(parsed: ParsedFeed, feed: FeedConfig, *, fetched_at: datetime,
              fetched_url: str | None = None, repairs: Counter[str] | None = None
              ) -> list[Article]:
    """Every item of ``parsed`` with an id, once each (the first of duplicates wins).

    ``repairs`` (optional) counts, by kind, the items that had something repaired.
    """
    base = link_base(feed, parsed, fetched_url)
    language = normalise_language(feed.language) or normalise_language(parsed.language)
    feed_title = one_line(html_to_text(parsed.title)) if parsed.title else ""
    articles: dict[str, Article] = {}
    skipped = 0
    for entry in parsed.entries:
        article = normalise_entry(entry, feed=feed, feed_title=feed_title, language=language,
                                  base=base, fetched_at=fetched_at, repairs=repairs)
        if article is None:
            skipped += 1
        elif article.id not in articles:
            articles[article.id] = article
    if skipped:
        log.info("skipped items without a link or GUID",
                 extra={"feed": feed.id, "skipped": skipped})
    return list(articles.values())


