"""Alerts end to end against real servers on 127.0.0.1: SMTP (aiosmtpd), HTTP (http.server),
Apprise (its json:// plugin to the HTTP server), and the daemon as a subprocess.

Every test runs on SQLite and PostgreSQL (``db_url``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import signal
import ssl
import subprocess
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd import smtp as aiosmtp
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from sqlalchemy import Engine, func, select

from consumers.alert.deliver import Deliverer
from consumers.alert.outbox import run_tick
from consumers.alert.ruleset import RulesHolder, build_ruleset
from newswatch.cli import main
from schemas import tables
from tests.alert.conftest import (
    count_rows,
    insert_article,
    insert_seed,
    later,
    rules_for,
    write_rules,
)
from tests.support.daemons import DaemonProcess
from tests.support.smtp import SmtpServer
from tests.support.waits import wait_for
from tests.support.webhook import WebhookReceiver

pytestmark = pytest.mark.integration


def _now() -> datetime:
    """Decisions are stamped with the real time, as the daemon does, since delivery
    deadlines count from it."""
    return datetime.now(UTC)

SCRIPT_TITLE = "<script>alert('x')</script> Taliban & Russia hold talks"


def _ruleset(path: Path, engine: Engine, tmp_path: Path, **env: str) -> Any:
    return build_ruleset(path, dialect=engine.dialect.name, state_dir=tmp_path,
                         environ={**os.environ, **env})


def _deliver_all(engine: Engine, ruleset: Any, rounds: int = 50) -> Deliverer:
    deliverer = Deliverer(engine, lambda: (ruleset.channels, ruleset.file.delivery))
    for _ in range(rounds):
        stats = deliverer.run_once()
        if not stats.attempts and deliverer.next_due() is None:
            break
        time.sleep(0.02)
    return deliverer


def _failed_attempts(engine: Engine) -> int:
    """Sends whose first attempt failed and was recorded (still pending, retry due)."""
    query = select(func.count()).select_from(tables.alert_sends).where(
        tables.alert_sends.c.attempts >= 1, tables.alert_sends.c.last_error.is_not(None))
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


_count = count_rows


# --- email -----------------------------------------------------------------------------


def test_seed_article_by_email_one_per_rule_multipart_with_evidence_escaped(
        engine: Engine, tmp_path: Path, smtp_server: SmtpServer) -> None:
    inbox, port = smtp_server, smtp_server.port
    channels = (f"  mail:\n    type: email\n    host: 127.0.0.1\n    port: {port}\n"
                "    security: none\n    from: newswatch@example.org\n"
                "    to: [analyst@example.org, desk@example.org]\n")
    ruleset = _ruleset(write_rules(tmp_path, rules_for(channels, ["mail"])), engine, tmp_path)
    insert_seed(engine, title=SCRIPT_TITLE)
    assert len(run_tick(engine, ruleset.rules, _now()).alerts) == 3
    _deliver_all(engine, ruleset).close()

    assert len(inbox.messages) == 3
    assert all(env.rcpt_tos == ["analyst@example.org", "desk@example.org"]
               for env in inbox.envelopes)
    by_subject = {m["Subject"]: m for m in inbox.messages}
    assert sorted(by_subject) == sorted(
        f"[newswatch] {rule}: {SCRIPT_TITLE}"
        for rule in ("islamic-state-threat", "drug-trafficking", "regime-recognition"))
    for message in inbox.messages:
        assert message.get_content_type() == "multipart/alternative"
        text_part = message.get_body(preferencelist=("plain",))
        html_part = message.get_body(preferencelist=("html",))
        assert text_part is not None
        assert html_part is not None
        text, html = text_part.get_content(), html_part.get_content()
        assert SCRIPT_TITLE in text
        assert "<script>" not in html
        assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" \
            in html
        assert "Taliban &amp; Russia" in html
        assert "https://www.example-news.org/russia-taliban-talks" in html
        assert "Seed source" in html
        assert "2021-10-21 12:00 UTC" in html
        assert "is_threat" in html
        assert "drug_trafficking" in html
        assert "recognition" in html
    threat = next(m for s, m in by_subject.items() if "islamic-state-threat" in s)
    threat_html = threat.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
    assert "press for action against <mark>Islamic State (IS) fighters</mark> it claims" \
        in threat_html
    assert _count(engine, tables.deliveries, outcome="sent", status="smtp 250") == 3
    assert _count(engine, tables.alerts, status="sent") == 3


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


def test_email_over_starttls_with_login_from_the_environment(
        engine: Engine, tmp_path: Path, tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    logins: list[tuple[bytes, bytes]] = []

    def authenticate(server: aiosmtp.SMTP, session: Session, envelope: Envelope,
                     mechanism: str, data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        logins.append((data.login, data.password))
        return AuthResult(success=data.password == b"pa55word")

    inbox = SmtpServer(tls_context=context, require_starttls=True,
                       authenticator=authenticate, auth_require_tls=True)
    port = inbox.port
    try:
        channels = (f"  mail:\n    type: email\n    host: 127.0.0.1\n    port: {port}\n"
                    "    security: starttls\n    username_env: T_SMTP_USER\n"
                    f"    password_env: T_SMTP_PASSWORD\n    ca_file: {cert}\n"
                    "    from: newswatch@example.org\n    to: [analyst@example.org]\n")
        path = write_rules(tmp_path, rules_for(channels, ["mail"]))
        ruleset = _ruleset(path, engine, tmp_path, T_SMTP_USER="alerts",
                           T_SMTP_PASSWORD="pa55word")
        insert_seed(engine)
        run_tick(engine, ruleset.rules, _now())
        _deliver_all(engine, ruleset).close()
        assert len(inbox.messages) == 3
        assert set(logins) == {(b"alerts", b"pa55word")}

    finally:
        inbox.close()


@pytest.mark.parametrize(("replies", "outcomes", "delivered"), [
    (("451 4.3.0 try again later",), ["retry", "sent"], 1),
    (("550 5.1.1 no such user",), ["failed"], 0),
])
def test_smtp_4xx_is_retried_and_5xx_is_final(
        engine: Engine, tmp_path: Path, replies: tuple[str, ...], outcomes: list[str],
        delivered: int) -> None:
    inbox = SmtpServer()
    inbox.rcpt_replies.extend(replies)
    port = inbox.port
    try:
        channels = (f"  mail:\n    type: email\n    host: 127.0.0.1\n    port: {port}\n"
                    "    security: none\n    from: newswatch@example.org\n"
                    "    to: [analyst@example.org]\n")
        text = rules_for(channels, ["mail"]).replace("topics: [is_threat]", "topics: [none]")
        text = text.replace("topics: [drug_trafficking]", "topics: [none]")
        ruleset = _ruleset(write_rules(tmp_path, text), engine, tmp_path)
        insert_seed(engine)
        assert len(run_tick(engine, ruleset.rules, _now()).alerts) == 1
        _deliver_all(engine, ruleset).close()
    finally:
        inbox.close()
    assert len(inbox.messages) == delivered
    with engine.connect() as conn:
        rows = conn.execute(select(tables.deliveries.c.outcome, tables.deliveries.c.status)
                            .order_by(tables.deliveries.c.id)).all()
    assert [r.outcome for r in rows] == outcomes
    assert rows[0].status == "smtp " + replies[0][:3]


# --- webhook ---------------------------------------------------------------------------


def _webhook_rules(tmp_path: Path, receiver: WebhookReceiver, throttle: str = "0s",
                   backoff: str = "0.01s", max_backoff: str = "0.05s") -> Path:
    channels = (f"  hook:\n    type: webhook\n    url: {receiver.url}\n"
                "    secret_env: T_WEBHOOK_SECRET\n    timeout: 5s\n")
    return write_rules(tmp_path, rules_for(
        channels, ["hook"], throttle=throttle,
        delivery=f"max_attempts: 5\n  backoff: {backoff}\n  max_backoff: {max_backoff}\n"
                 "  deadline: 1h"))


def test_a_webhook_answering_500_twice_then_200_receives_exactly_one_alert(
        engine: Engine, tmp_path: Path, receiver: WebhookReceiver) -> None:
    ruleset = _ruleset(_webhook_rules(tmp_path, receiver), engine, tmp_path,
                       T_WEBHOOK_SECRET="k")
    receiver.statuses = deque([500, 500])
    insert_article(engine, title="Islamic State claims attack", topics={"is_threat": 0.9})
    assert len(run_tick(engine, ruleset.rules, _now()).alerts) == 1
    _deliver_all(engine, ruleset).close()
    assert [r.status for r in receiver.requests] == [500, 500, 200]
    assert len(receiver.accepted) == 1
    bodies = {r.body for r in receiver.requests}
    assert len(bodies) == 1  # the same alert each time
    with engine.connect() as conn:
        log = conn.execute(select(tables.deliveries.c.attempt, tables.deliveries.c.outcome,
                                  tables.deliveries.c.status)
                           .order_by(tables.deliveries.c.id)).all()
    assert [tuple(r) for r in log] == [(1, "retry", "http 500"), (2, "retry", "http 500"),
                                       (3, "sent", "http 200")]


def test_an_alert_refused_for_good_is_sent_again_with_the_same_dedup_key(
        engine: Engine, db_url: str, tmp_path: Path, receiver: WebhookReceiver,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 18: `newswatch alerts resend ID|--failed` on a real receiver and database."""
    ruleset = _ruleset(_webhook_rules(tmp_path, receiver), engine, tmp_path,
                       T_WEBHOOK_SECRET="k")
    receiver.statuses = deque([404, 404])  # a receiver misconfigured for a while
    insert_article(engine, title="Islamic State claims attack", topics={"is_threat": 0.9})
    insert_article(engine, title="Cartel boss arrested", topics={"drug_trafficking": 0.9})
    assert len(run_tick(engine, ruleset.rules, _now()).alerts) == 2
    _deliver_all(engine, ruleset).close()
    assert _count(engine, tables.alerts, status="failed") == 2

    monkeypatch.setenv("NEWSWATCH_DATABASE_URL", db_url)
    assert main(["alerts", "resend"]) == 2  # neither an id nor --failed
    assert "give an alert ID or --failed" in capsys.readouterr().err
    assert main(["alerts", "resend", "1"]) == 0
    assert "alert 1: 1 failed send(s) queued again" in capsys.readouterr().out
    assert main(["alerts", "resend", "1"]) == 1  # nothing failed any more
    assert "alert 1: nothing failed; not queued" in capsys.readouterr().out
    assert main(["alerts", "resend", "--failed"]) == 0
    assert "alert 2: 1 failed send(s) queued again" in capsys.readouterr().out
    assert main(["alerts", "resend", "--failed"]) == 0
    assert "no failed alerts" in capsys.readouterr().out

    _deliver_all(engine, ruleset).close()
    assert [r.status for r in receiver.requests] == [404, 404, 200, 200]
    for alert_id in (1, 2):  # the same alert, with the same dedup key, both times
        sent = [r for r in receiver.requests if r.headers["X-Newswatch-Alert-Id"] == str(alert_id)]
        assert len(sent) == 2
        assert len({r.headers["X-Newswatch-Dedup-Key"] for r in sent}) == 1
        assert len({r.body for r in sent}) == 1
    assert _count(engine, tables.alerts, status="sent") == 2
    assert _count(engine, tables.deliveries, outcome="requeued") == 2
    assert main(["alerts", "--failed", "--json"]) == 0
    assert capsys.readouterr().out == ""


