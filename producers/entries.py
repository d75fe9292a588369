"""Feed entries to `schemas.messages.Article`: the same shape whatever the feed looked like.

Text is made plain by `producers.text` and dates are read by `producers.dates`.

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

import hashlib
import logging
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from producers.dates import parse_loose_date, plausible, struct_to_utc
from producers.parse import ParsedFeed
from producers.text import (
    clip,
    detail_text,
    has_active_content,
    has_control_chars,
    html_to_text,
    one_line,
)
from schemas.feeds_file import FeedConfig
from schemas.ids import article_id, canonical_url
from schemas.messages import Article

log = logging.getLogger(__name__)

MAX_TITLE_CHARS = 1_000
MAX_SUMMARY_CHARS = 20_000
MAX_CONTENT_CHARS = 200_000
MAX_URL_CHARS = 4_096  # longer is no URL a browser follows; the item falls back to its GUID
MAX_GUID_CHARS = 1_024
MAX_NAMES = 50  # authors, and tags, per article
MAX_NAME_CHARS = 200  # one author or tag


def _own(entry: Mapping[str, Any], key: str) -> Any:
    """``entry[key]`` or None, bypassing feedparser's lookup, which answers ``updated``
    with the published date (a deprecated fallback)."""
    if isinstance(entry, dict):
        return dict.get(entry, key)
    return entry.get(key)


def _entry_date(entry: Mapping[str, Any], name: str) -> datetime | None:
    parsed = struct_to_utc(_own(entry, f"{name}_parsed"))
    text = _own(entry, name)
    if parsed is None and text:
        parsed = parse_loose_date(str(text))
    return parsed


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
            texts.append(detail_text(item["value"], item))
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
    title_text = one_line(detail_text(raw_title, entry.get("title_detail")))
    summary_text = detail_text(raw_summary, entry.get("summary_detail"))
    title = clip(title_text, MAX_TITLE_CHARS)
    summary = clip(summary_text, MAX_SUMMARY_CHARS)
    content_text = _content(entry, summary)
    content = clip(content_text, MAX_CONTENT_CHARS)
    published_raw = _entry_date(entry, "published")
    updated_raw = _entry_date(entry, "updated")
    published = plausible(published_raw, fetched_at)
    updated = plausible(updated_raw, fetched_at)
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
    if any(has_control_chars(text) for text in raw):
        repairs["control_chars"] += 1
    if any(has_active_content(text) for text in raw) or (link and has_active_content(link)):
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
