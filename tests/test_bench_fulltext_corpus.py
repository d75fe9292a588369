"""bench.fulltext_corpus: the full-text benchmark's articles are English, as the raw spaCy
run beside the pipeline assumes (its English NER against the enricher's choice of
pipeline). The multilingual labelled sets share the folder it reads: mixed in, most
articles were analysed by other pipelines and the ratio compared different work."""

from __future__ import annotations

from bench.fulltext_corpus import MAX_WORDS, MIN_WORDS, fulltext_articles
from consumers.enrich.enrich import document_text
from consumers.enrich.language import LanguageIdentifier


def test_every_full_text_article_is_english_and_of_full_length() -> None:
    articles = fulltext_articles(60)
    identifier = LanguageIdentifier()
    languages = [identifier.guess(document_text(title, content=text).text).primary
                 for title, text in articles]
    assert languages == ["en"] * len(articles)
    assert all(MIN_WORDS <= len(text.split()) <= MAX_WORDS + 120 for _, text in articles)
