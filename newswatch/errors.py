"""The one exception hierarchy of Newswatch.

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
