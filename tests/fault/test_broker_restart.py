"""Fault 8 (second half) of issue 16: recovery after a broker restart, and its log.

After a broker restart, enrich and store stored nothing for ~33 s (the loop's backoff had
grown to 30 s, and kafka-python's reconnect backoff too) and logged ~170 ERROR lines each.
Here a broker of the test's own is stopped for 6 s and started again under the shared
run loop, with the daemons' log handler: the stage resumes by itself and writes a few
lines, not one per reconnect. The recovery time is printed (bench/ measures it too).
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Iterator

import pytest
from kafka import KafkaProducer

from newswatch.daemon import StopFlag
from newswatch.kafka_local import LocalKafka
from newswatch.logs import JsonFormatter, RepeatFilter
from tests.fault.chaos import report
from tests.support.waits import wait_for
from tests.test_consumer_loop import Collector, _run

pytestmark = [pytest.mark.integration, pytest.mark.fault]


@pytest.fixture
def daemon_log() -> Iterator[io.StringIO]:
    """The daemons' handler (JSON lines, the repeat filter) on the root logger."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RepeatFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = logging.getLogger("kafka").level
    logging.getLogger("kafka").setLevel(logging.WARNING)
    yield out
    root.removeHandler(handler)
    logging.getLogger("kafka").setLevel(old_level)


def _send(bootstrap: str, topic: str, first: int, count: int) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for n in range(first, first + count):
        producer.send(topic, json.dumps({"n": n}).encode()).get(timeout=60)
    producer.close()


def test_a_broker_restart_is_over_in_seconds_with_a_few_log_lines(
        own_broker: LocalKafka, topic: str, group: str, daemon_log: io.StringIO) -> None:
    bootstrap = own_broker.bootstrap
    _send(bootstrap, topic, 0, 10)
    handler = Collector(StopFlag(), expect=20)
    runner = threading.Thread(target=_run, args=(bootstrap, topic, group, handler,
                                                 topic + ".dlq"))
    runner.start()
    try:
        wait_for(lambda: len(handler.seen) >= 10, timeout_s=60, what="first records")
        own_broker.stop()
        time.sleep(6)
        own_broker.start(timeout_s=120)
        answering = time.monotonic()
        _send(bootstrap, topic, 10, 10)
        wait_for(lambda: len(handler.seen) >= 20, timeout_s=60, what="records after restart")
        recovered = time.monotonic() - answering
        runner.join(timeout=60)
    finally:
        handler.stop.stop()
        runner.join(timeout=60)
    lines = [json.loads(line) for line in daemon_log.getvalue().splitlines()]
    errors = [line for line in lines if line.get("level") in ("ERROR", "CRITICAL")]
    print(f"broker restart: recovered {recovered:.1f}s after the broker answered; "
          f"{len(lines)} log lines, {len(errors)} at ERROR")
    assert set(handler.seen) == set(range(20))
    assert len(errors) <= 10, [line.get("message") for line in errors]
    report("Single broker stopped 6 s", faults="1 restart", volume="20 messages",
           lost=20 - len(set(handler.seen)), duplicated=len(handler.seen) - 20,
           recovery=f"{recovered:.1f} s from the broker answering; {len(errors)} ERROR lines")
