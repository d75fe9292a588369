"""``newswatch classify`` and ``newswatch eval``: enrichment without Kafka or a database.

``classify`` reads JSON lines (``id``, ``title``, ``text``; other fields ignored) from
stdin or ``--input FILE``, or one plain-text document with ``--text-file FILE``, and
writes one JSON line per input, exactly::

    {"id": ..., "topics": [{"topic": ..., "score": ..., "probability": ...,
                            "evidence": [sentence, ...]}],
     "entities": [{"text": ..., "label": ..., "count": ...}]}

listing only topics at or above their threshold. ``score`` is the rules' score,
``probability`` the relevance model's (null for a topic without a model, which the score
decides). Other tools call it: keep it stable (fields are only ever added).

``eval`` reads labelled JSON-lines files (``id``, ``title``, ``text``, ``labels``: a
list of topic names) and prints precision, recall and F1 per topic and every miss. With
items in more than one language (``lang`` or ``language`` in the record, else the
language enrichment detected) it also prints the table per language, for all
non-English items together, and how often detection agreed with the labelled language.
With ``--cv K`` it trains the relevance layer k-fold on those files instead and prints the
cross-validated figures beside the rules alone, and the worst errors with their evidence.
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

import spacy

from consumers.enrich.enrich import BATCH_SIZE, Analysis, Document, Enricher, document_text
from consumers.enrich.kernel import kernel_ops, select_kernel
from consumers.enrich.language import primary_subtag
from consumers.enrich.nlp import DEFAULT_MODEL
from consumers.enrich.pipelines import DEFAULT_MODELS, configured_languages
from consumers.enrich.topics import DEFAULT_TOPICS_PATH, TopicMatcher
from newswatch.cli.enrich_train import add_train_parser
from newswatch.errors import ConfigError
from newswatch.settings import Settings
from schemas.topics_file import LoadedTopics, load_topics


@dataclass(frozen=True)
class Item:
    """One input document: its id, title and text, and its labels when evaluating."""

    id: Any
    title: str
    text: str
    labels: frozenset[str] = frozenset()
    language: str | None = None  # as labelled; not given to enrichment, which detects it

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
    evaluate.add_argument("files", nargs="+", type=Path, metavar="FILE.jsonl",
                          help="JSON lines with id, title, text and labels (a list)")
    evaluate.add_argument("--min-f1", type=float, default=None, metavar="F1",
                          help="exit 1 when any topic's F1 is below this")
    evaluate.add_argument("--cv", type=int, default=None, metavar="K",
                          help="k-fold cross-validate the relevance layer trained on FILEs "
                               "(never scoring an item with a model fitted on it)")
    evaluate.add_argument("--worst", type=int, default=5, metavar="N",
                          help="with --cv: the N worst errors per topic and kind (default 5)")
    _add_model_options(evaluate)
    evaluate.set_defaults(handler=handle_eval)

    topics: argparse.ArgumentParser = subparsers.add_parser(
        "topics", help="check a topics file (languages lacking phrases); train the "
                       "relevance layer from labelled items")
    topic_actions = topics.add_subparsers(dest="topics_action", metavar="ACTION",
                                          required=True)
    check = topic_actions.add_parser(
        "check", help="validate a topics file and list the languages a topic has no "
                      "phrases in (exit 2 when invalid; 1 with --strict and a gap)")
    check.add_argument("--topics", type=Path, metavar="FILE", default=None,
                       help="topics file (default: NEWSWATCH_TOPICS_FILE, else the shipped "
                            "topics.yaml)")
    check.add_argument("--strict", action="store_true",
                       help="exit 1 when a topic has no phrases in a configured language")
    check.set_defaults(handler=handle_topics)
    add_train_parser(topic_actions)


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--topics", type=Path, metavar="FILE", default=None,
                        help="topics file (default: NEWSWATCH_TOPICS_FILE, else the shipped "
                             "topics.yaml)")
    parser.add_argument("--model", default=None, metavar="NAME",
                        help=f"spaCy model (default: NEWSWATCH_ENRICH_MODEL, else {DEFAULT_MODEL})")
    relevance = parser.add_mutually_exclusive_group()
    relevance.add_argument("--relevance", type=Path, default=None, metavar="MODEL",
                           help="relevance model file (default: the one the topics file names)")
    relevance.add_argument("--rules-only", action="store_true",
                           help="ignore the relevance model: rule scores decide every topic")


def enricher_from(args: argparse.Namespace, settings: Settings) -> Enricher:
    """The enricher the options ask for, falling back to the settings; its model is built
    on the matrix kernel the settings choose (logged)."""
    choice = select_kernel(settings.enrich_kernel)
    with kernel_ops(choice.kernel):
        return Enricher.from_files(args.topics or settings.topics_file,
                                   args.model or settings.enrich_model,
                                   batch_size=settings.enrich_batch_size,
                                   language_models=settings.enrich_language_models,
                                   relevance_path=args.relevance, rules_only=args.rules_only,
                                   reuse=settings.enrich_reuse)


def handle_enrich(args: argparse.Namespace, settings: Settings) -> int:
    """The Kafka daemon: news.articles -> enrichment -> news.enriched."""
    from consumers.enrich.daemon import run

    return run(settings, enricher_from(args, settings))


def handle_topics(args: argparse.Namespace, settings: Settings) -> int:
    """``topics check``: load and compile the file (a bad one raises `ConfigError`, exit
    2), then print each topic's languages with phrases and those without."""
    path = args.topics or settings.topics_file or DEFAULT_TOPICS_PATH
    loaded = load_topics(path)
    nlp = spacy.blank("en")
    TopicMatcher(nlp, loaded)  # compiles every token pattern: a bad one is an error here
    gaps = language_gaps(loaded, frozenset(DEFAULT_MODELS))
    print(f"{path}: {len(loaded.topics.topics)} topics, valid (version {loaded.version})")
    for name, (covered, missing) in gaps.items():
        print(f"{name}: phrases in {', '.join(covered)}")
        if missing:
            print(f"{name}: no phrases in {', '.join(missing)} (found there only through "
                  "entities and labels)")
    return 1 if args.strict and any(missing for _, missing in gaps.values()) else 0


