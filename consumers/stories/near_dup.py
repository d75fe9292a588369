"""Near-duplicate detection: the same text republished (wire copy, a re-post under a new
URL, a minor edit) is recognised as a copy of an article already seen.

Method, chosen for headlines and short summaries (docs/stories.md has the measurements):

- texts of at least `MIN_MINHASH_WORDS` words get a MinHash signature of `HASHES`
  values over their word 3-shingles; two texts are copies when their signatures agree in
  at least `COPY_AGREEMENT` of the positions (an estimate of the shingles' Jaccard
  similarity: a one-word edit in a 40-word lead keeps about 0.85). SimHash (64 bits,
  3-bit tolerance) was tried first and missed exactly that case: 7 bits differed;
- the signature is cut into `BANDS` bands of `ROWS` values; an index of band hashes
  finds the candidates with dictionary look-ups, never a scan (two texts at Jaccard 0.7
  share a band with probability 1 - (1 - 0.7^2)^16 > 0.99);
- shorter texts (a bare headline) have too few shingles for a reliable estimate; they
  are copies only when their normalised words are identical.

`DuplicateIndex` holds the fingerprints of the articles of open stories only; the
clusterer removes a story's fingerprints when it closes the story, so memory follows open
stories, not history. Deterministic: blake2b hashes and fixed hash parameters.
"""

from __future__ import annotations

import hashlib
from array import array
from dataclasses import dataclass

import numpy as np

from consumers.stories.text import shingles, words

HASHES = 32
ROWS = 2
BANDS = HASHES // ROWS
COPY_AGREEMENT = 0.7
MIN_MINHASH_WORDS = 12
_MASK = (1 << 64) - 1
_PRIME = (1 << 61) - 1
# Fixed, odd multipliers and offsets: the same text has the same signature in every run.
_PARAMS = tuple(
    (int.from_bytes(hashlib.blake2b(f"a{i}".encode(), digest_size=8).digest(), "big") | 1,
     int.from_bytes(hashlib.blake2b(f"b{i}".encode(), digest_size=8).digest(), "big"))
    for i in range(HASHES))
# The same parameters as columns, for computing all HASHES values of all shingles at once.
_A = np.array([a for a, _ in _PARAMS], dtype=np.uint64)[:, None]
_B = np.array([b for _, b in _PARAMS], dtype=np.uint64)[:, None]


def _hash64(text: str) -> int:
    # blake2b is deterministic across processes and runs (Python's hash() is salted).
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


def minhash(features: set[str]) -> array[int]:
    """The MinHash signature of a non-empty feature set: `HASHES` unsigned 64-bit values
    in an array (264 bytes; a tuple of Python ints took about 1,300)."""
    values = np.fromiter(map(_hash64, features), dtype=np.uint64, count=len(features))
    # uint64 arithmetic wraps modulo 2**64, which is the ``& _MASK`` of the definition
    # ``min(((a * v + b) & _MASK) % _PRIME)``: the same values as the pure-Python loop it
    # replaced (tested), seven times faster on a 40-word lead.
    with np.errstate(over="ignore"):
        mins = ((_A * values + _B) % np.uint64(_PRIME)).min(axis=1)
    return array("Q", mins.tobytes())


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What the index keeps of one text: a hash of its words, or a MinHash signature.
    (A 64-bit hash, not the words: memory follows open stories' articles.)"""

    exact: int | None
    signature: array[int] | None

    def index_keys(self) -> list[int]:
        """The exact hash, or one key per band: a hash of (band number, band values).
        Plain ints, not tuples, because the index holds one per band per article; a
        collision only adds a candidate, which `is_copy` then checks."""
        if self.signature is None:
            assert self.exact is not None
            return [self.exact]
        sig = self.signature
        return [hash((band, *sig[band * ROWS:(band + 1) * ROWS])) for band in range(BANDS)]


def fingerprint(text: str) -> Fingerprint | None:
    """The text's fingerprint; None for a text with no words (nothing to copy)."""
    tokens = words(text)
    if not tokens:
        return None
    if len(tokens) < MIN_MINHASH_WORDS:
        return Fingerprint(exact=_hash64(" ".join(tokens)), signature=None)
    return Fingerprint(exact=None, signature=minhash(shingles(text)))


def is_copy(a: Fingerprint, b: Fingerprint) -> bool:
    if a.signature is not None and b.signature is not None:
        agree = sum(1 for x, y in zip(a.signature, b.signature, strict=True) if x == y)
        return agree >= COPY_AGREEMENT * HASHES
    return a.exact is not None and a.exact == b.exact


class DuplicateIndex:
    """Fingerprints of the articles of open stories, found by band."""

    def __init__(self) -> None:
        # band key -> the article with it, or the articles (in order) when several have
        # it. Nearly every key has one article, and 16 keys an article made one-item
        # lists the largest thing in the clusterer's memory (~1 KB per article).
        self._by_key: dict[int, str | list[str]] = {}
        self._prints: dict[str, Fingerprint] = {}

    def __len__(self) -> int:
        return len(self._prints)

    def find(self, print_: Fingerprint) -> str | None:
        """The id of the earliest indexed article that ``print_`` is a copy of, if any."""
        seen: set[str] = set()
        for key in print_.index_keys():
            held = self._by_key.get(key)
            for article_id in (held,) if isinstance(held, str) else held or ():
                if article_id in seen:
                    continue
                seen.add(article_id)
                if is_copy(print_, self._prints[article_id]):
                    return article_id
        return None

    def add(self, article_id: str, print_: Fingerprint) -> None:
        self._prints[article_id] = print_
        by_key = self._by_key
        for key in print_.index_keys():
            held = by_key.get(key)
            if held is None:
                by_key[key] = article_id
            elif isinstance(held, str):
                by_key[key] = [held, article_id]
            else:
                held.append(article_id)

    def remove(self, article_id: str) -> None:
        print_ = self._prints.pop(article_id, None)
        if print_ is None:
            return
        by_key = self._by_key
        for key in print_.index_keys():
            held = by_key.get(key)
            if held is None:
                continue
            if isinstance(held, str):
                if held == article_id:
                    del by_key[key]
                continue
            if article_id in held:
                held.remove(article_id)
            if len(held) == 1:
                by_key[key] = held[0]
