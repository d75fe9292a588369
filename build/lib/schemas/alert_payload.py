"""What an alert says, as sent to webhooks and JSON-lines files (version 1).

This is a public contract: receivers parse it. Fields are only ever added within a
version; a change a receiver would notice bumps ``version``. Times are ISO 8601 UTC.

An alert lists the articles that made a rule fire, each with the topics it was found to
be about and the evidence: the phrases matched and the sentences they stand in. A digest
(``kind: digest``) collects several groups' alerts of one rule; each article carries its
own ``group``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ALERT_PAYLOAD_VERSION: Literal[1] = 1


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class EvidenceItem(_Frozen):
    phrase: str = Field(description="The words that matched")
    sentence: str = Field(description="The sentence they stand in")


class TopicItem(_Frozen):
    topic: str
    score: float = Field(ge=0.0, le=1.0)
    evidence: list[EvidenceItem] = Field(default_factory=list)


class ArticleItem(_Frozen):
    id: str = Field(description="Newswatch article id")
    title: str
    url: str | None
    source: str = Field(description="The feed's name")
    feed_id: str
    published: datetime
    language: str | None = None
    group: dict[str, str] = Field(default_factory=dict,
                                  description="The group the article was counted in")
    topics: list[TopicItem] = Field(default_factory=list)


class RuleItem(_Frozen):
    name: str
    description: str = ""


class AlertPayload(_Frozen):
    """The JSON body of a webhook POST and of each line of a jsonl channel."""

    version: Literal[1] = ALERT_PAYLOAD_VERSION
    alert_id: int | None = Field(default=None, description="Set once the alert is stored")
    dedup_key: str = Field(description="Unique per alert: receivers can drop repeats by it")
    kind: Literal["alert", "digest"] = "alert"
    rule: RuleItem
    group: dict[str, str] = Field(description="Group labels, e.g. {'topic': 'is_threat'}")
    reason: str = Field(description="Why the rule fired, in words")
    created_at: datetime
    articles: list[ArticleItem]
    articles_total: int = Field(ge=0, description="Articles in the alert (list may be capped)")
