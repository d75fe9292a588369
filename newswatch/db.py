"""Database engines: SQLite (embedded default) and PostgreSQL (production)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; for SQLite, the folder is created and WAL mode turned on.

    WAL lets the alert daemon read while the store daemon writes; ``busy_timeout`` makes a
    writer wait for a lock instead of failing at once.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            # FULL, not NORMAL: with NORMAL a commit can be lost when the file system
            # fails under it (a read-only remount lost the producer's "publishing" marks,
            # and 18 articles were published twice, issue 16). Our writes are batched, so
            # the extra fsync per commit costs little.
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        # Plain postgresql:// URLs use psycopg 3, the driver we ship.
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def database_answers(engine: Engine) -> bool:
    """True when the database answers a trivial query: a daemon's readiness probe. Raises
    the driver's error when it does not (the health server counts that as "not ready")."""
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    return True
