"""Delivery apart from evaluation: ``newswatch alert --role evaluate`` and ``--role
deliver`` as processes on one database (SQLite and PostgreSQL), sending to a real HTTP
receiver and a real SMTP server on 127.0.0.1.

- a frozen evaluator (SIGSTOP) delays no alert it had already decided;
- two deliverers on one outbox never send one alert twice, on either channel;
- a deliverer stopped mid-send finishes that send, and a restart sends the rest, once;
- a PostgreSQL notification wakes a listener at commit, and a rolled-back one does not.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import OperationalError

from consumers.alert.wakeup import OutboxWakeup, notify_outbox
from newswatch.db import make_engine
from schemas import tables
from tests.alert.conftest import count_rows, insert_article, write_rules
from tests.support.daemons import DaemonProcess, stop_all
from tests.support.smtp import SmtpServer
from tests.support.waits import wait_for
from tests.support.webhook import WebhookReceiver

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


_count = count_rows


def _rules(tmp_path: Path, receiver: WebhookReceiver, smtp: SmtpServer | None = None,
           backoff: str = "0.2s") -> Path:
    channels = f"  hook:\n    type: webhook\n    url: {receiver.url}\n    timeout: 5s\n"
    names = ["hook"]
    if smtp is not None:
        channels += (f"  mail:\n    type: email\n    host: 127.0.0.1\n    port: {smtp.port}\n"
                     "    security: none\n    from: newswatch@example.org\n"
                     "    to: [desk@example.org]\n")
        names.append("mail")
    # One alert per article: each article comes from a feed of its own (`_store`).
    return write_rules(tmp_path, f"""version: 1
channels:
{channels}delivery: {{max_attempts: 20, backoff: {backoff}, max_backoff: {backoff}, deadline: 1h}}
rules:
  - name: threat
    match: {{topics: [is_threat]}}
    group_by: [rule, feed]
    channels: [{", ".join(names)}]
""")


def _store(engine: Engine, count: int) -> None:
    for n in range(count):
        insert_article(engine, title=f"IS threat {n}", feed_id=f"feed-{n}",
                       topics={"is_threat": 0.9})


class Processes:
    """Alert daemons of one test, each with its role; all stopped at the end."""

    def __init__(self, engine: Engine, tmp_path: Path, rules: Path) -> None:
        self.rules = rules
        self.tmp_path = tmp_path
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWATCH_")}
        self.env.update({
            "NEWSWATCH_DATABASE_URL": engine.url.render_as_string(hide_password=False),
            "NEWSWATCH_LOG_FORMAT": "json", "NEWSWATCH_STATE_DIR": str(tmp_path / "state"),
            "NEWSWATCH_ALERT_POLL_INTERVAL_S": "0.5", "NEWSWATCH_ALERT_DELIVERY_POLL_S": "0.05",
        })
        self.started: list[DaemonProcess] = []

    def start(self, name: str, role: str) -> DaemonProcess:
        daemon = DaemonProcess(name, ("alert", "--rules", str(self.rules), "--role", role),
                               self.env, self.tmp_path / f"{name}.log", cwd=ROOT).start()
        self.started.append(daemon)
        daemon.wait_log("evaluating alert rules" if role == "evaluate" else
                        "delivering alerts", timeout_s=60)
        return daemon

    def close(self) -> None:
        for daemon in self.started:  # a frozen process would not see SIGTERM
            if daemon.running():
                daemon.send(signal.SIGCONT)
        codes = stop_all(self.started)
        for daemon in self.started:
            daemon.kill()
        assert all(code == 0 for code in codes.values()), codes


@pytest.fixture
def processes(engine: Engine, tmp_path: Path, webhook: WebhookReceiver,
              smtp_server: SmtpServer) -> Iterator[Processes]:
    running = Processes(engine, tmp_path, _rules(tmp_path, webhook, smtp_server))
    try:
        yield running
    finally:
        running.close()


def _writable_now(url: str) -> bool:
    """Whether a write lock can be had now (SQLite: nobody is inside a write)."""
    probe = make_engine(url, connect_args={"timeout": 0.2} if url.startswith("sqlite")
                        else {})
    try:
        with probe.begin() as conn:
            conn.execute(tables.alert_state.update().where(text("1 = 0")).values(gaps=[]))
        return True
    except OperationalError:
        return False
    finally:
        probe.dispose()


def freeze_between_evaluations(daemon: DaemonProcess, engine: Engine) -> None:
    """SIGSTOP ``daemon`` at a moment it holds no write lock: a SQLite evaluator frozen
    inside its transaction would hold every writer back, which is SQLite's rule, not the
    deliverer's (it is tried again until it lands between two evaluations)."""
    url = engine.url.render_as_string(hide_password=False)

    def frozen_idle() -> bool:
        daemon.send(signal.SIGSTOP)
        if _writable_now(url):
            return True
        daemon.send(signal.SIGCONT)
        return False

    wait_for(frozen_idle, 20, "the evaluator frozen between two evaluations",
             interval_s=0.05)


