"""Words a token pattern cannot match without: a pre-filter in front of spaCy's `Matcher`.

spaCy's `Matcher` costs time on every token for every pattern it holds (it builds a
`Token` per position and calls each ``IN`` / ``REGEX`` predicate in Python), whether or
not the words a pattern needs occur at all. On full-text articles the topics' token
patterns cost ~1.2 ms per document over the whole text and ~0.9 ms more for exclusions
over candidate sentences, mostly to find nothing.

A pattern's *anchors* are the sets of forms its mandatory tokens must take: a token with
no ``OP`` (or ``+``, ``1``, ``{n}``, ``{n,m}``, ``{n,}`` with n >= 1) and a ``LOWER`` or
``ORTH``/``TEXT`` that is a string or an ``{IN: [...]}`` list of strings. Such a pattern
can only match a text whose tokens include, for each anchor, one of its forms. Tokens with
other attributes (regexes, lemmas, extensions, ``!``, ``?``, ``*``) constrain nothing
here: a pattern without anchors is always run. The test is a set intersection over the
hashes spaCy itself compares (the tokens' ``LOWER`` and ``ORTH`` ids), so a pattern it
skips is one the `Matcher` could not have matched: the output is the same, only sooner.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from spacy.attrs import LOWER, ORTH
from spacy.matcher import Matcher
from spacy.strings import get_string_id
from spacy.tokens import Doc, Span
from spacy.vocab import Vocab

Pattern = Sequence[Mapping[str, Any]]
Anchor = tuple[int, frozenset[int]]  # (LOWER or ORTH, hashes of the forms it accepts)
_ATTRS = {"LOWER": LOWER, "ORTH": ORTH, "TEXT": ORTH}
_MANDATORY_OPS = frozenset({"+", "1"})
_COUNT_OP = re.compile(r"\{(\d+)(?:,\d*)?\}")
_COUNT_BOUNDS = re.compile(r"\{(\d*)(,)?(\d*)\}")  # {n}, {n,m}, {,m}, {n,}
MAX_SUBMATCHERS = 32  # matchers of key subsets built; a few subsets recur on real text


def _mandatory(spec: Mapping[str, Any]) -> bool:
    """Whether a token spec must match at least one token for its pattern to match."""
    op = next((value for key, value in spec.items() if key.upper() == "OP"), None)
    if op is None or op in _MANDATORY_OPS:
        return True
    counted = _COUNT_OP.fullmatch(op) if isinstance(op, str) else None
    return counted is not None and int(counted.group(1)) >= 1


def token_anchors(spec: Mapping[str, Any]) -> list[Anchor]:
    """The exact-form conditions of one token spec (see the module docstring)."""
    anchors: list[Anchor] = []
    for key, value in spec.items():
        attr = _ATTRS.get(key.upper()) if isinstance(key, str) else None
        if attr is None:
            continue
        if isinstance(value, str):
            anchors.append((attr, frozenset({get_string_id(value)})))
        elif isinstance(value, Mapping) and isinstance(value.get("IN"), list) and all(
                isinstance(form, str) for form in value["IN"]):
            anchors.append((attr, frozenset(get_string_id(form) for form in value["IN"])))
    return anchors


def pattern_length(pattern: Pattern) -> int | None:
    """The most tokens a match of ``pattern`` can span; None when unbounded (``+``,
    ``*``, ``{n,}``)."""
    total = 0
    for spec in pattern:
        op = next((value for key, value in spec.items() if key.upper() == "OP"), None)
        if op is None or op in ("?", "!", "1"):
            total += 1
            continue
        counted = _COUNT_BOUNDS.fullmatch(op) if isinstance(op, str) else None
        if counted is None or (counted.group(2) is not None and not counted.group(3)):
            return None  # "+", "*", "{n,}"
        total += int(counted.group(3) or counted.group(1))
    return total


def pattern_anchors(pattern: Pattern) -> tuple[Anchor, ...]:
    """Every anchor of ``pattern``'s mandatory tokens; empty: nothing to filter on."""
    return tuple(anchor for spec in pattern if _mandatory(spec)
                 for anchor in token_anchors(spec))


@dataclass(frozen=True)
class Forms:
    """The ``LOWER`` and ``ORTH`` hashes present in a text (a doc, or a slice of one)."""

    lower: frozenset[int]
    orth: frozenset[int]

    @classmethod
    def of(cls, array: np.ndarray) -> Forms:
        """From rows of ``doc.to_array([LOWER, ORTH])``."""
        return cls(frozenset(array[:, 0].tolist()), frozenset(array[:, 1].tolist()))

    def has(self, anchor: Anchor) -> bool:
        attr, forms = anchor
        return not forms.isdisjoint(self.lower if attr == LOWER else self.orth)


def doc_forms(doc: Doc) -> np.ndarray:
    """The doc's ``LOWER`` and ``ORTH`` hashes, one row per token (`Forms.of` a slice)."""
    return doc.to_array([LOWER, ORTH])


