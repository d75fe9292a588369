"""The one exception hierarchy of Newswatch: every name of `schemas.errors`, re-exported.

The classes are defined once, in `schemas.errors` (the bottom layer, so the contracts can
raise them without importing upward); code above the contracts imports them from here.
A new error class goes in `schemas.errors` and is added to this list.
"""

from schemas.errors import (
    ArticleNotFoundError,
    BrokerUnavailableError,
    ConfigError,
    FeedbackError,
    FeedError,
    KafkaStartError,
    LeaseLapsedError,
    MissingToolError,
    NewswatchError,
    NotFoundError,
    OversizedMessageError,
    PermissionDeniedError,
    SchemaVersionError,
    ServiceUnavailableError,
    UndecodableBatchError,
)

__all__ = [
    "ArticleNotFoundError",
    "BrokerUnavailableError",
    "ConfigError",
    "FeedError",
    "FeedbackError",
    "KafkaStartError",
    "LeaseLapsedError",
    "MissingToolError",
    "NewswatchError",
    "NotFoundError",
    "OversizedMessageError",
    "PermissionDeniedError",
    "SchemaVersionError",
    "ServiceUnavailableError",
    "UndecodableBatchError",
]
