"""``newswatch topics train``: fit the relevance layer from labelled JSON lines.

    newswatch topics train tests/data/labelled/*.jsonl feedback.jsonl --out model.json

Prints the cross-validated precision, recall and F1 of every topic (beside the rules
alone on the same items), then writes the model file. Point the topics file at it with
``relevance: model.json`` (a path relative to the topics file).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from consumers.enrich.enrich import Enricher
from consumers.enrich.nlp import DEFAULT_MODEL
from consumers.enrich.relevance import FeatureSpec
from consumers.enrich.train import (
    DEFAULT_FOLDS,
    DEFAULT_REGULARISATION,
    Example,
    LabelledItem,
    Outcome,
    TopicReport,
    featurise,
    read_labelled,
    rules_outcomes,
    train,
)
from newswatch.errors import ConfigError
from newswatch.settings import Settings
from schemas.topics_file import Topic


def add_train_parser(actions: Any) -> None:
    """``newswatch topics train``, added to the ``topics`` group of `newswatch.cli.enrich`."""
    fit = actions.add_parser("train", help="fit the relevance model, print cross-validated "
                                           "P/R/F1 per topic, write the model file")
    fit.add_argument("files", nargs="+", type=Path, metavar="LABELLED.jsonl",
                     help="JSON lines with id, title, text, labels (and optionally judged)")
    fit.add_argument("--out", type=Path, required=True, metavar="MODEL",
                     help="model file to write (JSON)")
    fit.add_argument("--folds", type=int, default=DEFAULT_FOLDS, metavar="K",
                     help=f"cross-validation folds (default {DEFAULT_FOLDS})")
    fit.add_argument("--seed", type=int, default=0, help="fold assignment seed (default 0)")
    fit.add_argument("--regularisation", type=float, default=DEFAULT_REGULARISATION,
                     metavar="L2", help=f"L2 strength (default {DEFAULT_REGULARISATION})")
    fit.add_argument("--topics", type=Path, metavar="FILE", default=None,
                     help="topics file (default: NEWSWATCH_TOPICS_FILE, else the shipped one)")
    fit.add_argument("--model", default=None, metavar="NAME",
                     help=f"spaCy model (default: NEWSWATCH_ENRICH_MODEL, else {DEFAULT_MODEL})")
    fit.set_defaults(handler=handle_train)


@dataclass(frozen=True)
class Featurised:
    """Labelled files read and run once through the rules and the featuriser."""

    enricher: Enricher
    items: list[LabelledItem]
    spec: FeatureSpec
    examples: list[Example]
    topics: dict[str, Topic]


def featurise_files(args: argparse.Namespace, settings: Settings) -> Featurised:
    """``args.files`` featurised with the topics file and spaCy model of ``args`` (or of
    the settings): what `topics train` and `eval --cv` both start from."""
    enricher = Enricher.from_files(args.topics or settings.topics_file,
                                   args.model or settings.enrich_model, rules_only=True)
    items = read_all(args.files)
    spec = FeatureSpec()
    return Featurised(enricher, items, spec, featurise(enricher, items, spec),
                      dict(enricher.topics.topics.topics))


def handle_train(args: argparse.Namespace, settings: Settings) -> int:
    """Train on every file given; exit 0 with the model written."""
    if args.folds < 2:
        raise ConfigError("--folds must be at least 2")
    started = time.monotonic()
    labelled = featurise_files(args, settings)
    enricher, items, spec = labelled.enricher, labelled.items, labelled.spec
    examples, topics = labelled.examples, labelled.topics
    # The model judges only the languages it learned from (`RelevanceModel.languages`).
    trained_on = {"files": [path.name for path in args.files], "items": len(items),
                  "folds": args.folds, "seed": args.seed,
                  "topics_version": enricher.topics.version,
                  "languages": sorted({example.language for example in examples})}
    model, reports = train(examples, topics, spec, folds=args.folds, seed=args.seed,
                           regularisation=args.regularisation, trained_on=trained_on)
    print(f"{len(items)} labelled items from {len(args.files)} files; "
          f"{args.folds}-fold cross-validation, grouped by story, seed {args.seed}")
    print(table(reports, rules_outcomes(examples, topics)))
    sys.stdout.flush()
    model.save(args.out)
    print(f"wrote {args.out} ({len(model.topics)} topics with a model) in "
          f"{time.monotonic() - started:.1f} s")
    return 0


def read_all(paths: Sequence[Path]) -> list[LabelledItem]:
    items: list[LabelledItem] = []
    for path in paths:
        items.extend(read_labelled(path))
    if not items:
        raise ConfigError("no labelled items in " + ", ".join(str(path) for path in paths))
    return items


def prf(outcomes: Sequence[Outcome]) -> tuple[float, float, float, int, int, int]:
    """Precision, recall, F1, TP, FP, FN (an empty class scores 1.0 like eval)."""
    tp = sum(1 for o in outcomes if o.predicted and o.expected)
    fp = sum(1 for o in outcomes if o.predicted and not o.expected)
    fn = sum(1 for o in outcomes if not o.predicted and o.expected)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1, tp, fp, fn


def table(reports: dict[str, TopicReport], rules: dict[str, TopicReport]) -> str:
    """Per topic: the layer's cross-validated P/R/F1 beside the rules alone."""
    lines = [f"{'topic':<20} {'':<10} {'precision':>9} {'recall':>7} {'F1':>6} "
             f"{'TP':>4} {'FP':>4} {'FN':>4}  candidates; threshold and floor of the model written"]
    for name, report in reports.items():
        for kind, outcomes in (("rules", rules[name].outcomes),
                               ("relevance" if report.fitted else "(rules)", report.outcomes
                                if report.fitted else rules[name].outcomes)):
            p, r, f1, tp, fp, fn = prf(outcomes)
            floor = "none" if report.floor is None else f"{report.floor:.2f}" + (
                " (title evidence)" if report.floor_needs_title else "") + (
                " (topic named)" if report.floor_needs_named else "")
            extra = (f"  {report.examples} ({report.positives} relevant); threshold "
                     f"{report.threshold:.2f}, floor {floor}" if kind == "relevance" else "")
            lines.append(f"{name:<20} {kind:<10} {p:>9.3f} {r:>7.3f} {f1:>6.3f} "
                         f"{tp:>4} {fp:>4} {fn:>4}{extra}")
        if not report.fitted:
            lines.append(f"{'':<20} {report.why_not}")
    return "\n".join(lines)