class KeyFilter:
    """Which keys of a `Matcher` can match a text, from their patterns' anchors.

    ``patterns`` maps each key to the patterns added under it. A key is possible when one
    of its patterns has every anchor present; a pattern without anchors always is.
    """

    def __init__(self, patterns: Mapping[str, Iterable[Pattern]]) -> None:
        self._keys: dict[str, list[tuple[Anchor, ...]]] = {
            key: [pattern_anchors(pattern) for pattern in found]
            for key, found in patterns.items()}

    @property
    def keys(self) -> frozenset[str]:
        return frozenset(self._keys)

    def possible(self, forms: Forms) -> frozenset[str]:
        """The keys that could match a text with these ``forms``."""
        return frozenset(key for key, anchored in self._keys.items()
                         if any(all(forms.has(anchor) for anchor in anchors)
                                for anchors in anchored))

    def any_possible(self, forms: Forms) -> bool:
        return any(all(forms.has(anchor) for anchor in anchors)
                   for anchored in self._keys.values() for anchors in anchored)


class FilteredMatcher:
    """A `Matcher` of greedy-LONGEST keys that runs only the keys a doc could match.

    Calling it gives the spans the full `Matcher` would (a key's matches and its greedy
    filter depend on its own patterns only); a doc where no key can match costs the set
    test alone, one where some can runs a matcher of those keys. The first
    ``MAX_SUBMATCHERS`` subsets met get a matcher each, kept; a doc needing another subset
    runs the full matcher, so a topics file with many pattern keys never rebuilds
    matchers in a loop (it is then no slower than without the filter).
    """

    def __init__(self, vocab: Vocab, full: Matcher,
                 patterns: Mapping[str, Sequence[Pattern]]) -> None:
        self._vocab = vocab
        self._full = full
        self._patterns = patterns
        self._filter = KeyFilter(patterns)
        self._subsets: dict[frozenset[str], Matcher] = {}
        self._stretch: dict[frozenset[str], _Windows | None] = {}

    def __call__(self, doc: Doc | Span, forms: Forms, words: np.ndarray | None = None
                 ) -> list[Span]:
        """The matches in ``doc`` (``forms`` its words). With ``words`` (the doc's
        `doc_forms`, a whole doc only), a subset whose patterns are all anchored and of
        bounded length runs only over the stretches within a pattern's length of a token
        holding one of their anchor forms (`_Windows`): every match holds such a token, so
        every match lies in one stretch, whole, and stretches apart share no match for the
        greedy filter to choose between."""
        keys = self._filter.possible(forms)
        if not keys:
            return []
        matcher = self._full if keys == self._filter.keys else self._subset(keys)
        windows = self._windows(keys) if words is not None and isinstance(doc, Doc) else None
        if windows is None:
            return list(matcher(doc, as_spans=True))
        assert words is not None
        found: list[Span] = []
        for start, end in windows.stretches(words):
            found += matcher(doc[start:end], as_spans=True)
        return found

    def _windows(self, keys: frozenset[str]) -> _Windows | None:
        if keys not in self._stretch:
            if len(self._stretch) >= MAX_SUBMATCHERS:
                return None
            self._stretch[keys] = _Windows.of([pattern for key in sorted(keys)
                                               for pattern in self._patterns[key]])
        return self._stretch[keys]

    def _subset(self, keys: frozenset[str]) -> Matcher:
        matcher = self._subsets.get(keys)
        if matcher is not None:
            return matcher
        if len(self._subsets) >= MAX_SUBMATCHERS:
            return self._full
        matcher = Matcher(self._vocab)  # the patterns were validated by the full matcher
        for key in sorted(keys):
            matcher.add(key, [[dict(spec) for spec in pattern] for pattern in self._patterns[key]],
                        greedy="LONGEST")
        self._subsets[keys] = matcher
        return matcher


@dataclass(frozen=True)
class _Windows:
    """Where patterns can match in a doc: within ``reach`` tokens of a token whose
    ``LOWER`` or ``ORTH`` is one of their anchor forms."""

    lower: np.ndarray
    orth: np.ndarray
    reach: int  # the longest match any of the patterns can make

    @classmethod
    def of(cls, patterns: Sequence[Pattern]) -> _Windows | None:
        """None when some pattern has no anchor or no bounded length (run everywhere)."""
        lower: set[int] = set()
        orth: set[int] = set()
        reach = 0
        for pattern in patterns:
            anchors = pattern_anchors(pattern)
            length = pattern_length(pattern)
            if not anchors or length is None:
                return None
            reach = max(reach, length)
            for attr, forms in anchors:
                (lower if attr == LOWER else orth).update(forms)
        return cls(np.array(sorted(lower), dtype=np.uint64),
                   np.array(sorted(orth), dtype=np.uint64), reach)

    def stretches(self, words: np.ndarray) -> list[tuple[int, int]]:
        """Token ranges [start, end), apart and in order, covering every token within
        ``reach - 1`` of an anchor token (a match holding it spans at most that far)."""
        at = np.flatnonzero(np.isin(words[:, 0], self.lower) | np.isin(words[:, 1], self.orth))
        out: list[tuple[int, int]] = []
        for i in at.tolist():
            start, end = max(0, i - self.reach + 1), min(len(words), i + self.reach)
            if out and start <= out[-1][1]:
                out[-1] = (out[-1][0], end)
            else:
                out.append((start, end))
        return out