def receiver_verifies(secret: bytes, headers: dict[str, str], body: bytes,
                      tolerance_s: int = 300) -> bool:
    """The receiver-side check documented in docs/alerts.md, written out independently."""
    fields = dict(p.split("=", 1) for p in headers["X-Newswatch-Signature"].split(","))
    timestamp = int(fields["t"])
    if abs(time.time() - timestamp) > tolerance_s:
        return False
    expected = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields["v1"])


def test_the_webhook_signature_verifies_and_the_payload_is_the_documented_one(
        engine: Engine, tmp_path: Path, receiver: WebhookReceiver) -> None:
    ruleset = _ruleset(_webhook_rules(tmp_path, receiver), engine, tmp_path,
                       T_WEBHOOK_SECRET="a-long-shared-secret")
    insert_seed(engine)
    run_tick(engine, ruleset.rules, _now())
    _deliver_all(engine, ruleset).close()
    assert len(receiver.accepted) == 3
    for request in receiver.accepted:
        assert receiver_verifies(b"a-long-shared-secret", request.headers, request.body)
        assert not receiver_verifies(b"wrong", request.headers, request.body)
        assert not receiver_verifies(b"a-long-shared-secret", request.headers,
                                     request.body.replace(b"Seed source", b"Seed s0urce"))
        assert request.headers["X-Newswatch-Timestamp"] == \
            request.headers["X-Newswatch-Signature"].split(",")[0][2:]
        payload = json.loads(request.body)
        assert set(payload) == {"version", "alert_id", "dedup_key", "kind", "rule", "group",
                                "reason", "created_at", "articles", "articles_total",
                                "story"}
        assert payload["version"] == 1
        assert payload["kind"] == "alert"
        (article,) = payload["articles"]
        assert set(article) == {"id", "title", "url", "source", "feed_id", "published",
                                "language", "group", "topics"}
        assert article["topics"][0]["evidence"][0]["sentence"]


