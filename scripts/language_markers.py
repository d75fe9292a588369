"""Write consumers/enrich/language_markers.json.gz: for each language, the common words
that mark it, read by `consumers.enrich.language` to confirm a declared language without
calling a language identifier.

    .venv/bin/python scripts/language_markers.py

A word marks a language when it is common in it (frequency at least ``MIN_FREQUENCY``)
and at least ``DOMINANCE`` times as frequent there as in any other language wordfreq
knows: "und", "nicht", "gestartet" mark German; "die", "in", "was" mark nothing (Dutch,
English and Afrikaans share them). Frequencies come from wordfreq's "small" lists
(Wikipedia, subtitles, news, books and web text per language; the data is CC BY-SA 4.0,
so is the generated file: see consumers/enrich/README.md). Chinese and Japanese are
written without spaces: their markers are single characters ("的", "是"; "の", "は"),
which the reader looks for one by one. wordfreq is already a dependency (the stories
stage reads its frequencies); language detection reads only the generated JSON.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from importlib.metadata import version
from pathlib import Path

import wordfreq

OUT = Path(__file__).resolve().parent.parent / "consumers" / "enrich" / "language_markers.json.gz"
MIN_FREQUENCY = 1e-5  # about the 10,000 commonest words of a language
# The commonest of them (about the 1,000 commonest words) are what says a text is in
# another language than the declared one: a small set, so looking words up in it stays in
# the CPU's cache.
COMMON_FREQUENCY = 1e-4
DOMINANCE = 10.0
BY_CHARACTER = frozenset({"zh", "ja"})
CODES = {"fil": "tl"}  # wordfreq's code -> the BCP 47 primary subtag feeds declare


def markers(min_frequency: float = MIN_FREQUENCY) -> dict[str, dict[str, float]]:
    """Language code -> its marker words and their frequency there."""
    frequencies: dict[str, dict[str, float]] = {}
    for language in sorted(wordfreq.available_languages("small")):
        for word, frequency in wordfreq.get_frequency_dict(language, wordlist="small").items():
            if language in BY_CHARACTER and len(word) != 1:
                continue
            frequencies.setdefault(word, {})[CODES.get(language, language)] = frequency
    found: dict[str, dict[str, float]] = {}
    for word, by_language in frequencies.items():
        ranked = sorted(by_language.items(), key=lambda item: -item[1])
        language, frequency = ranked[0]
        runner_up = ranked[1][1] if len(ranked) > 1 else 0.0
        if frequency >= min_frequency and frequency >= DOMINANCE * runner_up:
            found.setdefault(language, {})[word] = frequency
    return dict(sorted(found.items()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-frequency", type=float, default=MIN_FREQUENCY)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    found = markers(args.min_frequency)
    table = {language: sorted(words) for language, words in found.items()}
    common = {language: sorted(word for word, frequency in words.items()
                               if frequency >= COMMON_FREQUENCY)
              for language, words in found.items()}
    document = {"source": f"wordfreq {version('wordfreq')} 'small' lists (CC BY-SA 4.0)",
                "min_frequency": args.min_frequency, "common_frequency": COMMON_FREQUENCY,
                "dominance": DOMINANCE, "by_character": sorted(BY_CHARACTER),
                "markers": table, "common": common}
    # mtime=0: the same data gives the same bytes, so a regeneration shows no diff.
    with gzip.GzipFile(args.out, "wb", mtime=0) as out:
        out.write(json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode())
    print(f"{args.out.name}: {sum(map(len, table.values()))} words in {len(table)} languages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
