"""``newswatch stories``: list recent stories; ``stories cluster`` and ``stories eval``
run the clusterer on JSON lines (no Kafka, no database); ``stories run`` is the daemon.

``cluster`` and ``eval`` call the same `StoryClusterer` as the pipeline stage, with the
same defaults, so what they measure is what the pipeline does.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from newswatch.errors import ConfigError
from newswatch.settings import Settings

if TYPE_CHECKING:
    from consumers.stories.bcubed import Scores
    from consumers.stories.cluster import ClusterConfig
    from consumers.stories.jsonl import LabelledInput

# The clusterer's modules load wordfreq (~0.5 s): imported where a subcommand needs them,
# so that every other daemon's start (which builds this parser too) does not pay for it.


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "stories", help="stories: list them, cluster or score JSON lines, run the stage")
    parser.add_argument("--since", default="48h",
                        help="stories seen since this duration or date (default 48h)")
    parser.add_argument("--topic", default=None, help="only stories with a hit on this topic")
    parser.add_argument("--limit", type=int, default=30)
    parser.add_argument("--json", action="store_true", help="one JSON object per story")
    parser.set_defaults(handler=_handle_list)
    commands = parser.add_subparsers(dest="stories_command", metavar="SUBCOMMAND")

    cluster = commands.add_parser(
        "cluster", help="place JSON-lines articles in stories: one {id, story, "
                        "duplicate_of} line per input line")
    cluster.add_argument("--input", type=Path, default=None,
                         help="JSON-lines file (default: standard input)")
    cluster.set_defaults(handler=_handle_cluster)

    evaluate = commands.add_parser(
        "eval", help="B-cubed precision, recall and F1 of the clusterer on a labelled file")
    evaluate.add_argument("file", type=Path, help="JSON lines with a 'story' field")
    evaluate.add_argument("--worst", type=int, default=5,
                          help="how many worst merges and splits to show")
    evaluate.add_argument("--json", action="store_true", help="scores as one JSON object")
    evaluate.set_defaults(handler=_handle_eval)

    crossval = commands.add_parser(
        "cv", help="story-disjoint cross-validation of the clusterer's knobs on a file")
    crossval.add_argument("file", type=Path, help="JSON lines with a 'story' field")
    crossval.add_argument("--folds", type=int, default=5)
    crossval.set_defaults(handler=_handle_cv)

    from newswatch.cli.stories_daemon import register_run  # the daemon's own options
    register_run(commands)


def _open(path: Path | None) -> IO[str]:
    if path is None:
        return sys.stdin
    try:
        return path.open(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None


def _handle_cluster(args: argparse.Namespace, settings: Settings) -> int:
    from consumers.stories.cluster import StoryClusterer
    from consumers.stories.jsonl import placement_line, read_lines

    clusterer = StoryClusterer(cluster_config(settings))
    stream = _open(args.input)
    try:
        for item in read_lines(stream):
            sys.stdout.write(placement_line(clusterer.place(item.article)) + "\n")
    finally:
        if stream is not sys.stdin:
            stream.close()
    sys.stdout.flush()
    return 0


def cluster_config(settings: Settings) -> ClusterConfig:
    """The clusterer's configuration from the settings (the quiet time is one)."""
    from consumers.stories.cluster import ClusterConfig

    return ClusterConfig(quiet=settings.story_quiet)


def evaluate_items(items: Sequence[LabelledInput], config: ClusterConfig
                   ) -> tuple[Scores, dict[str, str], dict[str, str]]:
    """Cluster ``items`` in order; score against their labels. Returns (scores,
    predicted, gold)."""
    from consumers.stories.bcubed import bcubed
    from consumers.stories.cluster import StoryClusterer

    clusterer = StoryClusterer(config)
    predicted = {item.article.id: clusterer.place(item.article).story for item in items}
    gold = {item.article.id: item.story for item in items if item.story is not None}
    return bcubed(predicted, gold), predicted, gold