def test_decided_but_not_sent_before_a_crash_is_sent_once_after_restart(
        engine: Engine, db_url: str, tmp_path: Path, receiver: WebhookReceiver) -> None:
    path = _webhook_rules(tmp_path, receiver)
    ruleset = _ruleset(path, engine, tmp_path, T_WEBHOOK_SECRET="k")
    insert_seed(engine)
    assert len(run_tick(engine, ruleset.rules, _now()).alerts) == 3  # decided and committed
    engine.dispose()  # the process dies here: nothing was sent
    assert receiver.requests == []

    restarted = _ruleset(path, engine, tmp_path, T_WEBHOOK_SECRET="k")
    assert run_tick(engine, restarted.rules, _now()).alerts == []  # not decided again
    _deliver_all(engine, restarted).close()
    _deliver_all(engine, restarted).close()  # and a third start finds nothing to do
    assert len(receiver.requests) == 3
    assert len(receiver.accepted) == 3
    assert len({json.loads(r.body)["dedup_key"] for r in receiver.accepted}) == 3


def test_a_throttled_group_sends_once_per_interval(engine: Engine, tmp_path: Path,
                                                   receiver: WebhookReceiver) -> None:
    ruleset = _ruleset(_webhook_rules(tmp_path, receiver, throttle="10m"), engine, tmp_path,
                       T_WEBHOOK_SECRET="k")
    for second in (0, 10, 20, 30):
        insert_article(engine, title=f"IS attack {second}", topics={"is_threat": 0.8},
                       published=later(second))
        run_tick(engine, ruleset.rules, later(second))
        _deliver_all(engine, ruleset).close()
    assert len(receiver.accepted) == 1
    run_tick(engine, ruleset.rules, later(599))
    _deliver_all(engine, ruleset).close()
    assert len(receiver.accepted) == 1
    run_tick(engine, ruleset.rules, later(600))
    _deliver_all(engine, ruleset).close()
    assert len(receiver.accepted) == 2
    repeat = json.loads(receiver.accepted[1].body)
    assert sorted(a["title"] for a in repeat["articles"]) == [
        "IS attack 10", "IS attack 20", "IS attack 30"]
    assert repeat["reason"].startswith("3 new article(s) in the group since the last alert")
    run_tick(engine, ruleset.rules, later(3600))  # the group did not grow: no repeat
    _deliver_all(engine, ruleset).close()
    assert len(receiver.accepted) == 2


