"""High availability of issue 16: two alert daemons on one database, one killed.

Two `newswatch alert` processes share the database (SQLite and PostgreSQL). Hits arrive,
one daemon is killed with SIGKILL mid-stream, more hits arrive: the survivor carries on,
every article is alerted, and no alert is decided twice (one ``alerts`` row and one
ledger entry per article).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from schemas import tables
from tests.alert.conftest import alerted_pairs, insert_article, ledger_pairs
from tests.fault.chaos import report
from tests.support.daemons import DaemonProcess, stop_all
from tests.support.waits import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.fault]
ROOT = Path(__file__).resolve().parents[2]


def _count(engine: Engine, table: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar() or 0)


def _daemon(env: dict[str, str], rules: Path, log: Path) -> DaemonProcess:
    return DaemonProcess(log.stem, ("alert", "--rules", str(rules)), env, log,
                         cwd=ROOT).start()


def test_one_of_two_alert_daemons_killed_the_other_carries_on_nothing_twice(
        engine: Engine, tmp_path: Path) -> None:
    out = tmp_path / "alerts.jsonl"
    rules = tmp_path / "rules.yaml"
    rules.write_text(f"""channels:
  out: {{type: jsonl, path: "{out}"}}
rules:
  - name: threat
    match: {{topics: [is_threat]}}
    channels: [out]
""", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWATCH_")}
    env.update({"NEWSWATCH_DATABASE_URL": engine.url.render_as_string(hide_password=False),
                "NEWSWATCH_LOG_FORMAT": "json", "NEWSWATCH_ALERT_POLL_INTERVAL_S": "0.2",
                "NEWSWATCH_STATE_DIR": str(tmp_path / "state"),
                # A send cut short by the kill is taken over when its lease ends.
                "NEWSWATCH_ALERT_DELIVERY_LEASE_S": "5"})
    first = _daemon(env, rules, tmp_path / "a.log")
    second = _daemon(env, rules, tmp_path / "b.log")
    try:
        articles = [insert_article(engine, topics={"is_threat": 0.8}) for _ in range(15)]
        wait_for(lambda: len(ledger_pairs(engine)) >= 15, timeout_s=60,
                 what="the first alerts")
        first.kill()
        articles += [insert_article(engine, topics={"is_threat": 0.8}) for _ in range(15)]
        wait_for(lambda: len(ledger_pairs(engine)) >= 30, timeout_s=60,
                 what="the survivor's alerts")
        sent = tables.alert_sends
        wait_for(lambda: _pending(engine, sent) == 0, timeout_s=90, what="every send done")
        second.check()  # the survivor is still running
    finally:
        stop_all([first, second])
    alerted = [aid for _, aid in ledger_pairs(engine)]
    assert sorted(alerted) == sorted(articles)
    assert sorted(aid for _, aid in alerted_pairs(engine)) == sorted(articles)
    assert len(alerted) == len(set(alerted)), "an article was alerted twice"
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    ids = [line["alert_id"] for line in lines]
    decided = _count(engine, tables.alerts)
    print(f"two alert daemons, one killed: {decided} alerts decided, {len(ids)} deliveries "
          f"({len(ids) - len(set(ids))} repeated after the kill)")
    assert set(ids) == _alert_ids(engine), "a decided alert was not delivered"
    report(f"Two alert daemons on one database ({engine.dialect.name})",
           faults="kill -9 of one mid-stream", volume=f"{len(articles)} articles, "
           f"{decided} alerts", lost=len(set(articles) - set(alerted)),
           duplicated=f"{len(alerted) - len(set(alerted))} decided twice",
           repeated=len(ids) - len(set(ids)), recovery="survivor took over at the 5 s lease")


def _alert_ids(engine: Engine) -> set[int]:
    with engine.connect() as conn:
        return set(conn.execute(select(tables.alerts.c.id)).scalars())


def _pending(engine: Engine, sent: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(sent)
                                .where(tables.alert_sends.c.status == "pending")).scalar() or 0)
