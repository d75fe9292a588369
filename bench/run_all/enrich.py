"""Section 2, enrich: raw spaCy ``nlp.pipe`` against the enrich daemon's full consumer
path (Kafka in, `Enricher`, Kafka out, acknowledged and committed:
`consumers.enrich.daemon.serve` in this process) on the same documents, alternating
rounds, the best of each kept."""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from bench.harness import progress, publish_articles
from bench.run_all.section import Figures, Row, Run, Section, met, number
from consumers.enrich.daemon import serve as serve_enrich
from consumers.enrich.enrich import Enricher, article_document
from newswatch import metrics
from newswatch.daemon import StopFlag
from newswatch.kafka_admin import ensure_topics
from newswatch.settings import Settings
from schemas.messages import Article, EnrichedArticle
from tests.producer_fixtures import topic_size
from tests.support.waits import wait_for

RATIO_TARGET = 0.85


class _FirstBatchClock:
    """The enricher, noting when its first batch began: the group has joined by then."""

    def __init__(self, enricher: Enricher) -> None:
        self.enricher = enricher
        self.began: tuple[float, float] | None = None

    def enrich_many(self, articles: Sequence[Article], repairs: Counter[str] | None = None
                    ) -> list[EnrichedArticle]:
        if self.began is None:
            self.began = (time.perf_counter(), time.process_time())
        return self.enricher.enrich_many(articles, repairs)


def _processed(stage: str) -> float:
    """Messages the stage's run loop committed in this process (its metrics counter).

    Reads that one counter, not the whole registry: it is polled while the consumer runs.
    """
    for family in metrics.MESSAGES_PROCESSED.collect():
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels.get("stage") == stage:
                return float(sample.value)
    return 0.0


def consumer_path_round(bootstrap: str, enricher: Enricher, articles: Sequence[Article],
                        prefix: str) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of the enrich daemon's loop over ``articles``: from its
    first batch to the commit of the last, every output acknowledged by the broker."""
    settings = Settings(kafka_bootstrap_servers=bootstrap, kafka_topic_prefix=prefix,
                        enrich_batch_size=enricher.batch_size)
    names = ensure_topics(settings, partitions=1)
    publish_articles(settings, names.articles, articles)
    clocked = _FirstBatchClock(enricher)
    stop = StopFlag()
    errors: list[BaseException] = []

    def daemon() -> None:
        try:
            serve_enrich(settings, clocked, stop)
        except BaseException as error:  # reported below
            errors.append(error)
            stop.stop()

    target = _processed("enrich") + len(articles)
    thread = threading.Thread(target=daemon, name="enrich-bench")
    thread.start()
    try:
        wait_for(lambda: _processed("enrich") >= target or stop.stopping,
                 60 + 2 * len(articles), "the enrich consumer to commit every article",
                 interval_s=0.02)
        ended = (time.perf_counter(), time.process_time())
    finally:
        stop.stop()
        thread.join(60)
    if errors:
        raise errors[0]
    assert clocked.began is not None
    produced = topic_size(bootstrap, names.enriched)
    if produced != len(articles):
        raise RuntimeError(f"the consumer path produced {produced} of {len(articles)}")
    return ended[1] - clocked.began[1], ended[0] - clocked.began[0]


def measure(run: Run) -> Figures:
    enricher, sizes = run.enricher, run.sizes
    articles = list(run.corpus) * sizes.enrich_repeat
    texts = [article_document(article).text for article in articles]
    words = sum(len(text.split()) for text in texts)
    nlp, batch = enricher.nlp, enricher.batch_size
    list(nlp.pipe(texts[:batch], batch_size=batch))  # warm-up
    enricher.enrich_many(articles[:batch])

    best_raw = best_path = (math.inf, math.inf)
    for round_no in range(sizes.enrich_rounds):
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in nlp.pipe(texts, batch_size=batch):
            pass
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        best_raw = (min(best_raw[0], cpu), min(best_raw[1], wall))
        path = consumer_path_round(run.bootstrap, enricher, articles,
                                   run.prefix(f"enrich{round_no}"))
        best_path = (min(best_path[0], path[0]), min(best_path[1], path[1]))
        progress(f"  round {round_no + 1}: docs per CPU second raw {len(texts) / cpu:,.1f}, "
                 f"consumer path {len(texts) / path[0]:,.1f}; wall clock raw "
                 f"{len(texts) / wall:,.1f}, consumer path {len(texts) / path[1]:,.1f}")
    n = len(texts)
    return {
        "documents": n, "words": words, "batch_size": batch, "rounds": sizes.enrich_rounds,
        "pipeline": list(nlp.pipe_names),
        # Per CPU second of this process (all its threads: consumer, Kafka I/O): what the
        # path costs, whatever else the machine runs. Wall clock beside it.
        "raw_docs_per_cpu_s": round(n / best_raw[0], 1),
        "raw_words_per_cpu_s": round(words / best_raw[0]),
        "consumer_docs_per_cpu_s": round(n / best_path[0], 1),
        "ratio": round(best_raw[0] / best_path[0], 3),
        "raw_docs_per_s": round(n / best_raw[1], 1),
        "consumer_docs_per_s": round(n / best_path[1], 1),
        "ratio_wall": round(best_raw[1] / best_path[1], 3),
        "target_ratio": RATIO_TARGET,
    }


def rows(e: Figures, _results: dict[str, Any]) -> Sequence[Row]:
    return [
        ("Enrich: raw spaCy `nlp.pipe`", f"{number(e['raw_docs_per_cpu_s'], 1)} docs/s", "",
         f"{e['documents']:,} documents ({e['words']:,} words), batch {e['batch_size']}: "
         f"{number(e['raw_words_per_cpu_s'])} words/s; wall clock "
         f"{number(e['raw_docs_per_s'], 1)} docs/s"),
        ("Enrich: consumer path (Kafka in -> enrich -> Kafka out)",
         f"{number(e['consumer_docs_per_cpu_s'], 1)} docs/s", "",
         "same documents and process; outputs acknowledged, offsets committed; "
         f"wall clock {number(e['consumer_docs_per_s'], 1)} docs/s"),
        ("Enrich: consumer path / raw", f"{e['ratio']:.2f}",
         f">= {e['target_ratio']} ({met(e['ratio'] >= e['target_ratio'])})",
         "docs per CPU second of the process (all threads), best of "
         f"{e['rounds']} alternating rounds; wall clock {e['ratio_wall']:.2f}"),
    ]


SECTION = Section("enrich", "Enrich", measure, rows)