# --- apprise ---------------------------------------------------------------------------


def test_an_apprise_url_delivers(engine: Engine, tmp_path: Path, receiver: WebhookReceiver) -> None:
    url = receiver.url.replace("http://", "json://")
    channels = "  chat:\n    type: apprise\n    url_env: T_APPRISE_URL\n"
    ruleset = _ruleset(write_rules(tmp_path, rules_for(channels, ["chat"])), engine,
                       tmp_path, T_APPRISE_URL=url)
    insert_seed(engine)
    run_tick(engine, ruleset.rules, _now())
    _deliver_all(engine, ruleset).close()
    assert len(receiver.accepted) == 3
    titles = sorted(json.loads(r.body)["title"] for r in receiver.accepted)
    assert titles[0].startswith("drug-trafficking: After Issuing Warning")
    assert "Islamic State (IS) fighters" in json.loads(receiver.accepted[0].body)["message"]


# --- reload ----------------------------------------------------------------------------


def test_an_invalid_rules_file_is_refused_and_the_running_rules_stay(
        engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    channels = "  file:\n    type: jsonl\n    path: out.jsonl\n"
    path = write_rules(tmp_path, rules_for(channels, ["file"]))
    holder = RulesHolder(path, dialect=engine.dialect.name, state_dir=tmp_path)
    before = holder.current
    path.write_text(rules_for(channels, ["file"]).replace("topics: [recognition]",
                                                          "topics: [recognition]\n"
                                                          "      min_score: 7"))
    assert holder.reload() is False
    assert holder.current is before
    assert "rules reload refused; the rules in force stay" in caplog.text
    assert "rule 'regime-recognition': match.min_score" in caplog.text

    insert_seed(engine)
    assert len(run_tick(engine, holder.current.rules, _now()).alerts) == 3

    path.write_text(rules_for(channels, ["file"], extra="    enabled: false\n"))
    assert holder.reload() is True
    assert holder.current is not before
    assert len(holder.current.rules) == 0
    holder.close()


# --- the daemon as a process -----------------------------------------------------------


def alert_daemon(db_url: str, rules: Path, state: Path) -> DaemonProcess:
    """``newswatch alert`` in a subprocess, logs to a file."""
    env = {**os.environ, "NEWSWATCH_DATABASE_URL": db_url,
           "NEWSWATCH_STATE_DIR": str(state), "NEWSWATCH_LOG_FORMAT": "json",
           "NEWSWATCH_ALERT_POLL_INTERVAL_S": "0.05", "T_WEBHOOK_SECRET": "k"}
    env.pop("NEWSWATCH_METRICS_PORT", None)
    return DaemonProcess("alert", ("alert", "--rules", str(rules)), env,
                         state / "alert.log").start()


def test_the_daemon_reloads_on_sighup_keeps_good_rules_and_stops_on_sigterm(
        engine: Engine, db_url: str, tmp_path: Path, receiver: WebhookReceiver) -> None:
    path = _webhook_rules(tmp_path, receiver)
    daemon = alert_daemon(db_url, path, tmp_path)
    try:
        daemon.wait_log("evaluating alert rules")
        insert_seed(engine)
        assert len(receiver.wait_for(3)) == 3
        path.write_text("rules:\n  - name: broken\n    match: {topics: [x]}\n"
                        "    channels: [nowhere]\n")
        daemon.send(signal.SIGHUP)
        daemon.wait_log("rules reload refused")
        assert "unknown channel 'nowhere'" in daemon.log_text()
        insert_article(engine, title="IS claims attack", topics={"is_threat": 0.9})
        assert len(receiver.wait_for(4)) == 4  # the old rules are still in force
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    assert len(receiver.accepted) == 4


def test_the_daemon_killed_before_sending_sends_once_after_restart(
        engine: Engine, db_url: str, tmp_path: Path, receiver: WebhookReceiver) -> None:
    path = _webhook_rules(tmp_path, receiver, backoff="3s", max_backoff="3s")
    receiver.default_status = 503
    daemon = alert_daemon(db_url, path, tmp_path)
    try:
        daemon.wait_log("evaluating alert rules")
        insert_seed(engine)
        # Killed once every first attempt failed and was recorded (the retries wait 3 s).
        wait_for(lambda: len(receiver.requests) >= 3, 20, "three refused deliveries")
        wait_for(lambda: _failed_attempts(engine) >= 3, 20, "the failures recorded")
        daemon.kill()
    finally:
        daemon.kill()
    assert _count(engine, tables.alerts, status="pending") == 3
    assert receiver.accepted == []

    receiver.default_status = 200
    restarted = alert_daemon(db_url, path, tmp_path)
    try:
        assert len(receiver.wait_for(3, timeout=30)) == 3
        wait_for(lambda: _count(engine, tables.alerts, status="sent") == 3, 20,
                 "the three sends recorded")
        assert restarted.stop() == 0
    finally:
        restarted.kill()
    assert len(receiver.accepted) == 3
    assert len({json.loads(r.body)["dedup_key"] for r in receiver.accepted}) == 3
    assert _count(engine, tables.alerts, status="sent") == 3
    assert _count(engine, tables.alerts) == 3
