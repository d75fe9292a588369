"""A Kafka broker of its own (the local KRaft launcher) on free ports of 127.0.0.1."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from newswatch.kafka_local import LocalKafka
from tests.support.ports import free_port


@contextlib.contextmanager
def running_broker(state_dir: Path, heap: str = "384m",
                   timeout_s: float = 120) -> Iterator[LocalKafka]:
    """A broker with its state in ``state_dir``, started (``.bootstrap`` answers) and
    stopped on the way out; the caller may stop and start it in between."""
    broker = LocalKafka(state_dir=state_dir, port=free_port(), controller_port=free_port(),
                        heap=heap)
    try:
        broker.start(timeout_s=timeout_s)
        yield broker
    finally:
        broker.stop()
