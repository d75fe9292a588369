"""Telling a database that is away from a statement that is wrong, at the point of failure.

A lost connection, a refused connection, a server shutting down, a pool timeout or a
locked SQLite file may all succeed later, so they become `ServiceUnavailableError`, which
the run loop retries with backoff. Anything else (a constraint, a bad value) is final and
propagates unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import exc as sa_exc

from newswatch.errors import ServiceUnavailableError

# Errors that say nothing about the statement, only about the database being reachable.
_UNAVAILABLE: tuple[type[Exception], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
    sa_exc.DisconnectionError,
)


# SQLSTATE classes that DB-API drivers file under OperationalError although they are about
# the statement, not the server: 54 "program limit exceeded" (e.g. an index entry over
# PostgreSQL's ~2.7 KB). Retrying the same data waits forever (found by tests/hostile).
_STATEMENT_SQLSTATE_CLASSES = ("54",)


def is_unavailable(error: BaseException) -> bool:
    """True when ``error`` means the database could not be reached or went away."""
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    sqlstate = str(getattr(getattr(error, "orig", None), "sqlstate", None) or "")
    if sqlstate[:2] in _STATEMENT_SQLSTATE_CLASSES:
        return False
    return isinstance(error, _UNAVAILABLE)


def short_reason(error: BaseException) -> str:
    """The driver's first line, without the SQL and parameters SQLAlchemy appends."""
    origin = getattr(error, "orig", None) or error
    text = str(origin).strip().splitlines()
    return (text[0] if text else type(origin).__name__)[:500]


@contextmanager
def unavailable_as_retryable(what: str = "database") -> Iterator[None]:
    """Re-raise an unreachable-database error as `ServiceUnavailableError`; others as they are."""
    try:
        yield
    except sa_exc.SQLAlchemyError as error:
        if is_unavailable(error):
            raise ServiceUnavailableError(f"{what} unavailable: {short_reason(error)}") from error
        raise
