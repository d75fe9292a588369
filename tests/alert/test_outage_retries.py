"""The alert daemon's three loops wait out a database that is away with the one retry
policy (`newswatch.retry.Attempts`): each retry is counted in ``newswatch_retries_total``,
the outage is logged once and the recovery once, and nothing else is lost.

- the evaluator and the deliverer, on a SQLite database that cannot be opened (its path
  is a folder) until a migrated file takes its place;
- the PostgreSQL listener, whose LISTEN connection the server terminates.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Engine, text

from consumers.alert.daemon import AlertDaemon
from consumers.alert.rules import default_rules_path
from consumers.alert.ruleset import RulesHolder
from consumers.alert.wakeup import OutboxWakeup, notify_outbox
from newswatch.daemon import StopFlag
from newswatch.db import make_engine
from newswatch.migrate import upgrade
from tests.support.waits import wait_for

pytestmark = pytest.mark.integration


def _retries(what: str) -> float:
    return REGISTRY.get_sample_value("newswatch_retries_total", {"what": what}) or 0.0


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[RulesHolder]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(default_rules_path().read_text(encoding="utf-8"), encoding="utf-8")
    rules_holder = RulesHolder(rules, dialect="sqlite", state_dir=tmp_path)
    yield rules_holder
    rules_holder.close()


def test_evaluator_and_deliverer_count_their_retries_and_recover(
        tmp_path: Path, holder: RulesHolder, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "db" / "alerts.db"
    path.mkdir(parents=True)  # SQLite cannot open a folder: "unable to open database file"
    engine = make_engine(f"sqlite:///{path}")
    stop = StopFlag()
    daemon = AlertDaemon(engine, holder, stop, interval_s=0.05)
    before = {what: _retries(what) for what in ("evaluating alerts", "delivering alerts")}
    raised: list[BaseException] = []

    def run() -> None:
        try:
            daemon.run()
        except BaseException as exc:
            raised.append(exc)

    caplog.set_level(logging.INFO)
    runner = threading.Thread(target=run, name="test-alert-daemon")
    runner.start()
    try:
        wait_for(lambda: all(_retries(what) >= count + 2 for what, count in before.items()),
                 30, "two counted retries of each loop", check=lambda: _no(raised))
        assert not daemon.healthy

        ready = tmp_path / "ready.db"
        migrated = make_engine(f"sqlite:///{ready}")
        upgrade(migrated)
        migrated.dispose()
        path.rmdir()
        os.replace(ready, path)  # the database is back
        wait_for(lambda: daemon.healthy and _logged(caplog, "evaluating alerts works again"),
                 30, "the evaluator working again", check=lambda: _no(raised))
        wait_for(lambda: _logged(caplog, "delivering alerts works again"), 30,
                 "the deliverer working again", check=lambda: _no(raised))
    finally:
        stop.stop()
        daemon.wakeup.set("stop")
        runner.join(timeout=30)
        engine.dispose()
    assert not runner.is_alive()
    assert not raised
    for first in ("evaluation failed", "delivery paused"):  # once per outage, not per try
        assert sum(r.getMessage().startswith(first) for r in caplog.records) == 1, first


def test_the_listener_counts_a_lost_connection_and_listens_again(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; a SQLite deliverer polls")
    name = f"nw-listen-{uuid.uuid4().hex[:12]}"
    listening = make_engine(engine.url.render_as_string(hide_password=False),
                            connect_args={"application_name": name})
    wakeup = OutboxWakeup()
    before = _retries("listening for outbox notifications")
    wakeup.listen(listening)
    try:
        wait_for(lambda: wakeup.listening, 10, "the listener connected")
        with engine.begin() as conn:  # the server drops the LISTEN connection
            killed = conn.execute(text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = :name"), {"name": name}).scalar_one()
        assert killed == 1
        wait_for(lambda: _retries("listening for outbox notifications") == before + 1, 10,
                 "the lost connection counted as one retry")
        wait_for(lambda: wakeup.listening, 10, "the listener connected again")
        wakeup.wait(0)  # the wake-up given when it listened again
        with engine.begin() as conn:
            notify_outbox(conn)
        assert wakeup.wait(5.0)  # notifications arrive again
    finally:
        wakeup.close()
        listening.dispose()


def _no(raised: list[BaseException]) -> None:
    if raised:
        raise AssertionError(f"the daemon died: {raised[0]!r}")


def _logged(caplog: pytest.LogCaptureFixture, start: str) -> bool:
    return any(r.getMessage().startswith(start) for r in caplog.records)
