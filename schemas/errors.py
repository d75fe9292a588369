"""The one exception hierarchy of Newswatch, at the bottom of the layers (it imports nothing).

It lives beside the contracts because the contracts raise it (a bad feeds, topics or rules
file is a `ConfigError`) and `schemas/` imports nothing from the rest of the project;
`newswatch.errors` re-exports every name, and that is the path the rest of the code uses.

Every error the product raises on purpose derives from `NewswatchError`, so the CLI can
print it as one clear line instead of a traceback. `retryable` says whether trying the same
thing again later may succeed; the single retry loop reads it instead of guessing.
"""


class NewswatchError(Exception):
    """Base of every deliberate Newswatch error."""

    retryable: bool = False


class ConfigError(NewswatchError):
    """A settings value or a user-written file (feeds, topics, rules) is invalid."""


class MissingToolError(NewswatchError):
    """A program the command needs (java, mvn) is not installed."""


class KafkaStartError(NewswatchError):
    """The local Kafka broker could not be started or did not become ready."""


class SchemaVersionError(NewswatchError):
    """The database schema is not at the version this code expects."""


class ServiceUnavailableError(NewswatchError):
    """A broker, database or remote server did not answer; trying later may work."""

    retryable = True


class FeedError(NewswatchError):
    """A feed could not be fetched or read. The poller records it on the feed and moves on.

    ``status`` is the HTTP status when there was one; ``retry_after_s`` is the server's
    Retry-After in seconds; ``gone`` means the feed answered 410 and must not be polled again.
    """

    def __init__(self, message: str, *, retryable: bool = False, status: int | None = None,
                 retry_after_s: float | None = None, gone: bool = False,
                 kind: str = "fetch") -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after_s = retry_after_s
        self.gone = gone
        self.kind = kind


class LeaseLapsedError(NewswatchError):
    """A producer may no longer hold a feed's lease (it was frozen or cut off from the
    database for a lease period), so ``step`` of that feed's refresh ("poll", "publish" or
    "record") was not done: the feed is left to the producer that holds it now."""

    def __init__(self, feed_id: str, step: str) -> None:
        super().__init__(f"the lease of feed {feed_id!r} may have lapsed; {step} skipped")
        self.feed_id = feed_id
        self.step = step


class OversizedMessageError(NewswatchError, ValueError):
    """A Kafka message larger than any Newswatch stage writes: poison at a consumer's edge."""


class UndecodableBatchError(NewswatchError, ValueError):
    """A Kafka record batch that does not decompress within the limits (a decompression
    bomb, a codec not installed, corrupt data): each of its records is poison."""


class BrokerUnavailableError(ServiceUnavailableError):
    """Kafka did not acknowledge (or could not be asked); nothing was recorded as sent."""


class NotFoundError(NewswatchError, LookupError):
    """What was asked for (an alert, an article, a user, a silence) does not exist."""


class PermissionDeniedError(NewswatchError):
    """The signed-in user's role may not do this (e.g. a viewer acknowledging)."""


class FeedbackError(NewswatchError, ValueError):
    """An analyst's verdict cannot be recorded: an invalid verdict, topic or name."""


class ArticleNotFoundError(FeedbackError, NotFoundError, LookupError):
    """The article a verdict is about is not in the database."""
