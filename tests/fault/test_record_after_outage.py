"""Fault 1 of issue 16: a duplicate alert after a PostgreSQL outage.

The receiver answered 2xx just after the database died; recording the send was tried six
times over ~6 s and given up, the row stayed pending, and its lease sent it again: 217
POSTs for 209 alerts. Here a real PostgreSQL of the test's own is stopped with ``pg_ctl
-m immediate`` while a real receiver on 127.0.0.1 holds the POST, and started again 10 s
later; the record is retried until it is written, and no later run sends again, though
the lease (3 s) ended long before.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from consumers.alert.channels.webhook import WebhookNotifier
from consumers.alert.compile import compile_rules
from consumers.alert.deliver import Deliverer
from consumers.alert.outbox import run_tick
from consumers.alert.rules import parse_rules
from newswatch.db import make_engine
from newswatch.migrate import upgrade
from tests.alert.conftest import NOW, insert_seed
from tests.alert.test_deliver import RULES, _send_state
from tests.fault.chaos import report
from tests.pg_server import PostgresServer
from tests.support.webhook import Received, WebhookReceiver

pytestmark = pytest.mark.integration


class HeldReceiver(WebhookReceiver):
    """A webhook receiver that holds each POST until the test lets it answer 200."""

    def __init__(self) -> None:
        super().__init__()
        self.got_post = threading.Event()
        self.may_answer = threading.Event()
        self.on_request = self._hold

    def _hold(self, _received: Received) -> None:
        self.got_post.set()
        self.may_answer.wait(30)

    @property
    def posts(self) -> int:
        return len(self.requests)

    def close(self) -> None:
        self.may_answer.set()
        super().close()


@pytest.fixture
def receiver() -> Iterator[HeldReceiver]:
    server = HeldReceiver()
    yield server
    server.close()


@pytest.fixture
def pg_engine(disposable_postgres: PostgresServer) -> Iterator[Engine]:
    engine = make_engine(disposable_postgres.url, connect_args={"connect_timeout": 2})
    upgrade(engine)
    yield engine
    engine.dispose()


def test_a_send_acknowledged_during_an_outage_is_recorded_not_sent_again(
        disposable_postgres: PostgresServer, pg_engine: Engine, receiver: HeldReceiver) -> None:
    rules_file = parse_rules(RULES)
    notifier = WebhookNotifier("hook", receiver.url, secret=None, timeout_s=30)
    channels = {"hook": notifier}
    insert_seed(pg_engine)
    run_tick(pg_engine, compile_rules(rules_file.rules, "postgresql"), NOW)
    lease = 3.0
    deliverer = Deliverer(pg_engine, lambda: (channels, rules_file.delivery),
                          lease=timedelta(seconds=lease))
    outcome: list[object] = []

    def deliver() -> None:
        try:
            outcome.append(deliverer.run_once(NOW))
        except Exception as exc:  # what the daemon's loop would see
            outcome.append(exc)

    worker = threading.Thread(target=deliver)
    worker.start()
    try:
        assert receiver.got_post.wait(30)
        disposable_postgres.stop("immediate")
        receiver.may_answer.set()  # 2xx after the database died
        time.sleep(10)  # longer than the ~6 s the record used to be tried for
        disposable_postgres.start()
        worker.join(timeout=60)
        assert not worker.is_alive()
        # Later runs, long after the lease ended, find nothing to send again.
        for _ in range(3):
            later = NOW + timedelta(seconds=lease * 10)
            try:
                deliverer.run_once(later)
            except Exception as exc:  # the old code: the row came back pending
                outcome.append(exc)
    finally:
        receiver.may_answer.set()
        worker.join(timeout=60)
        deliverer.close()
        notifier.close()
    assert receiver.posts == 1, f"{receiver.posts} POSTs for one alert"
    assert _send_state(pg_engine)[0] == "sent"
    assert getattr(outcome[0], "sent", None) == 1, outcome
    report("PostgreSQL stopped 10 s during a webhook's 2xx", faults="pg_ctl -m immediate",
           volume="1 alert", lost=0, duplicated=0,
           repeated=f"{receiver.posts - 1} ({receiver.posts} POST)",
           recovery="recorded on reconnect")