def test_a_frozen_evaluator_delays_no_alert_it_decided(
        engine: Engine, processes: Processes, webhook: WebhookReceiver,
        smtp_server: SmtpServer) -> None:
    webhook.default_status = 503  # decided, tried, due again every 0.2 s
    smtp_server.refusing = True
    evaluator = processes.start("evaluate", "evaluate")
    processes.start("deliver", "deliver")
    _store(engine, 4)
    wait_for(lambda: _count(engine, tables.alerts) == 4, 30, "four alerts decided")
    wait_for(lambda: webhook.refused >= 4 and smtp_server.refused >= 4, 30,
             "a refused first try of each send")

    freeze_between_evaluations(evaluator, engine)
    webhook.default_status = 200
    smtp_server.refusing = False
    wait_for(lambda: _count(engine, tables.alerts, status="sent") == 4, 30,
             "every alert sent while the evaluator is frozen", check=evaluator.check)
    assert evaluator.running()  # still frozen, not dead
    assert sorted(webhook.keys().values()) == [1, 1, 1, 1]
    assert sorted(smtp_server.keys().values()) == [1, 1, 1, 1]


def test_two_deliverers_never_send_one_alert_twice(
        engine: Engine, processes: Processes, webhook: WebhookReceiver,
        smtp_server: SmtpServer) -> None:
    webhook.delay_s = 0.03  # sends overlap, so both deliverers claim side by side
    processes.start("evaluate", "evaluate")
    first = processes.start("deliver-a", "deliver")
    second = processes.start("deliver-b", "deliver")
    articles = 40
    _store(engine, articles)
    wait_for(lambda: _count(engine, tables.alerts, status="sent") == articles, 60,
             "every alert sent", check=lambda: [d.check() for d in (first, second)])

    assert len(webhook.keys()) == articles
    assert set(webhook.keys().values()) == {1}
    assert len(smtp_server.keys()) == articles
    assert set(smtp_server.keys().values()) == {1}
    assert _count(engine, tables.deliveries) == 2 * articles  # one attempt per send
    sent_by = [d.log_text().count('"alert delivered"') for d in (first, second)]
    assert sum(sent_by) == 2 * articles
    assert min(sent_by) > 0, f"one deliverer sent everything: {sent_by}"


def test_a_deliverer_stopped_mid_send_loses_nothing_and_sends_nothing_twice(
        engine: Engine, processes: Processes, webhook: WebhookReceiver) -> None:
    webhook.delay_s = 1.0  # each POST takes a second: the stop lands mid-send
    processes.start("evaluate", "evaluate")
    deliverer = processes.start("deliver", "deliver")
    _store(engine, 3)
    wait_for(lambda: _count(engine, tables.alerts) == 3, 30, "three alerts decided")
    wait_for(lambda: not webhook.requests and _in_flight(engine), 30,
             "a webhook send in flight")
    assert deliverer.stop() == 0  # finishes the send in hand, then exits

    sent = _count(engine, tables.deliveries, channel="hook", outcome="sent")
    assert sent >= 1  # the send in flight was finished and recorded
    assert len(webhook.accepted) == sent
    assert _count(engine, tables.alert_sends, status="failed") == 0

    webhook.delay_s = 0.0
    processes.start("deliver-again", "deliver")
    wait_for(lambda: _count(engine, tables.alerts, status="sent") == 3, 30,
             "the rest sent after the restart")
    assert sorted(webhook.keys().values()) == [1, 1, 1]


def _in_flight(engine: Engine) -> bool:
    """A webhook row is claimed (its due time pushed ahead by the 2-minute lease) and not
    done."""
    leased_past = datetime.now(UTC) + timedelta(seconds=60)
    with engine.connect() as conn:
        leased = conn.execute(select(func.count()).select_from(tables.alert_sends).where(
            tables.alert_sends.c.channel == "hook", tables.alert_sends.c.status == "pending",
            tables.alert_sends.c.next_attempt_at > leased_past)).scalar_one()
    return bool(leased)


def test_a_postgresql_notification_wakes_a_listener_only_at_commit(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; a SQLite deliverer polls "
                    "(test_two_deliverers_never_send_one_alert_twice runs it)")
    wakeup = OutboxWakeup()
    wakeup.listen(engine)
    try:
        wait_for(lambda: wakeup.listening, 10, "the listener connected")
        wakeup.wait(0)  # the wake-up given when it started listening
        with engine.connect() as conn:
            notify_outbox(conn)
            conn.rollback()
        assert not wakeup.wait(1.0)
        with engine.begin() as conn:
            notify_outbox(conn)
        assert wakeup.wait(5.0)
    finally:
        wakeup.close()
