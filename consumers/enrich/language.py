"""Which language an article is written in: detected from its text, hinted by its feed.

    identify = LanguageIdentifier()                     # loads py3langid's model once
    guess = identify.guess(text, declared="pt-BR")      # Guess(language="pt-BR", ...)

Detection is py3langid (a naive Bayes model over byte n-grams that ships inside the
package; nothing downloads), restricted to ``NEWS_LANGUAGES`` so that a short title is not
called Aragonese or Luxembourgish. Measured on the 46 items of the multilingual
development set: 100% right on title plus text; on titles alone 93% before the
restriction (three short titles called ``lb`` and ``an``), 100% after. Only the first
``MAX_DETECT_CHARS`` characters are read: ~0.2 ms a document, which is ~2% of English NER
enrichment but ~25% of a blank pipeline's.

So when the feed declares a language, CLD2 (pycld2: Chromium's detector, compiled C++
with its tables inside the wheel) reads the first ``FAST_SAMPLE_CHARS`` characters first,
in ~10 µs: when it is sure (its ``reliable`` flag) that the text is in the declared
language, that is the answer. Anything else (CLD2 unsure, another language, no declared
language) goes to py3langid as before, so the fast path can only confirm a declared
language, never override one. Measured on the labelled items (``bench/bench_language.py``,
641 of them, title plus text): with the right hint CLD2 answers ~95% of them and every
answer is right (py3langid alone: also all right), at ~21 µs a document on average
instead of ~200 µs; declared in each of 11 wrong languages in turn, the wrong one is
taken 82 times in 7,051 (py3langid alone: 77), mostly German tech headlines full of
English words. When CLD2 is unsure of the first characters it reads a longer sample
(``SECOND_SAMPLE_CHARS``) before py3langid is asked: still cheaper by ~8x. Third pass:
for a declared language other than English the first call reads only the title (at most
``SHORT_SAMPLE_CHARS``), and CLD2's best guess over the longer sample, when it is the
declared language, confirms it (``BEST_EFFORT_SHARE``): what sent German items to
py3langid was tech news half in English words, which CLD2 will not call reliable.

Fourth pass: before CLD2, common words (`LanguageMarkers`: "und", "nicht", "não", "что"
... words at least ten times as frequent in one language as in any other) confirm a
declared language from the first ``MARKER_SAMPLE_CHARS`` characters: set intersections in
C, ~3 µs, where one CLD2 call on a title costs ~4 µs plus ~3 µs of Python around it, and
a German feed item enriches in ~0.17 ms (the target is detection under 2% of enrichment).
CLD2 and py3langid decide what the words do not settle (too few marker words, or a text
mixing languages).
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Literal, NamedTuple

import pycld2
from py3langid.langid import MODEL_FILE
from py3langid.langid import LanguageIdentifier as _Py3LangId

log = logging.getLogger(__name__)

# Languages a news article is plausibly written in, among the 97 py3langid knows. Those
# left out (Aragonese, Luxembourgish, Volapük, ...) are what short titles in Spanish or
# German were mistaken for.
NEWS_LANGUAGES = frozenset({
    "af", "am", "ar", "az", "be", "bg", "bn", "bs", "ca", "cs", "cy", "da", "de", "el", "en",
    "es", "et", "eu", "fa", "fi", "fr", "ga", "gl", "gu", "ha", "he", "hi", "hr", "hu", "hy",
    "id", "is", "it", "ja", "ka", "kk", "km", "kn", "ko", "ku", "ky", "lo", "lt", "lv", "mk",
    "ml", "mn", "mr", "ms", "mt", "my", "ne", "nl", "no", "pa", "pl", "ps", "pt", "ro", "ru",
    "si", "sk", "sl", "so", "sq", "sr", "sv", "sw", "ta", "te", "tg", "th", "tl", "tr", "uk",
    "ur", "uz", "vi", "yo", "zh", "zu",
})
CONFIDENT = 0.9  # below this probability a declared language wins over detection
# Without a declared language, below this the text is too short to tell: "US recognises
# Guaido as Venezuela's interim president" is Portuguese at 0.22. The caller then uses
# its default language.
UNSURE = 0.5
MIN_DETECT_CHARS = 12  # fewer letters than this say nothing about a language
# The title and lede decide; the rest costs time, not accuracy: py3langid walks the
# bytes in Python (~1 µs a byte). Measured on the 262 non-English labelled items: right on
# all of them from 200 characters as from 2,000, at 0.19 ms instead of 0.29 ms a document.
MAX_DETECT_CHARS = 300
# CLD2 confirms a declared language from the title and lede. Measured on the 625 labelled
# items with the right hint: 150 characters let it answer 604 (100: 590) at ~10 µs a
# document (300: the same 604 at ~13 µs).
FAST_SAMPLE_CHARS = 150
# ... but a first call reads only this many (cut at a word): CLD2 costs ~1.6 µs a call and
# ~45 ns a character, so ~4 µs here instead of ~8 µs, and it confirms ~90% of the labelled
# non-English labelled items (282 of 341; the rest escalate to 150 and 600 characters).
# Measured (bench/bench_language.py): all 665 still right with the right hint, a wrong
# declared language taken 82 times in 7,315 as before; English hints skip it (below).
SHORT_SAMPLE_CHARS = 56
# When CLD2 is not sure of those 150 characters, it reads this many before py3langid does:
# a longer sample costs ~45 ns a character (~30 µs here) against py3langid's ~250 µs.
# Measured on the 665 labelled items with the right hint (bench/bench_language.py, title
# plus text): py3langid was left 23 of them instead of 9; all 665 still right; a wrong
# declared language taken 87 times in 7,315 instead of 82. CLD2 has a fixed cost of
# ~1.6 µs a call and reads ~45 ns a character (profiled: in a process that has loaded
# spaCy its allocations do not reach the top of the heap, so malloc trimming is no cost).
SECOND_SAMPLE_CHARS = 600
# ... and answers from it only for a clear majority of the text: German tech news half in
# English terms was "reliably" English at 50-54% of 600 characters.
SECOND_SAMPLE_SHARE = 0.7
# ... and when CLD2 is unsure even of those, its best guess (``bestEffort``) confirms the
# declared language when it reads at least this share of the sample in it. The items that
# reached py3langid were tech headlines half in English words ("Gaming-Maus mit
# Touchscreen", "Open-Source-CRM", "Security-Team"), feed tags ("heise+ |", "#heiseshow")
# and English names in a short Portuguese title: CLD2 reads them as ~50% English and
# will not call them reliable, though its best guess is the declared language.
BEST_EFFORT_SHARE = 0.5
WEAK_EVIDENCE_EXCLUDED = frozenset({"en"})
# Common words first (`LanguageMarkers`), before any identifier: read from this many
# characters (the title and the start of the lede; then the second sample when they hold
# too few), this many marker words of the declared language, at least this many times as
# many as the commonest markers of all other languages together. Measured on the 763
# labelled items (bench/bench_language.py, title plus text): with the right hint they
# settle 703 (German 154 of 158, Polish 88 of 88, Portuguese 59 of 61, English 312 of 365:
# declared English is stricter, see `LanguageMarkers.confirm`); declared in each of 11
# wrong languages in turn (8,393 times), they confirmed the wrong one 0 times.
MARKERS_PATH = Path(__file__).with_name("language_markers.json.gz")
MARKER_SAMPLE_CHARS = 80
# ... and the samples read while the words seen so far do not settle it, only the words each
# adds being looked up. Most items the first sample leaves open settle within 100-150
# characters (heise headlines half in English, a short Portuguese title): measured on the
# 1,066 labelled items (sixth session), (100, 150, 300, 600) instead of (300, 600) settles
# 982 instead of 968 (German 158 of 158, so none goes to CLD2) with the same answers
# (right hint 1066/1066, a wrong declared language taken 83 of 11,726 times, marker words
# confirming a wrong one 0 times on long texts, once on titles alone), and detection inside
# enrichment cost a German item 3.5 µs instead of 4.6 µs.
MARKER_LONGER_SAMPLES = (100, 150, 300, 600)
# Chinese and Japanese markers are characters, each looked up: a title's worth of them (a
# Chinese character is about a word) instead of 80.
MARKER_SAMPLE_CHARACTERS = 32
MIN_MARKERS = 2
MARKER_RATIO = 3
# Declared tags seen (each feed has one): their primary subtags and confirmed guesses are
# kept, up to this many, since feed content can declare any string.
MAX_KEPT_TAGS = 256
# CLD2's codes where they differ from the BCP 47 primary subtags used here.
CLD2_CODES = {"iw": "he", "jw": "jv", "nb": "no", "nn": "no", "zh-Hant": "zh"}

Source = Literal["detected", "declared", "none"]


@dataclass(frozen=True)
class Guess:
    """A language decision: a BCP 47 tag (or None), where it came from, and confidence:
    py3langid's probability, CLD2's share of the text, 1.0 for marker words."""

    language: str | None
    source: Source
    confidence: float = 0.0

    @property
    def primary(self) -> str | None:
        """The primary subtag, lower case: ``pt`` for ``pt-BR``."""
        return primary_subtag(self.language)


def primary_subtag(tag: str | None) -> str | None:
    """``pt-BR`` -> ``pt``, ``EN_us`` -> ``en``; None for None or an empty tag."""
    if not tag:
        return None
    head = tag.replace("_", "-").split("-", 1)[0].strip().lower()
    return head or None


class _MarkerSets(NamedTuple):
    """What `LanguageMarkers.confirm` reads for one declared language, in one look-up."""

    own: frozenset[str]  # the language's marker words
    others: frozenset[str]  # the other languages' (see `LanguageMarkers._other_languages`)
    strict: bool  # one word of another language is enough to leave the text undecided
    by_character: bool  # written without spaces: its markers are characters


class LanguageMarkers:
    """Common words that mark a language (scripts/language_markers.py writes them from
    wordfreq's frequency lists): a declared language is confirmed by its own marker words
    in a text, never overridden by them."""

    def __init__(self, markers: Mapping[str, Iterable[str]],
                 common: Mapping[str, Iterable[str]] | None = None,
                 by_character: Iterable[str] = ()) -> None:
        """``markers``: language code -> its marker words; ``common``: the commonest of
        them (default: all), which are what says a text is in another language;
        ``by_character``: languages written without spaces, whose markers are single
        characters."""
        self._own = {language: frozenset(words) for language, words in markers.items()}
        self._common = {language: frozenset(words)
                        for language, words in (markers if common is None else common).items()}
        self._sets: dict[str, _MarkerSets] = {}
        self._by_character = frozenset(by_character)

    def _sets_for(self, language: str) -> _MarkerSets | None:
        """The sets for ``language`` (None: it has no markers), built on first use."""
        own = self._own.get(language)
        if own is None:
            return None
        sets = self._sets[language] = _MarkerSets(
            own, self._other_languages(language), language in WEAK_EVIDENCE_EXCLUDED,
            language in self._by_character)
        return sets

    def _other_languages(self, language: str) -> frozenset[str]:
        """The common marker words of every language but ``language``: ~27,000 words,
        small enough that looking a text's words up stays in the CPU cache (one set of all
        228,000 markers cost ~1.5 µs more a text right after enrichment). For English,
        every marker word of the other languages: English enrichment (NER) is slow enough
        not to notice, and English words fill other languages' news."""
        source = self._own if language in WEAK_EVIDENCE_EXCLUDED else self._common
        return frozenset().union(*(words for other, words in source.items()
                                   if other != language))

    def confirm(self, text: str, language: str) -> bool:
        """Whether the start of ``text`` holds at least ``MIN_MARKERS`` marker words of
        ``language`` and ``MARKER_RATIO`` times as many as common words of other
        languages: first in ``MARKER_SAMPLE_CHARS`` characters, then, while those hold too
        few marker words to say, in each of ``MARKER_LONGER_SAMPLES``. Each distinct word
        counts once. False says nothing: too few words, or a mixed text."""
        # This runs on every article, and on a feed item that enriches in ~0.16 ms the
        # target (under 2%) is ~3 µs: one look-up for the sets, the first sample inline,
        # the rarer longer samples in `_read_further`.
        sets = self._sets.get(language) or self._sets_for(language)
        if sets is None:
            return False
        own, others, strict, by_character = sets
        if by_character:  # Chinese: its characters are its words
            sample = text[:MARKER_SAMPLE_CHARACTERS]
            return _settled(own.intersection(sample), others.intersection(sample), strict)
        # Whitespace-split, punctuation left on: "Touchscreen," is no marker, which only
        # costs a word; a regular expression for words would cost more than the test. Each
        # sample ends at a space: half a word ("nie" of "niedrig") could be a marker.
        cut = len(text)
        if cut > MARKER_SAMPLE_CHARS:  # _space_before inline, for the same reason
            cut = text.rfind(" ", 0, MARKER_SAMPLE_CHARS + 1)
            if cut <= 0:
                cut = MARKER_SAMPLE_CHARS
        words = text[:cut].lower().split()
        mine = own.intersection(words)
        foreign = others.intersection(words)
        if len(mine) >= MIN_MARKERS and len(mine) >= MARKER_RATIO * len(foreign) and not (
                strict and foreign):
            return True
        return _read_further(text, cut, mine, foreign, sets)


