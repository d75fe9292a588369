"""``newswatch classify`` and ``newswatch eval``: enrichment without Kafka or a database.

``classify`` reads JSON lines (``id``, ``title``, ``text``; other fields ignored) from
stdin or ``--input FILE``, or one plain-text document with ``--text-file FILE``, and
writes one JSON line per input, exactly::

    {"id": ..., "topics": [{"topic": ..., "score": ..., "evidence": [sentence, ...]}],
     "entities": [{"text": ..., "label": ..., "count": ...}]}

listing only topics at or above their threshold. Other tools call it: keep it stable.

``eval`` reads a labelled JSON-lines file (``id``, ``title``, ``text``, ``labels``: a
list of topic names) and prints precision, recall and F1 per topic and every miss.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, TextIO

from consumers.enrich.enrich import BATCH_SIZE, Analysis, Document, Enricher, document_text
from consumers.enrich.nlp import DEFAULT_MODEL
from newswatch.errors import ConfigError
from newswatch.settings import Settings


@dataclass(frozen=True)
class Item:
    """One input document: its id, title and text, and its labels when evaluating."""

    id: Any
    title: str
    text: str
    labels: frozenset[str] = frozenset()

    def document(self) -> Document:
        return document_text(self.title, content=self.text)


def register(subparsers: Any) -> None:
    classify: argparse.ArgumentParser = subparsers.add_parser(
        "classify", help="print topics and entities of JSON-lines or plain-text documents"
    )
    source = classify.add_mutually_exclusive_group()
    source.add_argument("--input", type=Path, metavar="FILE",
                        help="JSON lines with id, title, text (default: stdin)")
    source.add_argument("--text-file", type=Path, metavar="FILE",
                        help="one plain-text document (its id is the file name)")
    _add_model_options(classify)
    classify.set_defaults(handler=handle_classify)

    daemon: argparse.ArgumentParser = subparsers.add_parser(
        "enrich", help="run the enrichment daemon (news.articles -> news.enriched)"
    )
    _add_model_options(daemon)
    daemon.set_defaults(handler=handle_enrich)

    evaluate: argparse.ArgumentParser = subparsers.add_parser(
        "eval", help="precision, recall and F1 per topic on a labelled JSON-lines file"
    )
    evaluate.add_argument("file", type=Path, metavar="FILE.jsonl",
                          help="JSON lines with id, title, text and labels (a list)")
    evaluate.add_argument("--min-f1", type=float, default=None, metavar="F1",
                          help="exit 1 when any topic's F1 is below this")
    _add_model_options(evaluate)
    evaluate.set_defaults(handler=handle_eval)


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--topics", type=Path, metavar="FILE", default=None,
                        help="topics file (default: NEWSWATCH_TOPICS_FILE, else the shipped "
                             "topics.yaml)")
    parser.add_argument("--model", default=None, metavar="NAME",
                        help=f"spaCy model (default: NEWSWATCH_ENRICH_MODEL, else {DEFAULT_MODEL})")


def enricher_from(args: argparse.Namespace, settings: Settings) -> Enricher:
    """The enricher the options ask for, falling back to the settings."""
    return Enricher.from_files(args.topics or settings.topics_file,
                               args.model or settings.enrich_model,
                               batch_size=settings.enrich_batch_size)


def handle_enrich(args: argparse.Namespace, settings: Settings) -> int:
    """The Kafka daemon: news.articles -> enrichment -> news.enriched."""
    from consumers.enrich.daemon import run

    return run(settings, enricher_from(args, settings))


def handle_classify(args: argparse.Namespace, settings: Settings) -> int:
    """Classify every input document and print one JSON line each, in input order."""
    enricher = enricher_from(args, settings)
    if args.text_file is not None:
        items: Iterable[Item] = [_read_text_file(args.text_file)]
        classify(enricher, items, sys.stdout)
        return 0
    if args.input is not None:
        with _open(args.input) as lines:
            classify(enricher, read_items(lines, str(args.input)), sys.stdout)
        return 0
    classify(enricher, read_items(sys.stdin, "stdin"), sys.stdout)
    return 0


def classify(enricher: Enricher, items: Iterable[Item], out: TextIO) -> None:
    """Write one classification line per item, batch by batch, flushing after each."""
    for batch in _batches(items, BATCH_SIZE):
        analyses = enricher.analyse_many(item.document() for item in batch)
        for item, analysis in zip(batch, analyses, strict=True):
            out.write(json.dumps(classification(item.id, analysis), ensure_ascii=False))
            out.write("\n")
        out.flush()


def classification(item_id: Any, analysis: Analysis) -> dict[str, Any]:
    """The stable output record of ``classify`` for one document."""
    return {
        "id": item_id,
        "topics": [
            {"topic": hit.topic, "score": hit.score,
             "evidence": _unique(span.sentence for span in hit.evidence)}
            for hit in analysis.hits
        ],
        "entities": [
            {"text": entity.name, "label": entity.label, "count": entity.count}
            for entity in analysis.entities
        ],
    }


@dataclass
class TopicScore:
    """Confusion counts of one topic and the documents it got wrong."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    false_positives: list[tuple[Item, float, str]] = field(default_factory=list)
    false_negatives: list[tuple[Item, float]] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def evaluate(enricher: Enricher, items: Sequence[Item]) -> dict[str, TopicScore]:
    """Confusion counts per topic of the topics file over labelled items."""
    results = {name: TopicScore() for name in enricher.topics.topics.topics}
    analyses = enricher.analyse_many(item.document() for item in items)
    for item, analysis in zip(items, analyses, strict=True):
        hits = {hit.topic: hit for hit in analysis.hits}
        for name, result in results.items():
            predicted, expected = name in hits, name in item.labels
            if predicted and expected:
                result.tp += 1
            elif predicted:
                result.fp += 1
                sentence = hits[name].evidence[0].sentence if hits[name].evidence else ""
                result.false_positives.append((item, hits[name].score, sentence))
            elif expected:
                result.fn += 1
                result.false_negatives.append((item, analysis.scores.get(name, 0.0)))
    return results


