"""Benchmark: language identification, py3langid alone against the fast path (marker words,
then CLD2, then py3langid), same texts.

    .venv/bin/python -m bench.bench_language [--rounds 3]

Texts: every labelled item (tests/data/labelled/*.jsonl; ``lang`` where an item has one,
else English), 625 items in 9 languages, each as its title alone (short) and as title plus
text (long). For each of the two identifiers (``LanguageIdentifier(fast=False)``:
py3langid decides every text, as before; ``LanguageIdentifier()``: marker words and then
CLD2 confirm a declared language first), three accuracy figures:

- no hint: the text alone (both take the same path: py3langid);
- right hint: the item's own language declared, as a feed that declares it;
- wrong hint: each of 11 other languages declared in turn; counted is how often the wrong
  declared language is the answer (lower is better; short titles are meant to lean on
  the hint, so short texts count more of these by design).

And the CPU time per document with the right hint (the common case: feeds declare their
language), best of ``--rounds``; and per language, how many items the marker words
alone settle with the right hint (the rest go to CLD2). The share of enrichment time is
printed by bench/bench_enrich.py, per language.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

from consumers.enrich.language import LanguageIdentifier, load_markers, primary_subtag

ROOT = Path(__file__).resolve().parent.parent

HINTS = ("en", "de", "fr", "es", "pt", "pl", "ru", "ar", "tr", "it", "nl", "zh")


def load_items() -> list[tuple[str, str, str]]:
    """(language, title, title + text) of every labelled item."""
    items = []
    for path in sorted((ROOT / "tests" / "data" / "labelled").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                items.append((record.get("lang") or "en", record["title"],
                              f"{record['title']}\n\n{record['text']}"))
    return items


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds, best is kept")
    args = parser.parse_args()
    items = load_items()
    identifiers = {"py3langid alone": LanguageIdentifier(fast=False),
                   "markers, CLD2": LanguageIdentifier()}
    for identifier in identifiers.values():
        identifier.guess("warm the model up before timing anything")
    print(f"{len(items)} labelled items, {len({lang for lang, _, _ in items})} languages; "
          f"wrong hints: {len(HINTS) - 1} per item")
    print(f"{'identifier':<16} {'text':<6} {'no hint':>9} {'right hint':>11} "
          f"{'wrong hint taken':>17} {'µs/doc (right hint)':>20}")
    for name, identifier in identifiers.items():
        for kind, column in (("short", 1), ("long", 2)):
            texts = [(item[0], item[column]) for item in items]
            alone = sum(primary_subtag(identifier.guess(t).language) == lang
                        for lang, t in texts)
            right = sum(primary_subtag(identifier.guess(t, lang).language) == lang
                        for lang, t in texts)
            taken = sum(primary_subtag(identifier.guess(t, hint).language) == hint
                        for lang, t in texts for hint in HINTS if hint != lang)
            best = float("inf")
            for _ in range(args.rounds):
                start = time.process_time()
                for lang, t in texts:
                    identifier.guess(t, lang)
                best = min(best, time.process_time() - start)
            print(f"{name:<16} {kind:<6} {alone:>5}/{len(texts)} {right:>7}/{len(texts)} "
                  f"{taken:>8}/{len(texts) * (len(HINTS) - 1)} "
                  f"{best / len(texts) * 1e6:>20.1f}")
    markers = load_markers()
    settled, seen = Counter(), Counter()
    for lang, _, text in items:
        seen[lang] += 1
        settled[lang] += markers.confirm(text, lang)
    print(f"marker words alone settle {sum(settled.values())}/{len(items)} (long, right hint): "
          + ", ".join(f"{lang} {settled[lang]}/{seen[lang]}" for lang in sorted(seen)))
    for kind, column in (("short", 1), ("long", 2)):
        wrong = sum(markers.confirm(item[column], hint)
                    for item in items for hint in HINTS if hint != item[0])
        print(f"marker words confirm a wrong declared language ({kind}): "
              f"{wrong}/{len(items) * (len(HINTS) - 1)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
