"""When an evaluation takes the write lock (`outbox.WriteTurn`), on real databases.

SQLite has one writer at a time. An evaluation reads everything first with no write
transaction open and takes the lock only for its writes, so the deliverer's claim and
record go through while it matches; another evaluator that commits meanwhile (SQLite) is
seen under the lock, and this evaluation rolls back instead of deciding the same alerts
again. On PostgreSQL the cursor row lock makes the second evaluator wait instead. Each
test interrupts the evaluation at one of its reads with an SQLAlchemy statement hook on
the evaluator's engine (the code under test is not replaced).
"""

from __future__ import annotations

import random
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, select

from consumers.alert.channels.base import Notifier
from consumers.alert.channels.webhook import WebhookNotifier
from consumers.alert.compile import CompiledRules
from consumers.alert.deliver import Deliverer
from consumers.alert.outbox import ConcurrentEvaluationError, run_tick
from consumers.alert.rules import parse_rules
from consumers.alert.windows import cursor_token
from newswatch.db import make_engine
from newswatch.migrate import upgrade
from schemas import tables
from schemas.rules_file import Delivery
from tests.alert.conftest import (
    NOW,
    alert_article_ids,
    compiled_rules,
    insert_article,
    later,
)
from tests.alert.test_group_cache import RULES as THROTTLED  # one throttled rule
from tests.support.webhook import WebhookReceiver


