"""Feed bytes to text: find the real character encoding, whatever the feed claims.

Real feeds lie about their encoding (MailOnline declares ISO-8859-1 and sends UTF-8),
declare encodings Python's XML parser refuses (gb2312), or declare nothing at all while
sending Latin-1 (UOL). The order of trust, first match wins:

1. the feed's ``encoding`` in feeds.yaml (an operator's override);
2. a byte-order mark (UTF-8, UTF-16, UTF-32), or UTF-16 recognisable without one;
3. strict UTF-8, when the bytes decode as UTF-8: a Latin-1 or Cyrillic text is practically
   never valid UTF-8 by accident, while a wrong "ISO-8859-1" label on UTF-8 is common;
   and UTF-8 with the few invalid bytes replaced, when valid multi-byte sequences far
   outnumber the invalid ones (a UTF-8 feed with one corrupt item): reading it all as
   windows-1252 instead would turn every other item's accents into mojibake;
4. the declarations: the HTTP charset, then the XML declaration (the XML declaration first
   when the HTTP charset is ISO-8859-1 or US-ASCII, which servers send by default), each
   widened to the superset that browsers use (ISO-8859-1 -> windows-1252, gb2312 ->
   gb18030) and accepted only when the bytes decode strictly;
5. a guess from the language (feeds.yaml, or ``<language>``/``xml:lang`` read from the raw
   bytes): windows-1251 for Russian, gb18030 for Chinese, ..., windows-1252 otherwise.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

_XML_DECL = re.compile(rb"^\s*<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._:-]+)[\"']",
                       re.IGNORECASE)
_XML_DECL_TEXT = re.compile(_XML_DECL.pattern.decode("ascii"), re.IGNORECASE)
_LANG_HINT = re.compile(
    rb"<(?:\w+:)?language>\s*([A-Za-z]{2,3})|xml:lang\s*=\s*[\"']([A-Za-z]{2,3})")

# What browsers actually decode when a document names these (WHATWG Encoding Standard).
_SUPERSETS = {
    "iso8859_1": "cp1252", "ascii": "cp1252", "iso8859_9": "cp1254", "iso8859_11": "cp874",
    "gb2312": "gb18030", "gbk": "gb18030", "big5": "big5hkscs", "euc_kr": "cp949",
    "shift_jis": "cp932",
}
# Servers send these for text/* by default, so they say little about the document.
_WEAK_HTTP_CHARSETS = {"iso8859_1", "ascii", "cp1252"}
# The legacy encoding most used for a language's undeclared feeds.
_LEGACY_BY_LANGUAGE = {
    "ru": "cp1251", "uk": "cp1251", "be": "cp1251", "bg": "cp1251", "sr": "cp1251",
    "mk": "cp1251", "kk": "cp1251", "zh": "gb18030", "ja": "cp932", "ko": "cp949",
    "el": "cp1253", "tr": "cp1254", "he": "cp1255", "ar": "cp1256", "fa": "cp1256",
    "lt": "cp1257", "lv": "cp1257", "et": "cp1257", "vi": "cp1258", "th": "cp874",
    "pl": "cp1250", "cs": "cp1250", "sk": "cp1250", "hu": "cp1250", "sl": "cp1250",
    "hr": "cp1250", "ro": "cp1250", "bs": "cp1250",
}
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# Characters XML 1.0 forbids; one of them makes the strict parser give up on the feed.
# Removed with a regex, which scans in C (str.translate with a dict looks every character
# of a non-ASCII text up in the dict: 16 times slower on a full-text feed).
_XML_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]+")


_LATIN1_FOR_UNDEFINED = "newswatch-latin1"


def _latin1_for_undefined(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return error.object[error.start:error.end].decode("latin-1"), error.end


codecs.register_error(_LATIN1_FOR_UNDEFINED, _latin1_for_undefined)


@dataclass(frozen=True)
class Decoded:
    """The feed as text, the encoding it was read with and how that was decided."""

    text: str
    encoding: str
    source: str  # override, bom, utf-8, utf-8-repaired, http, xml, language, fallback
    declared: str | None = None  # as the XML declaration (or a non-default HTTP charset) says
    invalid_bytes: int = 0  # bytes that are not UTF-8, replaced by U+FFFD (utf-8-repaired)
    removed_chars: int = 0  # characters XML forbids (NUL, other controls), removed


def _codec(name: str | bytes | None) -> str | None:
    if not name:
        return None
    if isinstance(name, bytes):
        name = name.decode("ascii", "ignore")
    try:
        canonical = codecs.lookup(name.strip()).name.replace("-", "_")
    except LookupError:
        return None
    return _SUPERSETS.get(canonical, canonical)


def _strict(body: bytes, encoding: str) -> str | None:
    try:
        return body.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return None


def declared_xml_encoding(body: bytes) -> str | None:
    """The encoding named in the XML declaration, as written, if any."""
    match = _XML_DECL.match(body[:1024])
    return match.group(1).decode("ascii") if match else None


def language_hint(body: bytes) -> str | None:
    """A primary language subtag read from ``<language>`` or ``xml:lang`` in raw bytes."""
    match = _LANG_HINT.search(body[:16384])
    if not match:
        return None
    return (match.group(1) or match.group(2)).decode("ascii").lower()


def decode_feed(body: bytes, *, http_charset: str | None = None, override: str | None = None,
                language: str | None = None) -> Decoded:
    """Decode ``body`` following the order of trust in the module docstring.

    Never raises: the last resort decodes with replacement characters. The text has the
    characters XML forbids removed and keeps its XML declaration (callers re-declare).
    """
    forced = _codec(override)
    if forced is not None:
        return _done(body.decode(forced, errors="replace"), forced, "override")
    http = _codec(http_charset)
    written = declared_xml_encoding(body)
    xml = _codec(written)
    declared = written or (http_charset if http not in _WEAK_HTTP_CHARSETS else None)
    for bom, encoding in _BOMS:
        if body.startswith(bom):
            text = body[len(bom):].decode(encoding, errors="replace")
            return _done(text, encoding, "bom", _declared_in(text))
    if body.startswith(b"<\x00?\x00"):
        text = body.decode("utf-16-le", errors="replace")
        return _done(text, "utf-16-le", "bom", _declared_in(text))
    if body.startswith(b"\x00<\x00?"):
        text = body.decode("utf-16-be", errors="replace")
        return _done(text, "utf-16-be", "bom", _declared_in(text))
    as_utf8 = _strict(body, "utf-8")
    if as_utf8 is not None:
        return _done(as_utf8, "utf-8", "utf-8", declared)
    repaired = _mostly_utf8(body)
    if repaired is not None:
        return _done(repaired[0], "utf-8", "utf-8-repaired", declared, invalid_bytes=repaired[1])

    candidates = [("xml", xml), ("http", http)]
    if http is not None and http not in _WEAK_HTTP_CHARSETS:
        candidates.reverse()
    for source, candidate in candidates:
        if candidate is None or candidate.startswith(("utf_16", "utf_32")):
            continue  # a UTF-16 label on bytes without a BOM is a lie we cannot undo
        decoded = _strict(body, candidate)
        if decoded is not None:
            return _done(decoded, candidate, source, declared)

    primary = (language or language_hint(body) or "").split("-")[0].split("_")[0].lower()
    guess = _LEGACY_BY_LANGUAGE.get(primary, "cp1252")
    # Bytes the guess leaves undefined (five in windows-1252) are read as Latin-1, as
    # browsers do, so no byte is lost or replaced.
    text = body.decode(guess, errors=_LATIN1_FOR_UNDEFINED)
    return _done(text, guess, "language" if primary in _LEGACY_BY_LANGUAGE else "fallback",
                 declared)


def same_encoding(one: str, other: str) -> bool:
    """Whether two encoding names mean the same decoding (a superset counts as the same,
    as do the byte orders of UTF-16 and UTF-32)."""
    def family(name: str) -> str:
        codec = _codec(name) or name
        for prefix in ("utf_16", "utf_32", "utf_8"):
            if codec.startswith(prefix):
                return prefix
        return codec
    return family(one) == family(other)


def _declared_in(text: str) -> str | None:
    """The encoding an already decoded document declares (e.g. UTF-16 saying "utf-8")."""
    match = _XML_DECL_TEXT.match(text[:1024])
    return match.group(1) if match else None


def _mostly_utf8(body: bytes) -> tuple[str, int] | None:
    """``body`` as UTF-8 with invalid bytes replaced, and how many there were, when valid
    multi-byte characters outnumber the invalid bytes at least two to one; else None.

    Latin-1, Cyrillic or GBK text makes almost no valid UTF-8 multi-byte sequences and
    plenty of invalid ones, so it never passes; a UTF-8 feed with one corrupt item does.
    """
    text = body.decode("utf-8", errors="replace")
    invalid = text.count("\ufffd") - body.count("\ufffd".encode())
    non_ascii = len(text) - len(text.encode("ascii", errors="ignore"))
    valid = non_ascii - text.count("\ufffd")
    if invalid <= 0 or valid < 2 * invalid:
        return None
    return text, invalid


def _done(text: str, encoding: str, source: str, declared: str | None = None, *,
          invalid_bytes: int = 0) -> Decoded:
    clean = _XML_ILLEGAL.sub("", text)
    return Decoded(text=clean, encoding=encoding, source=source, declared=declared,
                   invalid_bytes=invalid_bytes, removed_chars=len(text) - len(clean))
