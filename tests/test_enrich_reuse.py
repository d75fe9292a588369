"""Reuse of analysis for exact duplicate texts: same result, bounded, counted."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import pytest

from consumers.enrich.enrich import Analysis, Document, Enricher, document_text
from consumers.enrich.reuse import AnalysisCache, document_key
from newswatch import metrics
from newswatch.cli.enrich import enricher_from
from newswatch.settings import Settings
from tests.enrich_fixtures import article, labelled


def _analysis(n: int) -> Analysis:
    return Analysis(entities=(), hits=(), scores={"t": float(n)})


class Counting:
    """An analyse function that records what it was asked to analyse."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, documents: Sequence[Document]) -> list[Analysis]:
        self.calls.append([d.text for d in documents])
        return [_analysis(len(d.text)) for d in documents]


def test_document_key_covers_every_field() -> None:
    base = Document("Title\n\nSome text.", title_end=5)
    assert document_key(base) == document_key(Document("Title\n\nSome text.", title_end=5))
    assert document_key(base) != document_key(Document("Title\n\nSome text.", title_end=4))
    assert document_key(base) != document_key(Document("Title\n\nSome text!", title_end=5))
    assert document_key(base) != document_key(Document("Title\n\nSome text.", 5, cut=True))


def test_the_same_article_text_normalises_to_the_same_key() -> None:
    one = document_text("Russia  hosts\nTaliban", content="Moscow is   not\n on the verge.")
    two = document_text("Russia hosts Taliban", content="Moscow is not on the verge.")
    assert document_key(one) == document_key(two)


def test_copies_in_a_batch_and_across_batches_are_analysed_once() -> None:
    cache = AnalysisCache(capacity=10)
    analyse = Counting()
    first = cache.analyse_many([Document("a"), Document("bb"), Document("a")], analyse)
    assert analyse.calls == [["a", "bb"]]
    assert [a.scores["t"] for a in first] == [1.0, 2.0, 1.0]
    second = cache.analyse_many([Document("ccc"), Document("bb")], analyse)
    assert analyse.calls[1] == ["ccc"]
    assert second[1] is first[1]
    assert (cache.hits, cache.misses) == (2, 3)


def test_the_cache_is_bounded_and_drops_the_least_recently_used() -> None:
    cache = AnalysisCache(capacity=2)
    analyse = Counting()
    cache.analyse_many([Document("a"), Document("b")], analyse)
    cache.analyse_many([Document("a")], analyse)  # a is now the most recent
    cache.analyse_many([Document("c")], analyse)  # b goes
    assert len(cache) == 2
    cache.analyse_many([Document("a"), Document("b")], analyse)
    assert analyse.calls[-1] == ["b"]
    with pytest.raises(ValueError, match="capacity"):
        AnalysisCache(capacity=0)


def test_a_failed_analysis_caches_nothing() -> None:
    cache = AnalysisCache(capacity=4)

    def failing(documents: Sequence[Document]) -> list[Analysis]:
        raise RuntimeError("spaCy failed")

    with pytest.raises(RuntimeError):
        cache.analyse_many([Document("a")], failing)
    assert len(cache) == 0


def test_reused_enrichment_equals_fresh_enrichment(enricher: Enricher) -> None:
    """The labelled sets with every third article copied under another id: each copy's
    entities and topic hits equal a fresh enrichment's, and copies cost no NER."""
    records = labelled("articles.jsonl") + labelled("extra.jsonl")
    originals = [article(r["title"], content=r["text"], id=f"o{n:015d}")
                 for n, r in enumerate(records)]
    stream = []
    pending = []  # each copy arrives two articles after its original
    for n, original in enumerate(originals):
        stream.append(original)
        if len(pending) >= 2 or (pending and n == len(originals) - 1):
            stream.append(pending.pop(0))
        if n % 3 == 0:
            pending.append(original.model_copy(update={"id": f"c{n:015d}", "feed_id": "wire"}))
    stream += pending
    copies = len(stream) - len(originals)
    reusing = Enricher(enricher.nlp, enricher.topics, relevance=enricher.relevance, reuse=1000)
    before = metrics.ANALYSES_REUSED._value.get()
    reused = reusing.enrich_many(stream[:40]) + reusing.enrich_many(stream[40:])
    fresh = enricher.enrich_many(stream)
    assert len(reused) == len(stream)
    for got, expected in zip(reused, fresh, strict=True):
        assert got.article.id == expected.article.id
        assert got.entities == expected.entities
        assert got.topic_hits == expected.topic_hits
    assert reusing.reuse is not None
    assert reusing.reuse.hits == copies
    assert reusing.reuse.misses == len(originals)
    assert metrics.ANALYSES_REUSED._value.get() - before == copies
    assert sum(1 for e in reused if e.topic_hits) > 20  # the corpus has hits to compare


def test_the_setting_sizes_the_enricher_cache() -> None:
    args = argparse.Namespace(topics=None, model=None, relevance=None, rules_only=False)
    assert Settings().enrich_reuse == 10_000
    built = enricher_from(args, Settings(enrich_reuse=123, enrich_kernel="blis"))
    assert built.reuse is not None
    assert built.reuse.capacity == 123
    assert enricher_from(args, Settings(enrich_reuse=0, enrich_kernel="blis")).reuse is None
