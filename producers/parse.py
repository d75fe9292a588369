"""Feed bytes to feed items, with feedparser (RSS 0.9x/1.0/2.0, Atom 0.3/1.0, CDF).

Before feedparser sees a document, it is decoded (`producers.decode`), stripped of any
DOCTYPE, and re-declared as UTF-8. Removing the DOCTYPE removes every entity declaration,
so no entity can expand: feedparser only drops entity declarations that start a line, and
passes the rest to expat, so a "billion laughs" or "quadratic blowup" written on one line,
or an external entity (XXE), would otherwise reach the parser. Feeds never need their own
entities; undefined references such as ``&eacute;`` are read by feedparser's loose parser.

A document with recoverable errors ("bozo") keeps the items it parsed; the error is
returned in `ParsedFeed.warnings` for the feed's record. A document that is not a feed at
all (an HTML page, an error page, garbage) raises `FeedError` with ``kind="parse"``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import feedparser

from newswatch.errors import FeedError
from producers.decode import decode_feed

_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>", re.IGNORECASE)
_HTML_START = re.compile(r"^\s*(<!--.*?-->\s*)*(<!doctype\s+html|<html[\s>])",
                         re.IGNORECASE | re.DOTALL)
_UTF8_HEADERS = "application/xml; charset=utf-8"


@dataclass(frozen=True)
class ParsedFeed:
    """What a feed document says: channel fields and its items, as feedparser gives them."""

    title: str
    link: str | None
    language: str | None
    ttl_minutes: int | None
    entries: tuple[Mapping[str, Any], ...]
    version: str
    encoding: str
    warnings: tuple[str, ...] = ()


def strip_doctype(text: str) -> tuple[str, bool]:
    """Remove a DOCTYPE (with its internal subset) from the prolog of ``text``.

    Returns the text and whether the removed DOCTYPE declared entities. Only the prolog is
    scanned (XML declaration, processing instructions, comments, whitespace): a DOCTYPE
    anywhere else is not well-formed and is never given to the strict parser as one.
    """
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t\r\n":
            i += 1
        if text.startswith("<?", i):
            end = text.find("?>", i)
            i = n if end < 0 else end + 2
        elif text.startswith("<!--", i):
            end = text.find("-->", i)
            i = n if end < 0 else end + 3
        elif text[i:i + 9].upper() == "<!DOCTYPE":
            end = _doctype_end(text, i + 9)
            declared_entities = "<!ENTITY" in text[i:end].upper()
            return text[:i] + text[end:], declared_entities
        else:
            break
    return text, False


def _doctype_end(text: str, i: int) -> int:
    """Index just past the ``>`` closing a DOCTYPE, skipping quotes and the ``[...]`` subset."""
    depth, quote, n = 0, "", len(text)
    while i < n:
        char = text[i]
        if quote:
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == "[":
            depth += 1
        elif char == "]":
            depth = max(0, depth - 1)
        elif char == ">" and depth == 0:
            return i + 1
        i += 1
    return n


def _ttl(value: Any) -> int | None:
    try:
        minutes = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return minutes if minutes > 0 else None


def parse(body: bytes, *, http_charset: str | None = None, encoding: str | None = None,
          language: str | None = None) -> ParsedFeed:
    """Parse one feed document; links are left as written (`producers.normalise` resolves
    them: given a base, feedparser would also turn GUIDs such as ``a-1`` into URLs).

    ``encoding`` forces a character encoding; ``language`` helps guess an undeclared one.
    Raises `FeedError` (kind "parse") when the document is not a feed.
    """
    decoded = decode_feed(body, http_charset=http_charset, override=encoding, language=language)
    text, had_entities = strip_doctype(decoded.text)
    warnings: list[str] = []
    if had_entities:
        warnings.append("DOCTYPE with entity declarations removed (entities are not expanded)")
    if _HTML_START.match(text) and not _looks_like_feed(text):
        raise FeedError("the URL returned an HTML page, not a feed", kind="parse")
    document = '<?xml version="1.0" encoding="utf-8"?>\n' + _XML_DECLARATION.sub("", text, 1)
    headers = {"content-type": _UTF8_HEADERS}
    result = feedparser.parse(document.encode("utf-8"), response_headers=headers,
                              sanitize_html=False, resolve_relative_uris=False)
    entries = tuple(result.get("entries", ()))
    version = str(result.get("version") or "")
    if result.get("bozo"):
        problem = result.get("bozo_exception")
        if not version and not entries:
            raise FeedError(f"not a feed: {type(problem).__name__}: {problem}", kind="parse")
        warnings.append(f"recoverable feed error: {type(problem).__name__}: {problem}")
    if not version and not entries:
        raise FeedError("not a feed: no RSS or Atom element found", kind="parse")
    channel: Mapping[str, Any] = result.get("feed", {})
    link = channel.get("link")
    return ParsedFeed(
        title=str(channel.get("title") or ""),
        link=str(link) if link else None,
        language=str(channel.get("language") or "") or None,
        ttl_minutes=_ttl(channel.get("ttl")),
        entries=entries,
        version=version,
        encoding=decoded.encoding,
        warnings=tuple(warnings),
    )


def _looks_like_feed(text: str) -> bool:
    head = text[:4096].lower()
    return "<rss" in head or "<feed" in head or "<rdf:rdf" in head
