"""Fault 3 of issue 16, per-host isolation in the alert deliverer.

Eight alerts, each to three channels: a webhook receiver on 127.0.0.1 that drips its
response headers for as long as it is let (the channel's timeout is a minute), a fast
webhook receiver on another port, and a real SMTP server (aiosmtpd). Before, the
deliverer's four workers all went to the dripping host and every other send waited for
them. Now one slow host holds at most one worker: the fast webhook and the emails are all
delivered while the first dripping send is still hanging, and no second send went to it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from consumers.alert.deliver import Deliverer
from consumers.alert.outbox import run_tick
from consumers.alert.ruleset import build_ruleset
from schemas import tables
from tests.alert.conftest import insert_article, write_rules
from tests.fault.chaos import report
from tests.fault.slow_http import DripServer
from tests.support.smtp import SmtpServer
from tests.support.waits import wait_for
from tests.support.webhook import WebhookReceiver

pytestmark = pytest.mark.integration
ALERTS = 8


@pytest.fixture
def drip() -> Iterator[DripServer]:
    server = DripServer(drip_for_s=300)
    yield server
    server.close()


def test_a_slow_webhook_host_holds_one_worker_and_the_others_flow(
        engine: Engine, tmp_path: Path, drip: DripServer, webhook: WebhookReceiver,
        smtp_server: SmtpServer) -> None:
    inbox, port = smtp_server, smtp_server.port
    rules = write_rules(tmp_path, f"""version: 1
channels:
  slow: {{type: webhook, url: "{drip.url('/hook')}", timeout: 60s}}
  fast: {{type: webhook, url: "{webhook.url}", timeout: 10s}}
  mail: {{type: email, host: 127.0.0.1, port: {port}, security: none,
          from: newswatch@example.org, to: [desk@example.org]}}
rules:
  - name: threat
    match: {{topics: [is_threat]}}
    group_by: [feed]
    channels: [slow, fast, mail]
""")
    ruleset = build_ruleset(rules, dialect=engine.dialect.name, state_dir=tmp_path,
                            environ=dict(os.environ))
    for n in range(ALERTS):
        insert_article(engine, title=f"Threat {n}", feed_id=f"feed{n}",  # an alert each
                       topics={"is_threat": 0.9})
    assert len(run_tick(engine, ruleset.rules, datetime.now(UTC)).alerts) == ALERTS
    deliverer = Deliverer(engine, lambda: (ruleset.channels, ruleset.file.delivery),
                          workers=4)
    try:
        def others_delivered() -> bool:
            deliverer.run_once(wait=False)  # the daemon's rounds: they never wait
            return len(webhook.accepted) >= ALERTS and len(inbox.messages) >= ALERTS

        wait_for(others_delivered, timeout_s=45,
                 what="the fast webhook and the emails delivered beside the slow host")
        slow_in_flight = deliverer.in_flight()
        connections_to_slow_host = drip.requests
    finally:
        drip.close()  # ends the hanging request, so close() need not wait a minute
        deliverer.close()
        for notifier in ruleset.channels.values():
            notifier.close()
    with engine.connect() as conn:
        sent = conn.execute(select(tables.alert_sends.c.channel, func.count())
                            .where(tables.alert_sends.c.status == "sent")
                            .group_by(tables.alert_sends.c.channel)).all()
    print(f"slow host isolation: {dict(sent)} sent while the slow host held "
          f"{slow_in_flight} worker(s) with {connections_to_slow_host} connection(s)")
    assert connections_to_slow_host == 1, "more than one worker went to the slow host"
    assert slow_in_flight == 1
    assert dict(sent) == {"fast": ALERTS, "mail": ALERTS}
    assert len(webhook.accepted) == ALERTS, "a fast webhook delivered twice"
    report(f"Dripping webhook host beside a fast one and SMTP ({engine.dialect.name})",
           faults="one host dripping its headers for the channel's 60 s timeout",
           volume=f"{ALERTS} alerts x 3 channels", lost=0,
           duplicated=len(webhook.accepted) - ALERTS,
           repeated=f"{connections_to_slow_host} connection to the slow host",
           recovery=f"{2 * ALERTS} other sends done while it held {slow_in_flight} worker")
