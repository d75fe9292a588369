"""Turning an article's words into the features the story clusterer compares.

Two kinds of feature, for two jobs:

- `terms`: the salient words of the title and the start of the text, normalised
  (lower case, accents and possessives folded, a light plural stem), stop words dropped.
  Story placement compares these.
- `shingles`: overlapping word triples of the whole normalised text, for near-duplicate
  detection, where word order matters and any word counts.

Pure functions, no state: the same text always gives the same features.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

# Unicode letters and digits; an apostrophe or a dot inside a word keeps it whole
# ("mcdonald's", "u.s.", "7.1").
WORD = re.compile(r"[^\W_]+(?:['’.][^\W_]+)*", re.UNICODE)
# Words that say nothing about which event an article reports. Kept small on purpose:
# salience (see `consumers.stories.salience`) down-weights the rest of the common words.
STOP_WORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before
being below between both but by can could did do does doing down during each few for from
further had has have having he her here hers herself him himself his how i if in into is it
its itself just me more most my myself no nor not now of off on once only or other our ours
out over own same she should so some such than that the their theirs them themselves then
there these they this those through to too under until up very was we were what when where
which while who whom why will with would you your yours yourself new says said say one two
may might must us via amid vs video photos photo watch update updated live report reports
news today week year day first last get gets got make makes here's what's it's
""".split())  # noqa: SIM905 (a word list reads better as text)
# A title is cut at the first of these when what follows names the outlet ("... - BBC").
_OUTLET_SUFFIX = re.compile(r"\s+[-|–—:]\s+[^-|–—:]{1,40}$")


def fold(text: str) -> str:
    """Lower case without accents: "Café Zürich" -> "cafe zurich"."""
    if text.isascii():  # most feed text: no accents to fold, and casefold is lower
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def stem(word: str) -> str:
    """A light, deterministic stem: possessive and plural endings only.

    Heavier stemming merged unrelated words in tests ("news"/"new"); plural folding alone
    makes "recalls"/"recall" and "stars"/"star" one term.
    """
    for suffix in ("'s", "’s"):
        if word.endswith(suffix):
            word = word[: -len(suffix)]
    word = word.replace("’", "'").replace("'", "").replace(".", "")
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


# Bounded: a word's stem is looked up once per article for every article, and a stream's
# vocabulary repeats (the cache is what makes tokenising a 40-word summary cheap).
_stem = lru_cache(maxsize=65_536)(stem)


def words(text: str) -> list[str]:
    """Every word of ``text``, folded and stemmed, in order (stop words kept)."""
    return [w for w in map(_stem, WORD.findall(fold(text))) if w]


def strip_outlet(title: str) -> str:
    """The title without a trailing " - Outlet Name" that aggregators append."""
    return _OUTLET_SUFFIX.sub("", title)


def terms(text: str) -> list[str]:
    """The distinct content words of ``text`` in first-seen order: no stop words, no
    one-letter words, no pure punctuation."""
    return list(surfaces(text))


def surfaces(text: str) -> dict[str, str]:
    """Each content word of ``text`` (as `terms` gives them) with its surface form: lower
    case with accents, as word-frequency tables spell it ("ameaça", not "ameaca")."""
    seen: dict[str, str] = {}
    for token in WORD.findall(text):
        word, surface = content_word(token)
        if word and word not in seen:
            seen[word] = surface
    return seen


@lru_cache(maxsize=65_536)
def content_word(token: str) -> tuple[str, str]:
    """(term, surface) of one token; ("", "") for a stop word or a one-letter word.
    Cached for the same reason as `_stem`."""
    surface = token.casefold()
    word = stem(fold(surface))
    if len(word) < 2 or word in STOP_WORDS:
        return "", ""
    for suffix in ("'s", "’s"):
        if surface.endswith(suffix):
            surface = surface[: -len(suffix)]
    return word, surface


def shingles(text: str, size: int = 3) -> set[str]:
    """The set of ``size``-word shingles of ``text`` (the whole text when shorter)."""
    tokens = words(text)
    if len(tokens) <= size:
        return {" ".join(tokens)} if tokens else set()
    return {" ".join(tokens[i:i + size]) for i in range(len(tokens) - size + 1)}


# A hundred words of prose take ~600 characters; this bounds what a text of a few words
# spread over pages of punctuation can make the clusterer keep.
LEAD_CHARS_PER_WORD = 20


def lead(text: str, limit: int) -> str:
    """``text`` up to the end of its ``limit``-th word, as written: what the clusterer
    reads of a text, punctuation and capitals kept (they tell names and list-shaped
    digests; ``first_words`` of it is ``first_words`` of the whole text, unless the
    words are spread over more than ``limit * LEAD_CHARS_PER_WORD`` characters, where
    it is cut: the text is untrusted, and ``story_articles`` keeps this)."""
    end = 0
    for count, match in enumerate(WORD.finditer(text, 0, limit * LEAD_CHARS_PER_WORD), 1):
        end = match.end()
        if count >= limit:
            break
    return text[:end]


def leads(text: str, limit: int, shorter: int) -> tuple[str, str, str]:
    """In one pass: ``lead(text, limit)``, ``first_words(text, limit)`` and
    ``lead(text, shorter)`` (what the clusterer keeps, copies and weighs of a text)."""
    found: list[str] = []
    end = short_end = 0
    for match in WORD.finditer(text, 0, limit * LEAD_CHARS_PER_WORD):
        found.append(match.group())
        end = match.end()
        if len(found) == shorter:
            short_end = end
        if len(found) >= limit:
            break
    if len(found) < shorter:
        short_end = end
    return text[:end], " ".join(found), text[:short_end]


def first_words(text: str, limit: int) -> str:
    """The first ``limit`` words of ``text`` (a summary's lead carries its event)."""
    out: list[str] = []
    for match in WORD.finditer(text):
        out.append(match.group())
        if len(out) >= limit:
            break
    return " ".join(out)


def distinct(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
