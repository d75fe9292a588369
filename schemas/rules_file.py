"""The format of ``rules.yaml``: which topic hits fire alerts, how they are grouped and
throttled, and where they go. Users write this file; `consumers.alert.rules` loads it.

Everything here is plain data, validated by pydantic. Nothing in a rule file is ever
evaluated as code: `consumers.alert.compile` turns each rule into SQLAlchemy expressions
with bound parameters. Unknown keys are errors, so a typo cannot silently widen a rule.

Durations are `schemas.duration.Duration`: ``30s``, ``5m``, ``1h30m``, ``7d``, ``2w`` or a
number of seconds.

Secrets (SMTP password, webhook secret, tokens inside URLs) are never written here: the
file names the environment variables that hold them.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from schemas.duration import Duration

RULES_FILE_VERSION: Literal[1] = 1

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"


EnvName = Annotated[str, Field(pattern=ENV_NAME_PATTERN)]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


# --- channels --------------------------------------------------------------------------


class EmailChannel(_Strict):
    """SMTP delivery. Port defaults to 587 (starttls), 465 (ssl) or 25 (none)."""

    type: Literal["email"]
    host: str = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username_env: EnvName | None = Field(
        default=None, description="Environment variable holding the SMTP user name"
    )
    password_env: EnvName | None = Field(
        default=None, description="Environment variable holding the SMTP password"
    )
    from_: str = Field(alias="from", min_length=3, pattern=r"@")
    to: list[Annotated[str, Field(min_length=3, pattern=r"@")]] = Field(min_length=1)
    subject_prefix: str = "[newswatch]"
    timeout: Duration = timedelta(seconds=20)
    ca_file: Path | None = Field(
        default=None, description="CA bundle to trust for TLS, e.g. a private CA"
    )

    @model_validator(mode="after")
    def _credentials_in_pairs(self) -> EmailChannel:
        if (self.username_env is None) != (self.password_env is None):
            raise ValueError("give both username_env and password_env, or neither")
        return self

    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return {"starttls": 587, "ssl": 465, "none": 25}[self.security]


class _UrlChannel(_Strict):
    url: str | None = Field(default=None, description="Literal URL (no secrets in it)")
    url_env: EnvName | None = Field(
        default=None, description="Environment variable holding the URL (when it has a token)"
    )

    @model_validator(mode="after")
    def _one_url(self) -> _UrlChannel:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of url and url_env")
        return self


class WebhookChannel(_UrlChannel):
    """HTTP POST of the versioned JSON payload, signed with HMAC-SHA256 when a secret is set."""

    type: Literal["webhook"]
    secret_env: EnvName | None = Field(
        default=None, description="Environment variable holding the HMAC secret"
    )
    timeout: Duration = timedelta(seconds=10)
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value


class AppriseChannel(_UrlChannel):
    """Any Apprise URL: Slack, Teams, Telegram, Discord, ntfy, Matrix, ..."""

    type: Literal["apprise"]


class JsonlChannel(_Strict):
    """Appends each alert's JSON payload as one line; a relative path is under the state dir."""

    type: Literal["jsonl"]
    path: Path


class TerminalChannel(_Strict):
    """Prints each alert as text on the daemon's standard output."""

    type: Literal["terminal"]


Channel = Annotated[
    EmailChannel | WebhookChannel | AppriseChannel | JsonlChannel | TerminalChannel,
    Field(discriminator="type"),
]


# --- rules -----------------------------------------------------------------------------


def _list_means_any(value: Any) -> Any:
    if isinstance(value, str):
        return {"any": [value]}
    if isinstance(value, list):
        return {"any": value}
    return value


def _string_means_name(value: Any) -> Any:
    return {"name": value} if isinstance(value, str) else value


class TopicsMatch(_Strict):
    """Topic names: the article needs at least one of ``any`` and every one of ``all``."""

    any: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    all: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)

    def names(self) -> set[str]:
        return set(self.any) | set(self.all)


class EntityRef(_Strict):
    """A canonical entity name (as the alias table writes it), optionally with its label."""

    name: str = Field(min_length=1)
    label: str | None = Field(default=None, pattern=r"^[A-Z_]+$")


class EntitiesMatch(_Strict):
    any: list[Annotated[EntityRef, BeforeValidator(_string_means_name)]] = Field(
        default_factory=list
    )
    all: list[Annotated[EntityRef, BeforeValidator(_string_means_name)]] = Field(
        default_factory=list
    )