def _settled(mine: frozenset[str], foreign: frozenset[str], strict: bool) -> bool:
    """Whether the marker words found confirm the declared language (see ``confirm``).
    English words fill other languages' tech news ("Essential Voice: Nothing erweitert
    ..."): declared English (``strict``), one common word of another language is enough to
    leave the decision to the identifiers (as CLD2's weak evidence is not taken)."""
    return (len(mine) >= MIN_MARKERS and len(mine) >= MARKER_RATIO * len(foreign)
            and not (strict and foreign))


def _read_further(text: str, cut: int, mine: frozenset[str], foreign: frozenset[str],
                  sets: _MarkerSets) -> bool:
    """`LanguageMarkers.confirm` past a first sample (ending at ``cut``) that did not
    settle it, with the marker words found there: only the words each longer sample adds
    are looked up."""
    for size in MARKER_LONGER_SAMPLES:
        if sets.strict and foreign:
            return False
        if cut == len(text) or len(foreign) > len(mine):
            return False  # nothing more to read, or another language leads
        # Too few words, or the declared language's lead too small ("BMW 7er Facelift:
        # Der i7 bleibt bei 400 Volt", two German words to one English): a longer sample,
        # where CLD2 would read a mixed title as English.
        start, cut = cut, _space_before(text, size)
        words = text[start:cut].lower().split()
        mine = mine.union(sets.own.intersection(words))
        foreign = foreign.union(sets.others.intersection(words))
        if _settled(mine, foreign, sets.strict):
            return True
    return False