def _handle_eval(args: argparse.Namespace, settings: Settings) -> int:
    from consumers.stories.bcubed import worst
    from consumers.stories.jsonl import read_lines

    with _open(args.file) as stream:
        items = list(read_lines(stream))
    if not any(item.story is not None for item in items):
        raise ConfigError(f"{args.file}: no line has a 'story' label to score against")
    scores, predicted, gold = evaluate_items(items, cluster_config(settings))
    merges, splits = worst(predicted, gold, args.worst)
    if args.json:
        print(json.dumps({"precision": scores.precision, "recall": scores.recall,
                          "f1": scores.f1, "items": scores.items, "stories": scores.stories,
                          "clusters": scores.clusters}))
        return 0
    titles = {item.article.id: item.article.title for item in items}
    print(f"{scores.items} articles, {scores.stories} true stories, "
          f"{scores.clusters} predicted")
    print(f"B-cubed precision {scores.precision:.3f}  recall {scores.recall:.3f}  "
          f"F1 {scores.f1:.3f}")
    _print_examples("worst merges (one predicted story, several true ones)",
                    [(m.cost, f"story {m.cluster!r} ({m.size} articles, led by "
                      f"{titles.get(m.cluster, '?')[:70]!r})",
                      [f"{count} from true story {story}" for story, count in m.stories[:4]])
                     for m in merges])
    first_title = _first_titles(items)
    _print_examples("worst splits (one true story, several predicted ones)",
                    [(s.cost, f"true story {s.story!r} ({s.size} articles: "
                      f"{first_title.get(s.story, '?')[:70]!r})",
                      [f"{count} in predicted story led by "
                       f"{titles.get(cluster, cluster)[:60]!r}"
                       for cluster, count in s.clusters[:4]])
                     for s in splits])
    return 0


def _first_titles(items: Iterable[LabelledInput]) -> dict[str, str]:
    first: dict[str, str] = {}
    for item in items:
        if item.story is not None:
            first.setdefault(item.story, item.article.title)
    return first


def _print_examples(heading: str, rows: list[tuple[float, str, list[str]]]) -> None:
    print(f"\n{heading}:")
    if not rows:
        print("  none")
    for cost, what, parts in rows:
        print(f"  -{cost:.3f}  {what}")
        for part in parts:
            print(f"           {part}")


def _handle_list(args: argparse.Namespace, settings: Settings) -> int:
    from consumers.stories.listing import print_stories  # needs the database
    from newswatch.cli.store import parse_since

    since = parse_since(args.since) if args.since else datetime.min.replace(tzinfo=UTC)
    return print_stories(settings, since=since, topic=args.topic, limit=args.limit,
                         as_json=args.json)


def _handle_cv(args: argparse.Namespace, settings: Settings) -> int:
    from consumers.stories.crossval import cross_validate
    from consumers.stories.jsonl import read_lines

    with _open(args.file) as stream:
        items = list(read_lines(stream))
    results = cross_validate(items, args.folds, cluster_config(settings))
    print("fold stories articles | threshold spread power | train F1 | held-out alone "
          "P/R/F1 | held-out in context P/R/F1")
    for r in results:
        c = r.chosen
        print(f"{r.fold:>4} {r.stories:>7} {r.articles:>8} | {c.threshold:>9.2f} "
              f"{c.spread_power:>6.1f} {c.prevalence_power:>5.1f} | {r.train.f1:>8.3f} | "
              f"{r.alone.precision:.3f}/{r.alone.recall:.3f}/{r.alone.f1:.3f} | "
              f"{r.in_context.precision:.3f}/{r.in_context.recall:.3f}/"
              f"{r.in_context.f1:.3f}")
    if results:
        n = len(results)
        print(f"mean held-out F1: alone {sum(r.alone.f1 for r in results) / n:.3f}, "
              f"in context {sum(r.in_context.f1 for r in results) / n:.3f}")
    return 0
