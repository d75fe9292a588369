"""The pattern pre-filter: what a pattern needs, and the same matches with it as without."""

from __future__ import annotations

from typing import Any

import pytest
import spacy
from spacy.attrs import LOWER, ORTH
from spacy.matcher import Matcher
from spacy.strings import get_string_id

from bench.fulltext_corpus import fulltext_articles
from consumers.enrich.anchors import FilteredMatcher, Forms, KeyFilter, doc_forms, pattern_anchors
from consumers.enrich.enrich import Enricher
from consumers.enrich.topics import TopicMatcher


def ids(*forms: str) -> frozenset[int]:
    return frozenset(get_string_id(form) for form in forms)


@pytest.mark.parametrize(("pattern", "expected"), [
    ([{"LOWER": "drug"}, {"LOWER": {"IN": ["lord", "lords"]}}],
     ((LOWER, ids("drug")), (LOWER, ids("lord", "lords")))),
    ([{"lower": "the", "OP": "?"}, {"ORTH": "ISIS", "OP": "+"}], ((ORTH, ids("ISIS")),)),
    ([{"TEXT": {"IN": ["'s"]}, "OP": "{1,3}"}, {"LOWER": "x", "OP": "{0,2}"}],
     ((ORTH, ids("'s")),)),
    ([{"LOWER": "a", "OP": "*"}, {"LOWER": "b", "OP": "!"}, {"LOWER": "c", "OP": "{,2}"}], ()),
    ([{"LOWER": {"REGEX": "^opec"}}, {"IS_ALPHA": True}, {"_": {"canonical": "ISIS"}}], ()),
    ([{"LOWER": {"IN": ["a", 1]}}, {"LOWER": {"NOT_IN": ["b"]}}, {}], ()),
])
def test_pattern_anchors_are_the_mandatory_exact_forms(pattern: list[dict[str, Any]],
                                                       expected: tuple[Any, ...]) -> None:
    assert pattern_anchors(pattern) == expected


def test_a_key_is_possible_when_one_of_its_patterns_has_all_its_words() -> None:
    keys = KeyFilter({
        "both": [[{"LOWER": "drug"}, {"LOWER": "lord"}]],
        "either": [[{"LOWER": "cartel"}], [{"LOWER": "kingpin"}]],
        "always": [[{"LOWER": {"REGEX": "^narco"}}]],
    })
    nlp = spacy.blank("en")
    forms = Forms.of(doc_forms(nlp("The drug trade and a kingpin")))
    assert keys.possible(forms) == {"either", "always"}
    assert keys.possible(Forms.of(doc_forms(nlp("A drug lord")))) == {"both", "always"}
    assert KeyFilter({"both": [[{"LOWER": "drug"}, {"LOWER": "lord"}]]}).any_possible(
        forms) is False


@pytest.mark.parametrize("kept", [32, 1])
def test_filtered_matcher_finds_what_the_full_matcher_finds(
        kept: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every subset path (none, some, all keys possible; a subset past the matchers kept
    runs the full one) against the plain `Matcher`."""
    monkeypatch.setattr("consumers.enrich.anchors.MAX_SUBMATCHERS", kept)
    nlp = spacy.blank("en")
    patterns = {
        "lord": [[{"LOWER": "drug"}, {"LOWER": {"IN": ["lord", "lords"]}}]],
        "cartel": [[{"LOWER": "the", "OP": "?"}, {"LOWER": "cartel", "OP": "+"}]],
        "seat": [[{"LOWER": {"REGEX": "^seat"}}, {"LOWER": "at", "OP": "?"}]],
    }
    full = Matcher(nlp.vocab, validate=True)
    for key, found in patterns.items():
        full.add(key, found, greedy="LONGEST")
    filtered = FilteredMatcher(nlp.vocab, full, patterns)
    texts = ["Nothing to see here.", "The cartel cartel and drug lords.", "A seat at the UN.",
             "Drug lord of the cartel took a seat at the table.", "drug drug lord lords"]
    for text in texts * 2:  # the second round uses the kept sub-matchers
        doc = nlp(text)
        expected = sorted((span.label_, span.start, span.end)
                          for span in full(doc, as_spans=True))
        got = sorted((span.label_, span.start, span.end)
                     for span in filtered(doc, Forms.of(doc_forms(doc))))
        assert got == expected, text
    assert len(filtered._subsets) == min(kept, 2)  # {seat} and {lord, seat}; all: the full


@pytest.fixture(scope="module")
def full_texts() -> list[tuple[str, str]]:
    return fulltext_articles(48)


def test_topic_scores_identical_with_and_without_the_prefilter(
        enricher: Enricher, full_texts: list[tuple[str, str]]) -> None:
    """48 full-text articles of the benchmark corpus, tokenised, sentence-split and with
    alias-table mentions (NER left out, for speed): every topic's score, hit and evidence
    span is the same whether the patterns run behind the pre-filter or everywhere."""
    nlp = enricher.nlp
    pipeline = enricher.pipelines.default
    plain = TopicMatcher(nlp, enricher.topics, "en", prefilter=False)
    filtered = TopicMatcher(nlp, enricher.topics, "en", prefilter=True)
    docs = list(nlp.pipe((f"{title}\n\n{text}" for title, text in full_texts),
                         disable=["ner"]))
    evidence = 0
    for (title, _), doc in zip(full_texts, docs, strict=True):
        mentions = pipeline.entities.mentions(doc)
        expected = plain.score(doc, mentions, len(title))
        assert filtered.score(doc, mentions, len(title)) == expected
        evidence += sum(len(item.evidence) for item in expected)
    assert evidence > 100  # the corpus gives the patterns something to find


def test_enriched_messages_identical_with_and_without_the_prefilter(
        enricher: Enricher, full_texts: list[tuple[str, str]]) -> None:
    """Through the whole enricher (NER, relevance model) on 6 full-text articles with hits:
    the stored message bytes (hits, probabilities, evidence, entities) are the same with the
    pre-filter (the shipped enricher) as with every pattern run everywhere."""
    from dataclasses import replace
    from datetime import UTC, datetime

    from tests.enrich_fixtures import article

    articles = [article(title, content=text, id=f"a{i}")
                for i, (title, text) in enumerate(full_texts[:6])]
    clock = datetime(2026, 12, 2, tzinfo=UTC)
    plain = Enricher(enricher.nlp, enricher.topics, relevance=enricher.relevance,
                     clock=lambda: clock)
    english = plain.pipelines.default  # the test swaps in the reference matcher
    plain.pipelines._built["en"] = replace(english, matcher=TopicMatcher(
        enricher.nlp, enricher.topics, "en", prefilter=False))
    results = {}
    for name, by in (("plain", plain), ("filtered", enricher)):
        enriched = by.enrich_many(articles)
        results[name] = [item.model_copy(update={"enriched_at": clock}).model_dump_json()
                         for item in enriched]
    assert results["filtered"] == results["plain"]
    assert sum(message.count('"probability"') for message in results["plain"]) >= 2
