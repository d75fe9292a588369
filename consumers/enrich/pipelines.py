"""One analysis pipeline per language, built on first use and kept for the process.

A pipeline is a spaCy `Language` with the entity finder and topic matcher compiled for
it (their phrase matchers hold the language's tokenization of every phrase and name):

- a language with a model in ``models`` (English, French by default) gets that model's
  NER (`consumers.enrich.nlp.load_pipeline`);
- any other language spaCy can tokenize gets `load_blank`: no NER, entities from the
  alias table only. It runs several times faster than NER per word;
- a language for which nothing is configured (no model, no topic phrases, no names in
  the alias table) and one spaCy cannot tokenize without an extra package (Japanese,
  Thai...) share the multi-language tokenizer ``xx``; a document with no language at all
  gets the default language's pipeline. The caller logs and counts each fallback.

Memory stays bounded by configuration, not by the input: a model is ~150 MB and loads
once; a blank pipeline with its compiled phrases and names is ~10-20 MB, one per
configured language plus ``xx``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import spacy.util
from spacy.language import Language

from consumers.enrich.entities import EntityFinder, language_names
from consumers.enrich.lemma_forms import WordForms
from consumers.enrich.nlp import BLANK_FALLBACK, DEFAULT_MODEL, has_ner, load_blank, load_pipeline
from consumers.enrich.topics import TopicMatcher, topic_phrases
from newswatch.errors import ConfigError
from schemas.topics_file import LoadedTopics

log = logging.getLogger(__name__)

DEFAULT_LANGUAGE = "en"
DEFAULT_MODELS: Mapping[str, str] = {"en": DEFAULT_MODEL, "fr": "fr_core_news_sm"}


@dataclass(frozen=True)
class LanguagePipeline:
    """What analyses documents of one language."""

    language: str  # the language whose phrases and tokenizer are used ("xx": fallback)
    nlp: Language
    entities: EntityFinder
    matcher: TopicMatcher

    @property
    def has_ner(self) -> bool:
        return has_ner(self.nlp)


@dataclass(frozen=True)
class Choice:
    """The pipeline chosen for a language, and whether that was a fallback."""

    pipeline: LanguagePipeline
    fallback: str = ""  # "", "no_language" or "unsupported_language"


class Pipelines:
    """Pipelines by language code, loaded lazily.

    ``models`` maps language codes to spaCy model packages; every model named must be
    installed (checked here, so a typo fails at start, not at the first French article).
    ``preloaded`` gives ready pipelines (tests share one English model this way).
    """

    def __init__(self, topics: LoadedTopics, models: Mapping[str, str] | None = None, *,
                 preloaded: Mapping[str, Language] | None = None,
                 default_language: str = DEFAULT_LANGUAGE) -> None:
        self.topics = topics
        self.models = dict(DEFAULT_MODELS if models is None else models)
        self.default_language = default_language
        self._built: dict[str, LanguagePipeline] = {}
        self._unsupported: set[str] = set()
        self.languages = frozenset(self.models) | configured_languages(topics) | {
            default_language}
        for language, nlp in (preloaded or {}).items():
            self._built[language] = self._compile(language, nlp)
        for language, model in self.models.items():
            if language not in self._built and not spacy.util.is_package(model):
                raise ConfigError(f"spaCy model {model!r} for language {language!r} is not "
                                  "installed (pip install it, or change the language models)")

    @property
    def default(self) -> LanguagePipeline:
        return self.get(self.default_language).pipeline

    def loaded(self) -> dict[str, LanguagePipeline]:
        """The pipelines built so far, by language."""
        return dict(self._built)

    def get(self, language: str | None) -> Choice:
        """The pipeline for a primary language code (None: no language known)."""
        if language is None:
            return Choice(self.get(self.default_language).pipeline, "no_language")
        if language in self._built:
            return Choice(self._built[language])
        if language in self._unsupported:
            return Choice(self.get(BLANK_FALLBACK).pipeline, "unsupported_language")
        if language not in self.languages and language != BLANK_FALLBACK:
            return Choice(self.get(BLANK_FALLBACK).pipeline, "generic_language")
        try:
            nlp = (load_pipeline(self.models[language]) if language in self.models
                   else load_blank(language))
        except ConfigError as exc:
            if language == BLANK_FALLBACK or language in self.models:
                raise
            log.warning("no tokenizer for this language: using the multi-language one",
                        extra={"language": language, "error": str(exc)})
            self._unsupported.add(language)
            return Choice(self.get(BLANK_FALLBACK).pipeline, "unsupported_language")
        pipeline = self._compile(language, nlp)
        self._built[language] = pipeline
        log.info("language pipeline ready", extra={
            "language": language, "ner": pipeline.has_ner,
            "model": self.models.get(language, f"blank:{language}")})
        return Choice(pipeline)

    def _compile(self, language: str, nlp: Language) -> LanguagePipeline:
        book = None
        if language != "en":  # one pass over the language's lemma tables for both
            book = WordForms(language, [*topic_phrases(self.topics, language),
                                        *language_names(self.topics.aliases, language)])
        return LanguagePipeline(
            language=language, nlp=nlp,
            entities=EntityFinder(nlp, self.topics.aliases, language, book),
            matcher=TopicMatcher(nlp, self.topics, language, book))


def configured_languages(topics: LoadedTopics) -> frozenset[str]:
    """Languages the topics file has phrases for or the alias table has names in."""
    found = {code for topic in topics.topics.topics.values() for code in topic.languages}
    found |= {code for entity in topics.aliases.entities for code in entity.names}
    return frozenset(found)
