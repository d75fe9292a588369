"""A store process frozen inside its transaction must not hold the others back for long.

Two store processes write disjoint articles (Kafka partitions them by article id), but a
frozen one (SIGSTOP, a stalled VM, a debugger) keeps its open transaction's row locks
while it is frozen. When the group hands its partitions to another process, that one
replays the same articles and waits on those locks for the whole freeze (issue 16, item
2: 150 s). PostgreSQL ends such a session itself: ``idle_in_transaction_session_timeout``
aborts a transaction whose client sent nothing for that long, which only a stalled client
does (a batch's statements follow each other within milliseconds). The frozen process,
resumed, finds its connection gone, retries the batch (`ServiceUnavailableError`), and its
offsets were never committed, so nothing is lost; the writes are idempotent, so nothing is
stored twice. (New entities, the rows all store processes share, are created outside the
batch's transaction: see `consumers.store.write.create_entities`.)
"""

from __future__ import annotations

from sqlalchemy import Connection, text


def end_if_idle(connection: Connection, seconds: float | None) -> None:
    """Make PostgreSQL abort the transaction open on ``connection`` if its client then
    sends nothing for ``seconds`` (``SET LOCAL``: this transaction only, so a shared
    engine's other users are not affected). Nothing on SQLite, or when ``seconds`` is None
    (one writer at a time there: a frozen writer holds the file whatever the session does).
    """
    if seconds is None or connection.dialect.name != "postgresql":
        return
    connection.execute(text("SELECT set_config('idle_in_transaction_session_timeout', "
                            ":ms, true)"), {"ms": str(max(1, int(seconds * 1000)))})
