"""Waiting for an event with a bound, never for a fixed time.

A test that sleeps a fixed time is slow when the machine is idle and flaky when it is
busy; one that polls a condition returns as soon as the event happened and fails, naming
what it waited for, only after a generous bound. Benchmarks use the same function.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from kafka import KafkaConsumer
from kafka.structs import TopicPartition


class WaitTimeoutError(TimeoutError, AssertionError):
    """The event did not happen in time: a test failure (AssertionError) and, for the
    benchmarks, a `TimeoutError`."""


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str, *,
             check: Callable[[], None] | None = None,
             detail: Callable[[], str] | None = None, interval_s: float = 0.25) -> float:
    """Poll ``condition`` until it holds and return the seconds that took.

    ``check`` runs every round and may raise (a daemon died: fail now, not at the bound).
    After ``timeout_s`` raises `WaitTimeoutError` naming ``what``, with ``detail()`` appended
    (the state seen, the daemons' logs).
    """
    began = time.monotonic()
    deadline = began + timeout_s
    while True:
        if check is not None:
            check()
        if condition():
            return time.monotonic() - began
        if time.monotonic() > deadline:
            extra = f". {detail()}" if detail is not None else ""
            raise WaitTimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}{extra}")
        time.sleep(interval_s)


def lag(bootstrap: str, group: str, topic: str) -> int:
    """Messages of ``topic`` that ``group`` has not committed yet."""
    # A consumer with the group's id reads its committed offsets without joining it.
    reader = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                           enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in reader.partitions_for_topic(topic) or ()]
        ends = reader.end_offsets(tps)
        return sum(end - (reader.committed(tp) or 0) for tp, end in ends.items())
    finally:
        reader.close()
