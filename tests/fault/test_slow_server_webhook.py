"""Fault 3 of issue 16, alert side: a webhook receiver that drips its response headers.

Its bytes arrive well within the per-read timeout, so a POST never ended and every
delivery worker jammed on it. The channel's timeout now bounds the whole request: the
send ends as a retryable timeout, recorded and retried later, and the other rows flow.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from consumers.alert.channels.webhook import WebhookNotifier
from consumers.alert.compile import compile_rules
from consumers.alert.deliver import Deliverer
from consumers.alert.outbox import run_tick
from consumers.alert.rules import parse_rules
from tests.alert.conftest import NOW, insert_seed
from tests.alert.test_deliver import RULES, _send_state
from tests.fault.slow_http import DripServer

pytestmark = pytest.mark.integration


@pytest.fixture
def drip() -> Iterator[DripServer]:
    server = DripServer()
    yield server
    server.close()


def test_a_dripping_receiver_is_a_retryable_timeout_not_a_jammed_worker(
        engine: Engine, drip: DripServer) -> None:
    rules_file = parse_rules(RULES)
    notifier = WebhookNotifier("hook", drip.url("/hook"), secret=None, timeout_s=2)
    channels = {"hook": notifier}
    insert_seed(engine)
    run_tick(engine, compile_rules(rules_file.rules, engine.dialect.name), NOW)
    deliverer = Deliverer(engine, lambda: (channels, rules_file.delivery))
    try:
        stats = deliverer.run_once(NOW)
    finally:
        deliverer.close()
        notifier.close()
    assert drip.requests == 1
    assert (stats.sent, stats.retried) == (0, 1)
    status, attempts, _ = _send_state(engine)
    assert (status, attempts) == ("pending", 1)