def handle_eval(args: argparse.Namespace, settings: Settings) -> int:
    """Print P/R/F1 per topic and the misses; exit 1 if an F1 is below ``--min-f1``."""
    enricher = enricher_from(args, settings)
    with _open(args.file) as lines:
        items = list(read_items(lines, str(args.file), labelled=True))
    unknown = sorted({label for item in items for label in item.labels}
                     - set(enricher.topics.topics.topics))
    if unknown:
        print(f"note: labels not in the topics file are ignored: {', '.join(unknown)}")
    results = evaluate(enricher, items)
    print(report(results, len(items)))
    if args.min_f1 is not None:
        low = [name for name, result in results.items() if result.f1 < args.min_f1]
        if low:
            print(f"F1 below {args.min_f1}: {', '.join(low)}")
            return 1
    return 0


def report(results: dict[str, TopicScore], count: int) -> str:
    """The evaluation as text: a table, then false negatives and false positives."""
    lines = [f"{count} documents", "",
             f"{'topic':<20} {'precision':>9} {'recall':>7} {'F1':>6} "
             f"{'TP':>4} {'FP':>4} {'FN':>4}"]
    for name, result in results.items():
        lines.append(f"{name:<20} {result.precision:>9.3f} {result.recall:>7.3f} "
                     f"{result.f1:>6.3f} {result.tp:>4} {result.fp:>4} {result.fn:>4}")
    misses = [f"  missed   {name:<18} {item.id}  score {score:.2f}  {item.title}"
              for name, result in results.items()
              for item, score in result.false_negatives]
    misses += [f"  wrong    {name:<18} {item.id}  score {score:.2f}  {item.title}\n"
               f"           evidence: {sentence[:160]}"
               for name, result in results.items()
               for item, score, sentence in result.false_positives]
    if misses:
        lines += ["", "misses:", *misses]
    return "\n".join(lines)


def read_items(lines: Iterable[str], source: str, labelled: bool = False) -> Iterator[Item]:
    """Parse JSON lines into items; blank lines are skipped, a bad line is a ConfigError."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{source}, line {number}: not JSON: {exc.msg}") from exc
        if not isinstance(record, dict):
            raise ConfigError(f"{source}, line {number}: expected a JSON object")
        labels = record.get("labels", [])
        if labelled and not (isinstance(labels, list)
                             and all(isinstance(label, str) for label in labels)):
            raise ConfigError(f"{source}, line {number}: 'labels' must be a list of names")
        yield Item(
            id=record.get("id", number),
            title=_text_field(record, "title", source, number),
            text=_text_field(record, "text", source, number),
            labels=frozenset(labels) if labelled else frozenset(),
        )


def _text_field(record: dict[str, Any], name: str, source: str, number: int) -> str:
    value = record.get(name) or ""
    if not isinstance(value, str):
        raise ConfigError(f"{source}, line {number}: {name!r} must be a string")
    return value


def _read_text_file(path: Path) -> Item:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    return Item(id=path.name, title="", text=text)


def _open(path: Path) -> TextIO:
    try:
        return path.open(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc


def _batches(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _unique(sentences: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(sentences))
