"""Near-duplicate detection: the same text republished (wire copy, a re-post under a new
URL, a minor edit) is recognised as a copy of an article already seen.

Method, chosen for headlines and short summaries (measured in docs/stories.md):

- texts of at least `MIN_SIMHASH_WORDS` words get a 64-bit SimHash over word
  3-shingles; two texts are copies when their hashes differ in at most `MAX_BITS` bits.
  The hash is cut into `MAX_BITS + 1` bands, and by the pigeonhole principle two hashes
  within `MAX_BITS` bits agree exactly on at least one band, so an index of band values
  finds every candidate with dictionary look-ups, never a scan;
- shorter texts (a bare headline) have too few shingles for SimHash to be reliable; they
  are copies only when their normalised words are identical.

`DuplicateIndex` holds the fingerprints of the articles of open stories only; the
clusterer removes a story's fingerprints when it closes the story, so memory follows open
stories, not history.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from consumers.stories.text import shingles, words

MAX_BITS = 3
BANDS = MAX_BITS + 1
BAND_BITS = 64 // BANDS
MIN_SIMHASH_WORDS = 12


def _hash64(text: str) -> int:
    # blake2b is deterministic across processes and runs (Python's hash() is salted).
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


def simhash(features: Iterable[str]) -> int:
    """Charikar's SimHash of the features: bit i is set when most features' hashes set it."""
    totals = [0] * 64
    for feature in features:
        value = _hash64(feature)
        for bit in range(64):
            totals[bit] += 1 if value >> bit & 1 else -1
    result = 0
    for bit, total in enumerate(totals):
        if total > 0:
            result |= 1 << bit
    return result


@dataclass(frozen=True)
class Fingerprint:
    """What the index keeps of one text: an exact key, or a SimHash with its bands."""

    exact: str | None
    hash: int | None

    def index_keys(self) -> list[tuple[int, int]]:
        """The index keys: (-1, exact hash) or (band number, band value) for each band."""
        if self.hash is None:
            assert self.exact is not None
            return [(-1, _hash64(self.exact))]
        mask = (1 << BAND_BITS) - 1
        return [(band, self.hash >> (band * BAND_BITS) & mask) for band in range(BANDS)]


def fingerprint(text: str) -> Fingerprint | None:
    """The text's fingerprint; None for a text with no words (nothing to copy)."""
    tokens = words(text)
    if not tokens:
        return None
    if len(tokens) < MIN_SIMHASH_WORDS:
        return Fingerprint(exact=" ".join(tokens), hash=None)
    return Fingerprint(exact=None, hash=simhash(sorted(shingles(text))))


def is_copy(a: Fingerprint, b: Fingerprint) -> bool:
    if a.hash is not None and b.hash is not None:
        return (a.hash ^ b.hash).bit_count() <= MAX_BITS
    return a.exact is not None and a.exact == b.exact


class DuplicateIndex:
    """Fingerprints of the articles of open stories, found by band."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[int, int], list[str]] = {}
        self._prints: dict[str, Fingerprint] = {}

    def __len__(self) -> int:
        return len(self._prints)

    def find(self, print_: Fingerprint) -> str | None:
        """The id of the earliest indexed article that ``print_`` is a copy of, if any."""
        for key in print_.index_keys():
            for article_id in self._by_key.get(key, ()):
                if is_copy(print_, self._prints[article_id]):
                    return article_id
        return None

    def add(self, article_id: str, print_: Fingerprint) -> None:
        self._prints[article_id] = print_
        for key in print_.index_keys():
            self._by_key.setdefault(key, []).append(article_id)

    def remove(self, article_id: str) -> None:
        print_ = self._prints.pop(article_id, None)
        if print_ is None:
            return
        for key in print_.index_keys():
            ids = self._by_key.get(key)
            if ids is None:
                continue
            ids.remove(article_id)
            if not ids:
                del self._by_key[key]