def language_gaps(loaded: LoadedTopics, models: frozenset[str]
                  ) -> dict[str, tuple[list[str], list[str]]]:
    """Per topic: the languages whose rules have phrases, and the configured languages
    (with a model, topic phrases or alias-table names) whose rules have none."""
    configured = configured_languages(loaded) | models | {"en"}
    out: dict[str, tuple[list[str], list[str]]] = {}
    for name, topic in loaded.topics.topics.items():
        covered = ["en"] if any(rule.phrases for rule in topic.rules) else []
        covered += sorted(code for code, phrases in topic.languages.items()
                          if any(phrases.rules.values()))
        out[name] = (covered, sorted(configured - set(covered)))
    return out


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
            {"topic": hit.topic, "score": hit.score, "probability": hit.probability,
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
    def has_examples(self) -> bool:
        """Whether the labelled set has a document of this topic; without one, recall
        and F1 measure nothing (they would read 1.00), so they are not reported."""
        return self.tp + self.fn > 0

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


NON_ENGLISH = "non-en"  # the group of every item not in English, in per-language results


@dataclass
class LanguageResults:
    """Per-language confusion counts, and how often detection matched the labels."""

    by_language: dict[str, dict[str, TopicScore]] = field(default_factory=dict)
    detected_right: int = 0
    detected_of: int = 0


def evaluate(enricher: Enricher, items: Sequence[Item],
             languages: LanguageResults | None = None) -> dict[str, TopicScore]:
    """Confusion counts per topic of the topics file over labelled items; when
    ``languages`` is given it is filled with the same counts per language."""
    results = {name: TopicScore() for name in enricher.topics.topics.topics}
    analyses = enricher.analyse_many(item.document() for item in items)
    for item, analysis in zip(items, analyses, strict=True):
        _count(results, item, analysis)
        if languages is not None:
            detected = primary_subtag(analysis.language)
            language = primary_subtag(item.language) or detected or "unknown"
            if item.language is not None:
                languages.detected_of += 1
                languages.detected_right += detected == language
            groups = [language] + ([NON_ENGLISH] if language != "en" else [])
            for group in groups:
                scores = languages.by_language.setdefault(
                    group, {name: TopicScore() for name in results})
                _count(scores, item, analysis)
    return results


def _count(results: dict[str, TopicScore], item: Item, analysis: Analysis) -> None:
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


def handle_eval(args: argparse.Namespace, settings: Settings) -> int:
    """Print P/R/F1 per topic and the misses; exit 1 if an F1 is below ``--min-f1``."""
    if args.cv is not None:
        return _cross_validate(args, settings)
    enricher = enricher_from(args, settings)
    items: list[Item] = []
    for path in args.files:
        with _open(path) as lines:
            items.extend(read_items(lines, str(path), labelled=True))
    unknown = sorted({label for item in items for label in item.labels}
                     - set(enricher.topics.topics.topics))
    if unknown:
        print(f"note: labels not in the topics file are ignored: {', '.join(unknown)}")
    languages = LanguageResults()
    results = evaluate(enricher, items, languages)
    print(report(results, len(items)))
    if len(languages.by_language) > 1:
        print()
        print(language_report(languages))
    if args.min_f1 is not None:
        low = [name for name, result in results.items()
               if result.has_examples and result.f1 < args.min_f1]
        if low:
            print(f"F1 below {args.min_f1}: {', '.join(low)}")
            return 1
    return 0


def _cross_validate(args: argparse.Namespace, settings: Settings) -> int:
    """``eval --cv K``: train k-fold on the files, print the table and the worst errors."""
    from consumers.enrich.train import rules_outcomes, train
    from newswatch.cli.enrich_train import featurise_files, prf, table

    if args.cv < 2:
        raise ConfigError("--cv needs at least 2 folds")
    labelled = featurise_files(args, settings)
    items, examples, topics = labelled.items, labelled.examples, labelled.topics
    _, reports = train(examples, topics, labelled.spec, folds=args.cv)
    rules = rules_outcomes(examples, topics)
    print(f"{len(items)} documents, {args.cv}-fold cross-validation grouped by story "
          "(each item scored by a model not fitted on it)\n")
    print(table(reports, rules))
    print(worst_errors(reports, args.worst))
    if args.min_f1 is not None:
        low = [name for name, report in reports.items()
               if prf(report.outcomes if report.fitted else rules[name].outcomes)[2]
               < args.min_f1]
        if low:
            print(f"F1 below {args.min_f1}: {', '.join(low)}")
            return 1
    return 0


def worst_errors(reports: dict[str, Any], count: int) -> str:
    """Per topic: the false positives the model was surest of and the misses it was
    surest of, with the rule score, the probability and the first evidence sentences."""
    lines = ["", "worst errors (out-of-fold probability; '-' = no rule evidence at all):"]
    for name, report in reports.items():
        if not report.fitted:
            continue
        wrong = sorted((o for o in report.outcomes if o.predicted and not o.expected),
                       key=lambda o: -(o.probability or 0.0))[:count]
        missed = sorted((o for o in report.outcomes if o.expected and not o.predicted),
                        key=lambda o: o.probability or 0.0)[:count]
        for kind, outcomes in (("wrong ", wrong), ("missed", missed)):
            for o in outcomes:
                p = "-" if o.probability is None else f"{o.probability:.2f}"
                lines.append(f"  {kind} {name:<18} {o.item.id}  p {p}  score {o.score:.2f}  "
                             f"{o.item.title[:90]}")
                for span in o.evidence[:2]:
                    lines.append(f"           [{span.rule}] {span.sentence[:150]}")
    return "\n".join(lines)


def report(results: dict[str, TopicScore], count: int) -> str:
    """The evaluation as text: a table, then false negatives and false positives."""
    lines = [f"{count} documents", "",
             f"{'topic':<20} {'precision':>9} {'recall':>7} {'F1':>6} "
             f"{'TP':>4} {'FP':>4} {'FN':>4}"]
    for name, result in results.items():
        if not result.has_examples:
            lines.append(f"{name:<20} {'no examples':>24} {result.tp:>4} {result.fp:>4} "
                         f"{result.fn:>4}")
            continue
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


def language_report(languages: LanguageResults) -> str:
    """Per language and topic: P/R/F1 and counts (topics without examples in a language
    show their false positives only), then language detection against the labels."""
    lines = ["per language:",
             f"{'language':<9} {'topic':<20} {'precision':>9} {'recall':>7} {'F1':>6} "
             f"{'TP':>4} {'FP':>4} {'FN':>4}"]
    order = sorted(languages.by_language, key=lambda code: (code == NON_ENGLISH, code))
    for code in order:
        for name, result in languages.by_language[code].items():
            if result.tp + result.fn == 0 and result.fp == 0:
                lines.append(f"{code:<9} {name:<20} {'(no examples)':>23}")
                continue
            lines.append(f"{code:<9} {name:<20} {result.precision:>9.3f} "
                         f"{result.recall:>7.3f} {result.f1:>6.3f} {result.tp:>4} "
                         f"{result.fp:>4} {result.fn:>4}")
    if languages.detected_of:
        lines.append(f"language detected as labelled: {languages.detected_right} of "
                     f"{languages.detected_of}")
    return "\n".join(lines)


def read_items(lines: Iterable[str], source: str, labelled: bool = False) -> Iterator[Item]:
    """Parse JSON lines into items; blank lines are skipped, a bad line is a ConfigError."""
    from consumers.enrich.train import json_records

    for number, record in json_records(lines, source):
        labels = record.get("labels", [])
        if labelled and not (isinstance(labels, list)
                             and all(isinstance(label, str) for label in labels)):
            raise ConfigError(f"{source}, line {number}: 'labels' must be a list of names")
        yield Item(
            id=record.get("id", number),
            title=_text_field(record, "title", source, number),
            text=_text_field(record, "text", source, number),
            labels=frozenset(labels) if labelled else frozenset(),
            language=_language_field(record),
        )


def _text_field(record: dict[str, Any], name: str, source: str, number: int) -> str:
    value = record.get(name) or ""
    if not isinstance(value, str):
        raise ConfigError(f"{source}, line {number}: {name!r} must be a string")
    return value


def _language_field(record: dict[str, Any]) -> str | None:
    value = record.get("lang") or record.get("language")
    return value if isinstance(value, str) and value else None


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