def _space_before(text: str, size: int) -> int:
    """Where to cut ``text`` to at most ``size`` characters at a space (all of a shorter
    text; a hard cut when the first ``size`` characters have no space)."""
    if len(text) <= size:
        return len(text)
    cut = text.rfind(" ", 0, size + 1)
    return cut if cut > 0 else size


def load_markers(path: Path = MARKERS_PATH) -> LanguageMarkers:
    """The marker words shipped beside this module. Raises ValueError (naming ``path``)
    on a file that is not the generated format."""
    try:
        document = json.loads(gzip.decompress(path.read_bytes()))
        table = document["markers"]
        if not all(isinstance(words, list) for words in table.values()):
            raise TypeError("a language's markers are not a list")
        return LanguageMarkers(table, document.get("common"), document.get("by_character", ()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: not a language markers file ({exc})") from exc


class _Tag(NamedTuple):
    """A declared tag as `LanguageIdentifier.guess` uses it: its primary subtag, and the
    answer when marker words confirm it (the same for every article of a feed)."""

    hint: str | None
    confirmed: Guess


class LanguageIdentifier:
    """Language identification with a declared-language hint. Pure apart from loading
    the marker words (~0.2 s; ~60 MB with the sets of a dozen languages) and py3langid's
    model (~0.4 s, ~30 MB), on first use or by `load`; not for use from several threads
    at once."""

    def __init__(self, languages: frozenset[str] = NEWS_LANGUAGES, *, fast: bool = True,
                 markers: LanguageMarkers | None = None) -> None:
        self._wanted = languages
        self._fast = fast  # False: py3langid decides every text (benchmarks compare)
        self._loaded: _Py3LangId | None = None
        self._markers = markers
        self._tags: dict[str, _Tag] = {}

    def load(self) -> None:
        """Load the marker words and py3langid's model now rather than on the first
        article: a daemon calls this before it reports ready, so that readiness means
        ready and the first batch is not the one that pays (~0.6 s)."""
        self._load_markers()
        _ = self._model

    @property
    def _model(self) -> _Py3LangId:
        """The model, loaded on first use (or by `load`)."""
        if self._loaded is None:
            model = _Py3LangId.from_model_file(MODEL_FILE, norm_probs=True)
            model.set_languages(sorted(self._wanted & set(model.labels)))
            self._loaded = model
        return self._loaded

    def _load_markers(self) -> LanguageMarkers:
        if self._markers is None:
            self._markers = load_markers()
        return self._markers

    def detect(self, text: str) -> tuple[str | None, float]:
        """The most likely language of ``text`` and its probability; (None, 0.0) when the
        text has too few letters to judge."""
        sample = text[:MAX_DETECT_CHARS]
        # Stops at the twelfth letter: counting all 300 characters cost ~15 µs a document.
        letters = (char for char in sample if char.isalpha())
        if next(islice(letters, MIN_DETECT_CHARS - 1, None), None) is None:
            return None, 0.0
        language, confidence = self._model.classify(sample)
        return str(language), float(confidence)

    @staticmethod
    def _cld2_share(text: str, hint: str) -> float:
        """CLD2's share of ``text`` in the declared language ``hint`` when CLD2 confirms
        it, reading as little as it needs (see the constants); 0.0 when it does not."""
        # English is what a prefix of brand names and tech terms looks like to CLD2, so
        # only another declared language may be confirmed on this little evidence.
        weak_ok = hint not in WEAK_EVIDENCE_EXCLUDED
        short = word_prefix(text, SHORT_SAMPLE_CHARS) if weak_ok else ""
        if short:
            fast, share = confirmed(short)
            if fast == hint:
                return share
        if len(text) > len(short):
            fast, share = confirmed(text[:FAST_SAMPLE_CHARS])
            if fast == hint:
                return share
        if len(text) > FAST_SAMPLE_CHARS:
            fast, share = confirmed(text[:SECOND_SAMPLE_CHARS])
            if fast == hint and share >= SECOND_SAMPLE_SHARE:
                return share
        if not weak_ok:
            return 0.0
        fast, share = confirmed(text[:SECOND_SAMPLE_CHARS], best_effort=True)
        return share if fast == hint and share >= BEST_EFFORT_SHARE else 0.0

    def _tag(self, declared: str) -> _Tag:
        """``declared`` parsed, remembered: every article of a feed declares the same tag,
        and parsing it and building the `Guess` again cost ~0.7 µs of a confirmed guess."""
        if len(self._tags) >= MAX_KEPT_TAGS:
            self._tags.clear()
        tag = self._tags[declared] = _Tag(primary_subtag(declared),
                                          Guess(declared, "detected", 1.0))
        return tag

    def guess(self, text: str, declared: str | None = None) -> Guess:
        """Decide the language of ``text`` given the ``declared`` tag (see the module doc)."""
        hint = None
        if declared is not None:
            tag = self._tags.get(declared) or self._tag(declared)
            hint = tag.hint
            if hint is not None and self._fast:
                if (self._markers or self._load_markers()).confirm(text, hint):
                    return tag.confirmed
                share = self._cld2_share(text, hint)
                if share:
                    return Guess(declared, "detected", share)
        detected, confidence = self.detect(text)
        if detected is None:
            return Guess(declared, "declared") if hint else Guess(None, "none")
        if hint == detected:
            return Guess(declared, "detected", confidence)
        if hint and confidence < CONFIDENT:
            return Guess(declared, "declared", confidence)
        if not hint and confidence < UNSURE:
            return Guess(None, "none", confidence)
        return Guess(detected, "detected", confidence)


def word_prefix(text: str, size: int) -> str:
    """The first ``size`` characters of ``text``, cut at the end of its first line (the
    title) when that falls in the second half, else at the last space there: half a word,
    or a title's product name repeated at the start of the text ("Imagen Video: KI
    übernimmt ...\n\nImagen Video ..." is reliably Spanish), reads as another language."""
    if len(text) <= size:
        return text
    cut = text.find("\n", size // 2, size + 1)
    if cut < 0:
        cut = text.rfind(" ", size // 2, size + 1)
    return text[:cut] if cut > 0 else text[:size]


def confirmed(sample: str, *, best_effort: bool = False) -> tuple[str | None, float]:
    """CLD2's language for ``sample`` when it is sure, with the share of the text in that
    language (0-1, not a probability); (None, 0.0) when it is unsure or cannot read it.
    ``best_effort``: CLD2's best guess even from a text too mixed or short to be sure."""
    try:
        reliable, _, details = pycld2.detect(sample, isPlainText=True,
                                             bestEffort=best_effort)
    except (pycld2.error, UnicodeEncodeError):  # not UTF-8 (lone surrogates): py3langid
        return None, 0.0
    code = details[0][1]
    if not reliable or code == "un":
        return None, 0.0
    return CLD2_CODES.get(code, primary_subtag(code)), details[0][2] / 100