class Match(_Strict):
    """What one article must have. Every condition given must hold (they are ANDed)."""

    topics: Annotated[TopicsMatch, BeforeValidator(_list_means_any)] | None = None
    min_score: float = Field(default=0.0, ge=0.0, le=1.0,
                             description="Minimum score of the matching topic hits")
    entities: Annotated[EntitiesMatch, BeforeValidator(_list_means_any)] | None = None
    feeds: list[str] = Field(default_factory=list, description="Any of these feed ids")
    tags: list[str] = Field(default_factory=list, description="Any of these feed tags")
    title_keywords: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list, description="Any of these, case-insensitive, in the title"
    )
    languages: list[Annotated[str, Field(min_length=2)]] = Field(
        default_factory=list, description="Any of these; 'en' also matches 'en-GB'"
    )

    @model_validator(mode="after")
    def _not_empty(self) -> Match:
        topics = self.topics is not None and bool(self.topics.any or self.topics.all)
        entities = self.entities is not None and bool(self.entities.any or self.entities.all)
        if not (topics or entities or self.feeds or self.tags or self.title_keywords):
            raise ValueError(
                "give at least one of topics, entities, feeds, tags or title_keywords"
            )
        return self


class Count(_Strict):
    """Fire when at least ``at_least`` matching articles (of the group) are in the window."""

    at_least: int = Field(ge=1)
    within: Duration
    distinct_feeds: int = Field(default=1, ge=1, description="...from at least this many feeds")


class Spike(_Strict):
    """Fire once when the count in ``within`` jumps against the trailing ``baseline``.

    The baseline is cut into windows of the same length; the current count must be at
    least ``min_count`` and ``ratio`` times their mean, or ``z_score`` standard
    deviations above it. No decision is made until the store has watched for
    ``min_history`` of the baseline (default: all of it): an empty baseline on a new
    install is no evidence of a quiet topic.
    """

    within: Duration
    baseline: Duration
    ratio: float | None = Field(default=None, gt=1.0)
    z_score: float | None = Field(default=None, gt=0.0)
    min_count: int = Field(default=3, ge=1)
    min_history: Duration | None = Field(
        default=None, description="Baseline history needed before deciding; default: baseline")

    @model_validator(mode="after")
    def _valid(self) -> Spike:
        if (self.ratio is None) == (self.z_score is None):
            raise ValueError("give exactly one of ratio and z_score")
        if self.baseline < 2 * self.within:
            raise ValueError("baseline must be at least twice as long as within")
        if self.min_history is not None and not (
                self.within <= self.min_history <= self.baseline):
            raise ValueError("min_history must be between within and baseline")
        return self

    @property
    def history_needed(self) -> timedelta:
        """How much of the baseline must have been watched before a spike is decided."""
        return self.min_history if self.min_history is not None else self.baseline


GROUP_KEY_PATTERN = r"^(rule|topic|feed|story|entity:[A-Z_]+)$"


class Rule(_Strict):
    """One alert rule: match -> (count | spike) -> group/throttle (-> digest) -> channels."""

    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    enabled: bool = True
    match: Match
    count: Count | None = None
    spike: Spike | None = None
    group_by: list[Annotated[str, Field(pattern=GROUP_KEY_PATTERN)]] = Field(
        default_factory=lambda: ["rule"]
    )
    throttle: Duration = Field(default=timedelta(0),
                               description="At most one alert per group per interval")
    digest: Duration | None = Field(default=None,
                                    description="Collect the rule's alerts into one per interval")
    channels: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _valid(self) -> Rule:
        if self.count is not None and self.spike is not None:
            raise ValueError("give count or spike, not both")
        if self.throttle < timedelta(0):
            raise ValueError("throttle must not be negative")
        if self.digest is not None and self.digest <= timedelta(0):
            raise ValueError("digest must be longer than 0s")
        if len(set(self.group_by)) != len(self.group_by):
            raise ValueError("group_by lists a key twice")
        if len(set(self.channels)) != len(self.channels):
            raise ValueError("channels lists a channel twice")
        return self


class Delivery(_Strict):
    """Retry policy of every channel: exponential backoff with jitter, bounded twice."""

    max_attempts: int = Field(default=8, ge=1, le=100)
    backoff: Duration = timedelta(seconds=2)
    max_backoff: Duration = timedelta(minutes=10)
    deadline: Duration = Field(default=timedelta(hours=24),
                               description="Give up this long after the alert was decided")


class RulesFile(_Strict):
    """The whole ``rules.yaml``."""

    version: Literal[1] = RULES_FILE_VERSION
    channels: dict[Annotated[str, Field(pattern=NAME_PATTERN)], Channel] = Field(
        default_factory=dict
    )
    delivery: Delivery = Field(default_factory=Delivery)
    rules: list[Rule] = Field(default_factory=list)
