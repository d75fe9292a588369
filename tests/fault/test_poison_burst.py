"""Fault 7 of issue 16: a poison burst that arrived while the stage was down.

30 poison and 3 good messages waiting at start-up: the limit tripped before anything was
dead-lettered and before the commit, so every start read the same 33 messages, stopped
with "check the dead-letter topic" while that topic was empty, and crash-looped. The
limit must count what it really dead-lettered: the poison it counts is on the DLQ and
committed before it stops, so a restart goes on with the rest.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from newswatch.consumer_loop import DeadLetterLimitError, DlqLimit, Poison
from newswatch.daemon import StopFlag
from schemas.messages import DeadLetter
from tests.test_consumer_loop import Collector, _produce, _read_all, _run

pytestmark = pytest.mark.integration


class _UntilGood(Collector):
    """Stops the loop once the three good messages were handled (over all starts)."""

    def __init__(self, seen: list[int]) -> None:
        super().__init__(StopFlag(), expect=10_000)
        self.before = len(seen)

    def __call__(self, records: Sequence[Any]) -> Sequence[Poison]:
        poisons = super().__call__(records)
        if self.before + len(self.seen) >= 3:
            self.stop.stop()
        return poisons


def test_poison_burst_is_dead_lettered_and_a_restart_goes_on(
        kafka_bootstrap: str, topic: str, group: str) -> None:
    good = [json.dumps({"n": n}).encode() for n in range(3)]
    _produce(kafka_bootstrap, topic, [b"garbage"] * 30 + good)

    seen: list[int] = []
    stopped_by_limit = 0
    for _start in range(4):  # a supervisor restarting the stage
        handler = _UntilGood(seen)
        try:
            _run(kafka_bootstrap, topic, group, handler, topic + ".dlq", DlqLimit())
        except DeadLetterLimitError:
            stopped_by_limit += 1
            dead_letters = _read_all(kafka_bootstrap, topic + ".dlq", 0)
            assert dead_letters, "stopped, 'check the dead-letter topic', but it is empty"
            continue
        finally:
            seen.extend(handler.seen)
        break
    assert set(seen) == {0, 1, 2}  # handled past the cut too: replayed, writes idempotent
    assert stopped_by_limit <= 1, "the stage crash-loops on the same poison burst"
    letters = [DeadLetter.model_validate_json(v)
               for v in _read_all(kafka_bootstrap, topic + ".dlq", 30)]
    assert sorted(letter.offset for letter in letters) == list(range(30)), \
        "each poison message is dead-lettered exactly once"
