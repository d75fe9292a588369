"""Kafka topic names, in one place. A prefix lets several deployments share a cluster."""

from __future__ import annotations

from dataclasses import dataclass

ARTICLES = "news.articles"
ENRICHED = "news.enriched"
DLQ = "news.dlq"


@dataclass(frozen=True)
class TopicNames:
    """The three topics of the pipeline, with the deployment's prefix applied."""

    articles: str
    enriched: str
    dlq: str

    @classmethod
    def with_prefix(cls, prefix: str = "") -> TopicNames:
        return cls(articles=prefix + ARTICLES, enriched=prefix + ENRICHED, dlq=prefix + DLQ)
