"""Feed bytes to feed items, with feedparser (RSS 0.9x/1.0/2.0, Atom 0.3/1.0, CDF).

Before feedparser sees a document, it is decoded (`producers.decode`), stripped of any
DOCTYPE, and re-declared as UTF-8. Removing the DOCTYPE removes every entity declaration,
so no entity can expand: feedparser only drops entity declarations that start a line, and
passes the rest to expat, so a "billion laughs" or "quadratic blowup" written on one line,
or an external entity (XXE), would otherwise reach the parser. Feeds never need their own
entities; undefined references such as ``&eacute;`` are read by feedparser's loose parser.

A document with recoverable errors ("bozo") keeps the items it parsed; the error is
returned in `ParsedFeed.warnings` for the feed's record. So is an encoding the document
lies about or leaves undeclared. `ParsedFeed.repairs` names each repair by kind, for the
caller's log and metric. A document that is not a feed at all (an HTML page, an error
page, garbage) raises `FeedError` with ``kind="parse"``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import feedparser

from newswatch.errors import FeedError
from producers.decode import Decoded, decode_feed, same_encoding

_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>", re.IGNORECASE)
_HTML_START = re.compile(r"^\s*(<!--.*?-->\s*)*(<!doctype\s+html|<html[\s>])",
                         re.IGNORECASE | re.DOTALL)
_UTF8_HEADERS = "application/xml; charset=utf-8"
# feedparser looks for an e-mail address in the text of author-like elements with a regex
# that takes quadratic time on a long run of letters: a 1 MB <author> (or dc:creator,
# itunes:author, managingEditor, webMaster) held a worker for hours; 50 KB took 10-18 s
# (found by tests/hostile). Their text is cut first; no name needs more than this.
_AUTHOR_FIELD = re.compile(
    r"<(?:[\w.-]+:)?(?:author|creator|contributor|publisher|webmaster|managingeditor|owner|"
    r"name|email)(?:\s[^>]*)?>", re.IGNORECASE)
MAX_AUTHOR_FIELD_CHARS = 1_000
_MARKUP = re.compile(r"<!\[CDATA\[|\]\]>|<[^>]*>?")


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
    # What was repaired to read the document, by kind: xml_recovered, entities_removed,
    # encoding_mismatch, encoding_guessed, invalid_bytes, control_chars.
    repairs: tuple[str, ...] = ()


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


def clip_author_fields(text: str, limit: int = MAX_AUTHOR_FIELD_CHARS) -> tuple[str, bool]:
    """``text`` with each author-like element longer than ``limit`` characters replaced by
    its first ``limit`` characters of text, and whether any was; linear in ``text``.

    The whole element is bounded, not each run of text in it: feedparser joins the runs
    split by comments, CDATA sections or child tags before it searches them.
    """
    parts: list[str] = []
    pos = 0
    for match in _AUTHOR_FIELD.finditer(text):
        body = match.end()
        if body < pos or match.group(0).endswith("/>"):
            continue
        qname = match.group(0)[1:].split(">")[0].split()[0]
        close = text.find(f"</{qname}", body)
        if close < 0:  # never closed: bound the run of text that follows
            close = text.find("<", body)
            close = len(text) if close < 0 else close
        if close - body <= limit:
            continue
        # Markup and CDATA brackets dropped, the rest kept as character data.
        words = _MARKUP.sub("", text[body:close])[:limit].replace("]]>", "")
        parts.append(text[pos:body] + "<![CDATA[" + words + "]]>")
        pos = close
    if not parts:
        return text, False
    parts.append(text[pos:])
    return "".join(parts), True


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
    """Parse one feed document; links are left as written (`producers.entries` resolves
    them: given a base, feedparser would also turn GUIDs such as ``a-1`` into URLs).

    ``encoding`` forces a character encoding; ``language`` helps guess an undeclared one.
    Raises `FeedError` (kind "parse") when the document is not a feed.
    """
    decoded = decode_feed(body, http_charset=http_charset, override=encoding, language=language)
    text, had_entities = strip_doctype(decoded.text)
    warnings, repairs = _encoding_notes(decoded)
    if had_entities:
        warnings.append("DOCTYPE with entity declarations removed (entities are not expanded)")
        repairs.append("entities_removed")
    text, clipped = clip_author_fields(text)
    if clipped:
        repairs.append("clipped")
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
        repairs.append("xml_recovered")
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
        repairs=tuple(repairs),
    )


def _encoding_notes(decoded: Decoded) -> tuple[list[str], list[str]]:
    """Warnings and repair kinds for what decoding had to undo or guess."""
    warnings: list[str] = []
    repairs: list[str] = []
    if decoded.source == "override":
        return warnings, repairs  # the operator said what it is
    if decoded.declared and not same_encoding(decoded.declared, decoded.encoding):
        warnings.append(f"the feed declares {decoded.declared} but its bytes are "
                        f"{decoded.encoding}; read as {decoded.encoding}")
        repairs.append("encoding_mismatch")
    elif decoded.declared is None and decoded.source in ("language", "fallback"):
        warnings.append(f"no encoding declared and the bytes are not UTF-8; "
                        f"read as {decoded.encoding}")
        repairs.append("encoding_guessed")
    if decoded.invalid_bytes:
        warnings.append(f"{decoded.invalid_bytes} bytes invalid in UTF-8 replaced by U+FFFD")
        repairs.append("invalid_bytes")
    if decoded.removed_chars:
        repairs.append("control_chars")  # XML forbids them; nobody could see them
    return warnings, repairs


def _looks_like_feed(text: str) -> bool:
    head = text[:4096].lower()
    return "<rss" in head or "<feed" in head or "<rdf:rdf" in head
