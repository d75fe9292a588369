"""How long `newswatch topics train` takes for a thousand labelled examples, beside the
issue's target (under a minute on one core).

    flock /work/wt/bench.lock .venv/bin/python -m bench.relevance_train_speed [--items 1000]

The labelled files of the shipped model, repeated until ``--items`` (each copy under its
own id and title, so the grouped folds treat it as another story) stand in for a thousand
examples. Prints the spaCy pass and the fitting (5-fold cross-validation with inner folds,
then the final models) separately, as CPU seconds of this process.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from consumers.enrich.enrich import Enricher
from consumers.enrich.relevance import FeatureSpec
from consumers.enrich.train import featurise, read_labelled, train

ROOT = Path(__file__).resolve().parent.parent

LABELLED = ROOT / "tests" / "data" / "labelled"
FILES = ("train.jsonl", "articles.jsonl", "extra.jsonl", "relevance-extra.jsonl",
         "relevance-extra-2.jsonl", "relevance-extra-3.jsonl", "heldout-2026e.jsonl",
         "relevance-extra-4.jsonl", "heldout-2026f.jsonl", "seed.jsonl")
TARGET_S = 60.0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    args = parser.parse_args(argv)
    base = [item for name in FILES for item in read_labelled(LABELLED / name)]
    items = [replace(item, id=f"{copy}:{item.id}", title=f"{item.title} ({copy})")
             for copy in range(args.items // len(base) + 1) for item in base][:args.items]
    enricher = Enricher.from_files(rules_only=True)
    topics = dict(enricher.topics.topics.topics)
    spec = FeatureSpec()
    started = time.process_time()
    examples = featurise(enricher, items, spec)
    reading = time.process_time() - started
    started = time.process_time()
    model, reports = train(examples, topics, spec)
    fitting = time.process_time() - started
    total = reading + fitting
    candidates = sum(report.examples for report in reports.values())
    print(f"{len(items)} labelled items, {candidates} (item, topic) candidates, "
          f"{len(model.topics)} topics fitted")
    print(f"spaCy pass and features   {reading:6.1f} s CPU")
    print(f"fitting, 5-fold CV         {fitting:6.1f} s CPU")
    print(f"total                      {total:6.1f} s CPU  (target < {TARGET_S:.0f} s for "
          f"1,000 examples on one core)  load {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