def at_a_read(engine: Engine, action: Callable[[], None],
              reads: str = "FROM articles") -> Callable[[], None]:
    """Run ``action`` once, in the calling thread, just before the first statement of
    that thread on ``engine`` that contains ``reads`` (the articles are first read while
    matching). Returns a function that removes the hook."""
    thread, done = threading.get_ident(), threading.Event()

    def before(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if threading.get_ident() == thread and reads in statement and not done.is_set():
            done.set()
            action()

    event.listen(engine, "before_cursor_execute", before)
    return lambda: event.remove(engine, "before_cursor_execute", before)


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Iterator[tuple[Engine, Path]]:
    path = tmp_path / "turn.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    yield engine, path
    engine.dispose()


def no_wait_engine(path: Path) -> Engine:
    """An engine on ``path`` whose writers fail at once on a held lock ("database is
    locked") instead of waiting for the busy timeout: a wait would show as an error."""
    engine = make_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def _no_wait(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=0")

    return engine


@pytest.mark.integration
def test_the_deliverer_claims_and_records_while_an_evaluation_reads_and_matches(
        sqlite_file: tuple[Engine, Path], receiver: WebhookReceiver) -> None:
    engine, path = sqlite_file
    text = (f"channels: {{hook: {{type: webhook, url: '{receiver.url}'}}}}\n"
            "rules:\n  - name: threat\n    match: {topics: [is_threat]}\n"
            "    channels: [hook]\n")
    rules = compiled_rules(engine, text)
    first = insert_article(engine, topics={"is_threat": 0.9})
    assert len(run_tick(engine, rules, NOW).alerts) == 1  # pending in the outbox
    second = insert_article(engine, topics={"is_threat": 0.9})

    policy = parse_rules(text).delivery
    channels: dict[str, Notifier] = {"hook": WebhookNotifier("hook", receiver.url, secret=None,
                                                             timeout_s=5)}

    def source() -> tuple[Mapping[str, Notifier], Delivery]:
        return channels, policy

    deliverer_engine = no_wait_engine(path)
    deliverer = Deliverer(deliverer_engine, source, rng=random.Random(0))
    delivered: list[int] = []
    probes: list[tuple[str, bool, bool]] = []  # (statement, in a transaction, lock free)
    writes: list[str] = []

    def probe(_conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        """Before each of the evaluation's reads: is the write lock free for others?"""
        if writes or not statement.lstrip().upper().startswith("SELECT"):
            writes.append(statement.lstrip())
            return
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
            free = True
        except sqlite3.OperationalError:
            free = False
        finally:
            other.close()
        probes.append((statement, cursor.connection.in_transaction, free))

    event.listen(engine, "before_cursor_execute", probe)
    remove = at_a_read(engine, lambda: delivered.append(
        deliverer.run_once(later(1)).sent))
    try:
        result = run_tick(engine, rules, later(1))
    finally:
        remove()
        event.remove(engine, "before_cursor_execute", probe)
        deliverer.close()
        deliverer_engine.dispose()

    assert delivered == [1]  # claimed, sent and recorded in the evaluation's reads
    assert [r.payload["articles"][0]["id"] for r in receiver.accepted] == [first]
    with engine.connect() as conn:
        assert conn.execute(select(tables.alerts.c.status)
                            .order_by(tables.alerts.c.id)).scalars().all() == [
            "sent", "pending"]
    assert len(result.alerts) == 1
    assert alert_article_ids(engine) == [[first], [second]]
    assert len(probes) >= 5
    assert [p for p in probes if p[1] or not p[2]] == []  # no read held a transaction
    assert writes[0].startswith("UPDATE alert_state")  # the write turn starts the writes


@pytest.mark.parametrize("case", ["new hit", "release without hits"])
def test_an_evaluator_committing_during_another_ones_reads_is_not_repeated(
        engine: Engine, case: str) -> None:
    """SQLite: the second evaluator commits while the first reads; the first sees it
    under the write lock and rolls back, and its retry decides nothing. PostgreSQL: the
    second waits for the first's cursor row lock, then decides nothing."""
    first, second = compiled_rules(engine, THROTTLED), compiled_rules(engine, THROTTLED)
    a = insert_article(engine, published=NOW, topics={"is_threat": 0.9})
    expected = [[a]]
    moment = NOW
    if case == "release without hits":
        assert len(run_tick(engine, first, NOW).alerts) == 1
        b = insert_article(engine, published=later(300), topics={"is_threat": 0.9})
        assert run_tick(engine, first, later(300)).alerts == []  # held by the throttle
        expected, moment = [[a], [b]], later(3660)
    other: list[int] = []
    thread = threading.Thread(target=lambda: other.append(
        len(run_tick(engine, second, moment).alerts)))
    sqlite = engine.dialect.name == "sqlite"

    def meanwhile() -> None:
        thread.start()
        # SQLite: nothing holds the other one up. PostgreSQL: it waits for this one's
        # cursor row lock (joined after this evaluation's commit below).
        thread.join(timeout=20 if sqlite else 0.3)
        assert not sqlite or not thread.is_alive(), "it waited for this one's write lock"

    remove = at_a_read(engine, meanwhile)
    try:
        if sqlite:
            with pytest.raises(ConcurrentEvaluationError):
                run_tick(engine, first, moment)
        else:
            assert len(run_tick(engine, first, moment).alerts) == 1
    finally:
        remove()
        thread.join()
    assert other == ([1] if sqlite else [0])
    assert run_tick(engine, first, moment).alerts == []  # the retry
    assert run_tick(engine, second, moment).alerts == []
    assert alert_article_ids(engine) == expected


def test_every_commit_changes_the_cursor_token_even_at_the_same_moment(
        engine: Engine) -> None:
    """The token is what the write turn compares: a commit must change it even when its
    clock has not moved (two commits stamped alike would look like none)."""
    rules: CompiledRules = compiled_rules(engine, THROTTLED)
    tokens = []
    for _ in range(3):
        insert_article(engine, published=NOW, topics={"is_threat": 0.9})
        run_tick(engine, rules, NOW)
        with engine.connect() as conn:
            tokens.append(cursor_token(conn))
    stamps = [token[1] for token in tokens if token is not None and token[1] is not None]
    assert len(stamps) == 3
    assert stamps[0] >= NOW
    assert all(one < two for one, two in pairwise(stamps))  # strictly increasing
