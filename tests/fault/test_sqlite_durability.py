"""Fault 8 (first half) of issue 16: SQLite commits lost under a failing file system.

With ``synchronous=NORMAL`` in WAL mode a commit is not fsynced: after a read-only
remount, the producer's "publishing" marks were lost and 18 articles were published
twice. Every SQLite connection Newswatch opens now syncs each commit (FULL).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from newswatch.db import make_engine

SYNCHRONOUS_FULL = 2


def test_every_sqlite_connection_syncs_each_commit(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'n.db'}")
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA synchronous")).scalar() == SYNCHRONOUS_FULL
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    finally:
        engine.dispose()
