"""How much work each section does: a full run, ``--quick``, or the tests' tiny run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    """The work of every section in one run."""

    producer_feeds: int
    producer_items: int
    enrich_repeat: int  # copies of bench_enrich's corpus (351 documents)
    enrich_rounds: int
    scaling_repeat: int
    scaling_rounds: int
    store_articles: int
    e2e_feeds: int
    e2e_rate: float  # items per second, all feeds together
    e2e_seconds: float
    corpus_limit: int | None = None  # the first N documents of the corpus only (tests)
    fulltext_articles: int = 400  # full-text articles through raw spaCy and the pipeline
    fulltext_processes: int = 2  # raw spaCy processes and enrich daemons of that section


FULL = Sizes(producer_feeds=200, producer_items=50, enrich_repeat=2, enrich_rounds=3,
             scaling_repeat=6, scaling_rounds=2, store_articles=20_000, e2e_feeds=4,
             e2e_rate=5.0, e2e_seconds=60.0)
QUICK = Sizes(producer_feeds=40, producer_items=50, enrich_repeat=1, enrich_rounds=2,
              scaling_repeat=2, scaling_rounds=1, store_articles=5_000, e2e_feeds=4,
              e2e_rate=4.0, e2e_seconds=20.0, fulltext_articles=200)
# Enough for every section to run its real code in a test, not to measure anything.
TINY = Sizes(producer_feeds=3, producer_items=4, enrich_repeat=1, enrich_rounds=1,
             scaling_repeat=1, scaling_rounds=1, store_articles=60, e2e_feeds=1,
             e2e_rate=2.0, e2e_seconds=2.0, corpus_limit=24,
             fulltext_articles=6, fulltext_processes=1)
