"""Quality of the relevance layer, before (rules alone) and after, per topic and per set.

    .venv/bin/python -m bench.relevance_quality [--folds 5] [--before-topics FILE]

Sets (all in tests/data/labelled):

* held-out: the items of train.jsonl whose ``sha256("newswatch-holdout:" + id)`` starts
  with a byte below 64 (55 of 195, fixed before any tuning and never looked at while
  tuning features, rules or thresholds);
* pool: the rest of train.jsonl, extra.jsonl, relevance-extra.jsonl, relevance-extra-2.jsonl,
  relevance-extra-3.jsonl, heldout-2026e.jsonl (a training set since the fifth session),
  relevance-extra-4.jsonl, heldout-2026f.jsonl (training sets since the sixth),
  heldout-2026g.jsonl, relevance-extra-5.jsonl (training sets since the seventh),
  heldout-2026h.jsonl, relevance-extra-6.jsonl (training sets since the eighth),
  heldout-2026i.jsonl, relevance-extra-7.jsonl (since the eighth's second round) and
  seed.jsonl: what
  features, candidate rules and thresholds were tuned on, by k-fold cross-validation;
* dev: articles.jsonl, the 46-item development set the rules were written against;
* held-out 2026: heldout-2026.jsonl, 33 real feed items (2024-2025) labelled before
  anything was scored on them and never tuned on; scored by the layer fitted on all of the
  above (what `make relevance-model` ships), so it is news the model never saw;
* held-out 2026b, 2026c, 2026d: real reports (outlet, date and headline cited, lead
  summarised) on events no training file covers, each labelled and committed before
  anything was scored on it, scored the same way; 2026b and 2026c were scored once each
  and then informed a change of the floor, so they are development sets now; 2026d was
  written after that change, scored, and showed recognition stories without rule
  evidence, so it is a development set too; 2026e was written and committed before the
  rules for membership, seats and envoys were scored on it, and judged them; it is training
  data since (fifth session); 2026f judged the fifth session and is training data since
  (sixth); 2026g judged the sixth and is training data since (seventh); 2026h judged the
  seventh and is training data since (eighth); 2026i judged the eighth's first round and
  is training data since its second;
* held-out 2026j: real items read from public repositories (Wikipedia's Current events
  mirror, feed items reposted in public repositories, a darknet-news site), each with
  repository, path and commit, written and committed before anything of the eighth
  session's second round changed; it judges that round.

Rows: the rules alone (the topics file's rule scores at its thresholds, or those of
``--before-topics``, e.g. main's topics.yaml); the layer cross-validated on the pool; the
layer fitted on the pool and scored on dev; fitted on pool + dev and scored on held-out;
and cross-validated on everything (the figures `newswatch topics train` prints for the
shipped model), repeated over fold seeds, with and without the second round's items
(relevance-extra-7.jsonl and heldout-2026i.jsonl) to show what the data did. No figure
scores an item with a model fitted on it. Thresholds and floors are chosen inside
training (on inner folds), never on the items scored.

Then multilingual-dev.jsonl per language (never trained or tuned on): the rules alone,
the shipped enricher (the model judges only the languages in its ``trained_on``, the
rules the others), and the model forced onto every language, to show why it is not.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from consumers.enrich.enrich import Enricher
from consumers.enrich.relevance import FeatureSpec, RelevanceModel
from consumers.enrich.train import (
    Example,
    LabelledItem,
    Outcome,
    evaluate_model,
    featurise,
    read_labelled,
    rules_outcomes,
    train,
)
from newswatch.cli.enrich_train import prf
from schemas.topics_file import Topic, load_topics

ROOT = Path(__file__).resolve().parent.parent

LABELLED = ROOT / "tests" / "data" / "labelled"
EXTENSION = "relevance-extra-7.jsonl"  # the second round's labelled items (with 2026i)
POOL_FILES = ("extra.jsonl", "relevance-extra.jsonl", "relevance-extra-2.jsonl",
              "relevance-extra-3.jsonl", "heldout-2026e.jsonl", "relevance-extra-4.jsonl",
              "heldout-2026f.jsonl", "heldout-2026g.jsonl", "relevance-extra-5.jsonl",
              "heldout-2026h.jsonl", "relevance-extra-6.jsonl", "heldout-2026i.jsonl",
              EXTENSION, "seed.jsonl")


def held_out(item_id: object) -> bool:
    return hashlib.sha256(f"newswatch-holdout:{item_id}".encode()).digest()[0] < 64


def row(name: str, topic: str, outcomes: Sequence[Outcome]) -> str:
    p, r, f1, tp, fp, fn = prf(outcomes)
    return (f"{name:<40} {topic:<17} {p:>6.3f} {r:>6.3f} {f1:>6.3f} "
            f"{tp:>4} {fp:>4} {fn:>4} {len(outcomes):>5}")


def repeated_cv(examples: list[Example], topics: dict[str, Topic], spec: FeatureSpec,
                folds: int, seeds: int, name: str = "all") -> list[str]:
    """Cross-validation on everything with ``seeds`` fold assignments: one item moves a
    fold's F1 by a few hundredths, so the mean (and range) says more than one split."""
    figures: dict[str, list[tuple[float, float, float]]] = {topic: [] for topic in topics}
    for seed in range(seeds):
        _, reports = train(examples, topics, spec, folds=folds, seed=seed)
        for topic, report in reports.items():
            figures[topic].append(prf(report.outcomes)[:3])
    lines = []
    for topic, values in figures.items():
        p, r, f1 = (sum(value[i] for value in values) / len(values) for i in range(3))
        low, high = min(value[2] for value in values), max(value[2] for value in values)
        lines.append(f"{f'layer, {folds}-fold CV on {name}, {seeds} seeds':<40} {topic:<17} "
                     f"{p:>6.3f} {r:>6.3f} {f1:>6.3f}  mean (F1 {low:.3f}-{high:.3f})")
    return lines


