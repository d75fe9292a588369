"""Where the enricher's own analysis of a full-text article spends its CPU, outside NER.

    .venv/bin/python -m bench.fulltext_analysis [--articles 256] [--rounds 3]

The full-text articles of `bench_fulltext` (`fulltext_corpus`) go through ``nlp.pipe``
once; then the analysis of each doc (`Enricher._analyse_doc`: entity mentions, topic
scoring, relevance features and probabilities, entity counts) runs ``--rounds`` times
over the same docs, and each piece's thread CPU is measured in place by wrapping the
function that does it (about a microsecond per call; no profiler, which inflates Python
calls several times). Printed per article, beside ``uptime``; the best round counts
(other load only ever adds time).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from bench.fulltext_corpus import fulltext_articles
from bench.harness import uptime
from consumers.enrich import anchors, enrich, entities, relevance, topics
from consumers.enrich.enrich import Enricher, document_text
from consumers.enrich.kernel import kernel_ops, select_kernel

# (label, owner, attribute): the pieces timed, each inside the analysis of one doc.
PIECES = (
    ("entity mentions", entities.EntityFinder, "mentions"),
    ("topic scoring", topics.TopicMatcher, "score"),
    ("  finding spans", topics.TopicMatcher, "_find"),
    # Since the ninth session the exclusions run through a FilteredMatcher too.
    ("    pre-filtered Matchers (whole text, exclusions)", anchors.FilteredMatcher,
     "__call__"),
    ("    exclusions over candidate sentences", topics.TopicMatcher, "_find_exclusions"),
    ("  evidence and sentences", topics._SentenceTexts, "evidence"),
    ("relevance features", enrich, "_candidate_features"),
    ("  title and lead n-grams", relevance.Featuriser, "text_features"),
    ("  per-topic vector", relevance.Featuriser, "features"),
    ("  probability", relevance.TopicModel, "probability"),
    ("  sentence and entity offsets", enrich, "sentence_and_entity_offsets"),
    ("entity counts", enrich, "count_entities"),
)


class Timers:
    """Thread CPU seconds per piece, added up while installed."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._undo: list[Callable[[], None]] = []

    def install(self, pieces: Sequence[tuple[str, Any, str]]) -> None:
        for label, owner, name in pieces:
            original = getattr(owner, name)
            setattr(owner, name, self._timed(label, original))
            self._undo.append(lambda owner=owner, name=name, original=original:
                              setattr(owner, name, original))

    def _timed(self, label: str, function: Callable[..., Any]) -> Callable[..., Any]:
        seconds = self.seconds

        def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                seconds[label] += time.thread_time() - began

        return timed

    def remove(self) -> None:
        while self._undo:
            self._undo.pop()()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    choice = select_kernel("auto")
    with kernel_ops(choice.kernel):
        enricher = Enricher.from_files()
    documents = [document_text(title, content=text)
                 for title, text in fulltext_articles(args.articles)]
    pipeline = enricher.pipelines.get("en").pipeline
    docs = list(pipeline.nlp.pipe((pipeline.nlp.make_doc(d.text) for d in documents),
                                  batch_size=64))
    guess = enricher.identifier.guess(documents[0].text, None)

    def analyse_all() -> float:
        began = time.thread_time()
        for doc, document in zip(docs, documents, strict=True):
            enricher._analyse_doc(pipeline, doc, document, guess, "")
        return time.thread_time() - began

    analyse_all()  # caches (n-gram slots, matcher subsets) warm, as in a running daemon
    best: tuple[float, dict[str, float]] | None = None
    for _ in range(args.rounds):
        timers = Timers()
        timers.install(PIECES)
        try:
            whole = analyse_all()
        finally:
            timers.remove()
        if best is None or whole < best[0]:
            best = (whole, dict(timers.seconds))
    assert best is not None
    whole, pieces = best
    per = 1000 / len(docs)
    print(f"{len(docs)} full-text articles, kernel {choice.kernel}, best of {args.rounds} "
          f"rounds; {uptime()}")
    print(f"analysis of one doc (outside nlp.pipe): {whole * per:.2f} ms per article")
    for label, _owner, _name in PIECES:
        print(f"  {label}: {pieces.get(label, 0.0) * per:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
