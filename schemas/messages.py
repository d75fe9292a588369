"""Kafka message types: frozen, versioned, JSON on the wire.

Each topic carries one type. ``schema_version`` is checked at every consumer's edge: a
message with a version the consumer does not know goes to the dead-letter topic. A change
that readers would notice bumps the version; `schemas/jsonschema/*.json` are generated
from these classes (``newswatch schemas write``) and a test checks they are current.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ARTICLE_VERSION: Literal[1] = 1
# Version 2 added `TopicHit.probability` (the relevance layer's); version 1 messages are
# still read, their hits with no probability.
ENRICHED_VERSION: Literal[2] = 2
DEAD_LETTER_VERSION: Literal[1] = 1
# No message a Newswatch stage writes comes near this: the producer bounds every field of
# an article (well under 1 MB), enrichment adds bounded evidence. Consumers refuse larger
# messages at their edge, as poison, instead of relaying what no topic would accept.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024

# --- Stored lengths: declared here, once ------------------------------------------------
# The wire leaves these fields unbounded (a reader takes what comes), but the SQL columns
# that hold them are bounded: `schemas.tables` sizes those columns from these numbers, and
# the store refuses a message with a longer value as poison (`consumers.store.daemon`)
# instead of letting PostgreSQL refuse its whole batch. tests/test_stored_lengths.py
# checks that the columns, these numbers and the store's check agree.
ARTICLE_ID_LENGTH = 64  # schemas.ids.article_id makes 32 hex digits: room to spare
FEED_ID_LENGTH = 64
LANGUAGE_LENGTH = 16
CONTENT_HASH_LENGTH = 64
TOPICS_VERSION_LENGTH = 64
TOPIC_LENGTH = 64
ENTITY_LABEL_LENGTH = 16
# entities.name is TEXT, but PostgreSQL's (name, label) unique index refuses entries over
# ~2.7 KB; 500 characters fit even at 4 bytes each (found by tests/hostile).
ENTITY_NAME_LENGTH = 500

# Field paths of `EnrichedArticle` (a tuple field applies to each of its items) -> the
# most characters the store can keep. `Article.id` is bounded by the model itself.
STORED_LENGTHS: dict[str, int] = {
    "article.feed_id": FEED_ID_LENGTH,
    "article.language": LANGUAGE_LENGTH,
    "article.content_hash": CONTENT_HASH_LENGTH,
    "topics_version": TOPICS_VERSION_LENGTH,
    "topic_hits.topic": TOPIC_LENGTH,
    "entities.label": ENTITY_LABEL_LENGTH,
    "entities.name": ENTITY_NAME_LENGTH,
}


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    def to_bytes(self) -> bytes:
        """The message as UTF-8 JSON, as it goes on the wire."""
        return self.model_dump_json().encode("utf-8")


class Article(_Message):
    """A normalised feed item on ``news.articles``; key = ``id``."""

    schema_version: Literal[1] = ARTICLE_VERSION
    id: str = Field(min_length=1, max_length=ARTICLE_ID_LENGTH,
                    description="schemas.ids.article_id")
    url: str | None = Field(description="Canonical URL, tracking parameters removed")
    guid: str | None = None
    title: str = ""
    summary: str = Field(default="", description="Plain text, HTML stripped")
    content: str = Field(default="", description="Plain text of the full body, when known")
    published: datetime = Field(description="UTC; the fetch time when missing or absurd")
    published_estimated: bool = Field(
        default=False, description="True when `published` is the fetch time, not the feed's"
    )
    updated: datetime | None = None
    fetched_at: datetime
    authors: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    feed_id: str
    feed_name: str = ""
    language: str | None = None
    revision: int = Field(default=0, ge=0, description="0 first seen; n for the n-th change")
    content_hash: str = Field(default="", description="Hash of title+summary+content")


class EvidenceSpan(_Message):
    """One matched phrase, its character offsets in the document text and its sentence."""

    phrase: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    sentence: str
    rule: str = Field(default="", description="Which phrase or pattern of the topic matched")


class TopicHit(_Message):
    """A topic found in an article: the rules' score in [0, 1], the relevance layer's
    calibrated probability (None when the topic has no model and only rules decided), and
    the evidence for it."""

    topic: str
    score: float = Field(ge=0.0, le=1.0, description="The rules' score (noisy-OR of evidence)")
    probability: float | None = Field(
        default=None, ge=0.0, le=1.0,
        description="P(the article is about the topic) from the relevance model; the "
        "threshold applied to it. None: no model for the topic, the rule score decided")
    evidence: tuple[EvidenceSpan, ...] = ()


class EntityCount(_Message):
    """A named entity after alias normalisation, with how often the article names it."""

    name: str = Field(description="Canonical name, e.g. 'Islamic State' for ISIS or Daesh")
    label: str = Field(description="spaCy label: PERSON, ORG, GPE, LOC, NORP, EVENT")
    count: int = Field(ge=1)
    texts: tuple[str, ...] = Field(default=(), description="Surface forms seen")


class EnrichedArticle(_Message):
    """An article with its entities and topic hits on ``news.enriched``; key = article id.

    ``article.language`` here is the language enrichment decided (detected from the text,
    with the declared one as a hint), not necessarily the one the feed declared.
    """

    schema_version: Literal[1, 2] = ENRICHED_VERSION
    article: Article
    entities: tuple[EntityCount, ...] = ()
    topic_hits: tuple[TopicHit, ...] = ()
    topics_version: str = Field(description="Hash of the topics file used")
    enriched_at: datetime
    # Added without a version bump: optional, and readers ignore fields they do not know.
    language_source: str = Field(
        default="", description="How article.language was decided: detected (from the "
        "text), declared (the feed's, where the text was too short or unclear), none; "
        "empty in messages from before language detection")


class DeadLetter(_Message):
    """What a stage could not process on ``news.dlq``, with the error and original bytes."""

    schema_version: Literal[1] = DEAD_LETTER_VERSION
    stage: str = Field(description="producer, enrich, store or alert")
    source_topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    key_b64: str | None = None
    value_b64: str = Field(description="The original bytes, base64")
    error_type: str
    error: str
    failed_at: datetime


MESSAGE_TYPES: dict[str, type[_Message]] = {
    "article": Article,
    "enriched_article": EnrichedArticle,
    "dead_letter": DeadLetter,
}
