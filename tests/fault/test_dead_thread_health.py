"""Fault 6 (health third) of issue 16: a worker thread dies behind a green /healthz.

The alert daemon's delivery thread died on an unexpected database error (here: its
table dropped under it, a real error that is not an outage) and the evaluator went on
deciding alerts nobody sent, while /healthz and /readyz answered 200. Now a dead loop
turns /healthz red, stops the other loop, and `run` raises, so the process exits for its
supervisor to restart.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from consumers.alert.daemon import AlertDaemon
from consumers.alert.rules import default_rules_path
from consumers.alert.ruleset import RulesHolder
from newswatch.daemon import StopFlag
from newswatch.health import start_health_server
from tests.support.ports import free_port
from tests.support.waits import wait_for

pytestmark = pytest.mark.integration


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_dead_delivery_thread_turns_healthz_red_and_stops_the_daemon(
        engine: Engine, tmp_path: Path) -> None:
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite reports a dropped table as OperationalError, which Newswatch "
                    "rightly waits out as an outage; the fault is injected on PostgreSQL")
    rules = tmp_path / "rules.yaml"
    rules.write_text(default_rules_path().read_text(encoding="utf-8"), encoding="utf-8")
    holder = RulesHolder(rules, dialect=engine.dialect.name, state_dir=tmp_path)
    stop = StopFlag()
    daemon = AlertDaemon(engine, holder, stop, interval_s=0.05)
    health = start_health_server(free_port(), lambda: daemon.healthy, alive=daemon.alive)
    assert health is not None
    url = f"http://127.0.0.1:{health.port}/healthz"
    raised: list[BaseException] = []

    def run() -> None:
        try:
            daemon.run()
        except BaseException as exc:  # what the process would exit with
            raised.append(exc)

    runner = threading.Thread(target=run, name="test-alert-daemon")
    runner.start()
    try:
        wait_for(lambda: daemon.healthy, timeout_s=30, what="daemon evaluating")
        assert _status(url) == 200
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE deliveries"))
            conn.execute(text("DROP TABLE alert_sends"))
        wait_for(lambda: _status(url) == 503, timeout_s=30, what="/healthz turning red")
        runner.join(timeout=30)
        assert not runner.is_alive(), "the evaluator went on without its delivery thread"
        assert raised, "run() returned as if all was well"
    finally:
        stop.stop()
        runner.join(timeout=30)
        health.stop()
        holder.close()
