"""The pure stage: `Article` in, `EnrichedArticle` out, in order, with offsets that hold."""

from __future__ import annotations

from consumers.enrich.enrich import (
    Enricher,
    article_document,
    document_text,
)
from schemas.messages import EnrichedArticle
from tests.enrich_fixtures import article


def test_document_text_joins_parts_and_drops_a_repeated_summary() -> None:
    document = document_text(
        "  Title here ", "The lede.", "The lede.\nIt continues\n\nSecond paragraph.")
    assert document.text == "Title here\n\nThe lede. It continues\n\nSecond paragraph."
    assert document.title_end == len("Title here")
    kept = document_text("T", "A summary.", "A body.")
    assert kept.text == "T\n\nA summary.\n\nA body."


def test_document_text_is_cut_at_max_chars() -> None:
    document = document_text("Title", content="word " * 100, max_chars=50)
    assert len(document.text) == 50


def test_enrich_many_keeps_order_and_fills_the_message(enricher: Enricher) -> None:
    articles = [
        article("ISIS claims attack on checkpoint", id="a" * 16),
        article("Bake sale raises money for school", id="b" * 16),
        article("Ministry statement", summary="Police seized 3 tonnes of cocaine at the port.",
                content="Police seized 3 tonnes of cocaine at the port. Two men were held.",
                id="c" * 16),
    ]
    enriched = enricher.enrich_many(articles)
    assert [item.article.id for item in enriched] == ["a" * 16, "b" * 16, "c" * 16]
    assert all(isinstance(item, EnrichedArticle) for item in enriched)
    assert {item.topics_version for item in enriched} == {enricher.topics_version}
    assert [hit.topic for hit in enriched[0].topic_hits] == ["is_threat"]
    assert enriched[1].topic_hits == ()
    assert [hit.topic for hit in enriched[2].topic_hits] == ["drug_trafficking"]
    text = article_document(articles[2]).text
    for span in enriched[2].topic_hits[0].evidence:
        assert text[span.start:span.end] == span.phrase
    assert text.count("Police seized") == 1


def test_enrich_one_equals_enrich_many(enricher: Enricher) -> None:
    item = article("Taliban push for recognition at the UN", content="Envoys met in Doha.")
    one = enricher.enrich(item)
    (many,) = enricher.enrich_many([item])
    assert one.topic_hits == many.topic_hits
    assert one.entities == many.entities


def test_empty_article_gives_nothing(enricher: Enricher) -> None:
    enriched = enricher.enrich(article(""))
    assert enriched.topic_hits == ()
    assert enriched.entities == ()
