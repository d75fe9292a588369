"""An idle evaluation is skipped after a probe (`outbox.IdleMark`), and only then.

Each test runs the live evaluator (`run_tick`) on SQLite and PostgreSQL and counts the
statements it sends with an SQLAlchemy hook on the engine: a skipped tick sends the one
probe. What a skip must never cost: a new hit, a throttled group that falls due, another
evaluator's commit, a digest rule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event

from consumers.alert.outbox import run_tick
from tests.alert.conftest import NOW, alert_article_ids, compiled_rules, insert_article
from tests.alert.test_group_cache import RULES as THROTTLED  # one rule, group by feed, 1h

PLAIN = """
channels: {out: {type: terminal}}
rules:
  - name: every
    match: {topics: [is_threat]}
    throttle: 0s
    channels: [out]
"""

DIGEST = """
channels: {out: {type: terminal}}
rules:
  - name: daily
    match: {topics: [is_threat]}
    digest: 1d
    channels: [out]
"""


@pytest.fixture
def statements(engine: Engine) -> Iterator[Callable[[], int]]:
    """A counter of the statements sent on ``engine`` since the last call."""
    sent: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", before)

    def count() -> int:
        n = len(sent)
        sent.clear()
        return n

    yield count
    event.remove(engine, "before_cursor_execute", before)


def settle(engine: Engine, rules: Any, seconds: float) -> None:
    """Evaluate until the evaluator is idle (the first idle ticks rebuild and mark)."""
    for step in range(3):
        run_tick(engine, rules, NOW + timedelta(seconds=seconds + step))


def test_an_idle_tick_is_one_statement_and_a_new_hit_ends_it(
        engine: Engine, statements: Callable[[], int]) -> None:
    rules = compiled_rules(engine, PLAIN)
    first = insert_article(engine, topics={"is_threat": 0.9})
    settle(engine, rules, 0)
    statements()
    assert run_tick(engine, rules, NOW + timedelta(seconds=10)).hits == 0
    assert statements() == 1
    second = insert_article(engine, topics={"is_threat": 0.9})
    result = run_tick(engine, rules, NOW + timedelta(seconds=11))
    assert result.hits == 1
    assert len(result.alerts) == 1
    assert statements() > 1
    assert alert_article_ids(engine) == [[first], [second]]


def test_a_throttled_group_falling_due_is_released(engine: Engine,
                                                   statements: Callable[[], int]) -> None:
    rules = compiled_rules(engine, THROTTLED)
    first = insert_article(engine, topics={"is_threat": 0.9})
    run_tick(engine, rules, NOW)  # alert 1
    held = insert_article(engine, published=NOW + timedelta(minutes=5),
                          topics={"is_threat": 0.9})
    run_tick(engine, rules, NOW + timedelta(minutes=5))  # held until NOW + 1h
    settle(engine, rules, 400)
    statements()
    run_tick(engine, rules, NOW + timedelta(minutes=30))
    assert statements() == 1  # skipped: nothing due yet
    result = run_tick(engine, rules, NOW + timedelta(hours=1, seconds=1))
    assert len(result.alerts) == 1
    assert alert_article_ids(engine) == [[first], [held]]


def test_another_evaluators_commit_ends_the_skip(engine: Engine,
                                                 statements: Callable[[], int]) -> None:
    mine, theirs = compiled_rules(engine, PLAIN), compiled_rules(engine, PLAIN)
    insert_article(engine, topics={"is_threat": 0.9})
    settle(engine, mine, 0)
    insert_article(engine, topics={"is_threat": 0.9})
    run_tick(engine, theirs, NOW + timedelta(seconds=5))  # their commit moves the cursor
    statements()
    run_tick(engine, mine, NOW + timedelta(seconds=6))
    assert statements() > 1  # read again: the token changed


def test_a_rule_set_with_a_digest_is_never_skipped(engine: Engine,
                                                    statements: Callable[[], int]) -> None:
    rules = compiled_rules(engine, DIGEST)
    insert_article(engine, topics={"is_threat": 0.9})
    settle(engine, rules, 0)
    statements()
    run_tick(engine, rules, NOW + timedelta(seconds=10))
    assert statements() > 1