def multilingual_rows(path: Path, topics: dict[str, Topic]) -> list[str]:
    """Per language and for all non-English items together: rules alone, as shipped, and
    with the model forced onto every language."""
    items = read_labelled(path)
    shipped = Enricher.from_files()
    assert shipped.relevance is not None
    everywhere = RelevanceModel(
        spec=shipped.relevance.spec, topics=shipped.relevance.topics,
        trained_on={**shipped.relevance.trained_on,
                    "languages": sorted(shipped.pipelines.languages)})
    with tempfile.TemporaryDirectory() as folder:
        forced = Path(folder) / "every-language.json"
        everywhere.save(forced)
        kinds = {"rules alone": Enricher.from_files(rules_only=True), "as shipped": shipped,
                 "model on all languages": Enricher.from_files(relevance_path=forced)}
    lines = []
    for kind, enricher in kinds.items():
        analyses = enricher.analyse_many(item.document() for item in items)
        by_language: dict[str, list[tuple[LabelledItem, set[str]]]] = {}
        for item, analysis in zip(items, analyses, strict=True):
            found = {hit.topic for hit in analysis.hits}
            language = analysis.language or "unknown"
            by_language.setdefault(language, []).append((item, found))
            if language != "en":
                by_language.setdefault("non-en", []).append((item, found))
        shown = sorted(by_language, key=lambda name: (name == "non-en", name))
        for language in shown if kind == "as shipped" else ["non-en"]:
            for topic in topics:
                outcomes = [Outcome(item, topic in item.labels, topic in found, None, 0.0, ())
                            for item, found in by_language[language]]
                lines.append(row(f"multilingual {language}, {kind}", topic, outcomes))
    lines.append("(multilingual rows: by the language detected)")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=5,
                        help="fold seeds of the repeated cross-validation (default 5)")
    parser.add_argument("--before-topics", type=Path, default=None,
                        help="topics file for the 'rules alone' rows (default: the shipped)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    train_items = read_labelled(LABELLED / "train.jsonl")
    pool_items = [item for item in train_items if not held_out(item.id)]
    for name in POOL_FILES:
        pool_items += read_labelled(LABELLED / name)
    sets = {"pool": pool_items, "dev": read_labelled(LABELLED / "articles.jsonl"),
            "held-out": [item for item in train_items if held_out(item.id)]}
    enricher = Enricher.from_files(rules_only=True)
    topics = dict(enricher.topics.topics.topics)
    spec = FeatureSpec()
    examples: dict[str, list[Example]] = {
        name: featurise(enricher, items, spec) for name, items in sets.items()}
    before = enricher
    if args.before_topics is not None:
        before = Enricher(enricher.nlp, load_topics(args.before_topics))
    before_examples = {name: featurise(before, items, spec) for name, items in sets.items()}
    before_topics = dict(before.topics.topics.topics)

    lines = [f"{'':<40} {'topic':<17} {'P':>6} {'R':>6} {'F1':>6} {'TP':>4} {'FP':>4} "
             f"{'FN':>4} {'items':>5}"]
    for set_name in sets:
        rules = rules_outcomes(before_examples[set_name], before_topics)
        for topic in topics:
            lines.append(row(f"rules alone, {set_name}", topic, rules[topic].outcomes))
    _, pool_cv = train(examples["pool"], topics, spec, folds=args.folds)
    for topic, report in pool_cv.items():
        lines.append(row(f"layer, {args.folds}-fold CV on pool", topic, report.outcomes))
    pool_model, _ = train(examples["pool"], topics, spec, cross_validate=False)
    for topic, report in evaluate_model(pool_model, examples["dev"], topics).items():
        lines.append(row("layer fitted on pool, dev", topic, report.outcomes))
    tuned_model, _ = train(examples["pool"] + examples["dev"], topics, spec,
                           cross_validate=False)
    for topic, report in evaluate_model(tuned_model, examples["held-out"], topics).items():
        lines.append(row("layer fitted on pool+dev, held-out", topic, report.outcomes))
    everything = examples["pool"] + examples["dev"] + examples["held-out"]
    _, all_cv = train(everything, topics, spec, folds=args.folds)
    for topic, report in all_cv.items():
        lines.append(row(f"layer, {args.folds}-fold CV on all", topic, report.outcomes))
    shipped_like, _ = train(everything, topics, spec, cross_validate=False)
    for name, label in (("heldout-2026.jsonl", "held-out 2026"),
                        ("heldout-2026b.jsonl", "held-out 2026b (dev now)"),
                        ("heldout-2026c.jsonl", "held-out 2026c (dev now)"),
                        ("heldout-2026d.jsonl", "held-out 2026d (dev now)"),
                        ("heldout-2026j.jsonl", "held-out 2026j")):
        fresh = featurise(enricher, read_labelled(LABELLED / name), spec)
        for topic, report in rules_outcomes(fresh, topics).items():
            lines.append(row(f"rules alone, {label}", topic, report.outcomes))
        for topic, report in evaluate_model(shipped_like, fresh, topics).items():
            lines.append(row(f"layer fitted on all, {label}", topic, report.outcomes))
    lines += repeated_cv(everything, topics, spec, args.folds, args.seeds)
    extension = {str(item.id) for name in (EXTENSION, "heldout-2026i.jsonl")
                 for item in read_labelled(LABELLED / name)}
    earlier = [example for example in everything if str(example.item.id) not in extension]
    lines += repeated_cv(earlier, topics, spec, args.folds, args.seeds,
                         name=f"all but {EXTENSION} and 2026i")
    lines += multilingual_rows(LABELLED / "multilingual-dev.jsonl", topics)
    print("\n".join(lines))
    print(f"\n{sum(len(items) for items in sets.values())} items; "
          f"{time.monotonic() - started:.1f} s; load {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
