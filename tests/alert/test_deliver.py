"""The retry loop: classification, backoff, max attempts, deadline, and the delivery log.

The webhook is faked at the transport (httpx.MockTransport); the outbox and the log are
real tables on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import Engine, select

from consumers.alert.channels.base import Notifier
from consumers.alert.channels.webhook import WebhookNotifier, classify, verify
from consumers.alert.compile import compile_rules
from consumers.alert.deliver import Deliverer, backoff_delay
from consumers.alert.outbox import failed_alert_ids, resend_alert, run_tick
from consumers.alert.rules import parse_rules
from newswatch.cli import main
from newswatch.errors import NotFoundError, ServiceUnavailableError
from newswatch.utc import as_utc
from schemas import tables
from schemas.rules_file import Delivery
from tests.alert.conftest import NOW, insert_article, insert_seed, later

RULES = """channels:
  hook: {type: webhook, url: "http://receiver.test/hook"}
delivery: {max_attempts: 4, backoff: 10s, max_backoff: 1m, deadline: 1h}
rules:
  - name: threat
    match: {topics: [is_threat]}
    channels: [hook]
"""


@pytest.mark.parametrize(("status", "ok", "retry"), [
    (200, True, False), (202, True, False), (204, True, False),
    (301, False, False), (400, False, False), (401, False, False), (404, False, False),
    (410, False, False), (422, False, False),
    (429, False, True), (500, False, True), (502, False, True), (503, False, True),
])
def test_http_status_classification(status: int, ok: bool, retry: bool) -> None:
    result = classify(status)
    assert (result.ok, result.retry, result.status) == (ok, retry, f"http {status}")


def test_retry_after_is_read() -> None:
    assert classify(429, "7").retry_after == 7.0
    assert classify(503, "Wed, 21 Oct 2015 07:28:00 GMT").retry_after == 0.0


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    policy = Delivery(backoff=timedelta(seconds=2), max_backoff=timedelta(seconds=30))
    rng = random.Random(1)
    for attempt, ceiling in ((1, 2), (2, 4), (3, 8), (4, 16), (5, 30), (9, 30)):
        delays = [backoff_delay(policy, attempt, rng) for _ in range(200)]
        assert ceiling / 2 <= min(delays)
        assert max(delays) <= ceiling
        assert max(delays) - min(delays) > ceiling / 4  # jittered
    assert backoff_delay(policy, 1, rng, retry_after=20) == 20
    assert backoff_delay(policy, 1, rng, retry_after=999) == 30


class Script:
    """A webhook receiver at the transport: answers from a list, then 200."""

    def __init__(self, *answers: int | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if self.answers else 200
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer)


def _setup(engine: Engine, script: Script, secret: bytes | None = None
           ) -> tuple[Deliverer, Callable[[], tuple[Mapping[str, Notifier], Delivery]]]:
    rules_file = parse_rules(RULES)
    notifier = WebhookNotifier("hook", "http://receiver.test/hook", secret=secret,
                               timeout_s=1, transport=httpx.MockTransport(script))
    channels: dict[str, Notifier] = {"hook": notifier}

    def source() -> tuple[Mapping[str, Notifier], Delivery]:
        return channels, rules_file.delivery

    insert_seed(engine)
    run_tick(engine, compile_rules(rules_file.rules, engine.dialect.name), NOW)
    return Deliverer(engine, source, rng=random.Random(0)), source


def _log(engine: Engine) -> list[tuple[int, str, str, str | None]]:
    d = tables.deliveries
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(  # type: ignore[misc]
            select(d.c.attempt, d.c.outcome, d.c.status, d.c.error).order_by(d.c.id))]


def _send_state(engine: Engine) -> tuple[str, int, str]:
    with engine.connect() as conn:
        send = conn.execute(select(tables.alert_sends)).one()
        alert = conn.execute(select(tables.alerts.c.status)).scalar_one()
    return send.status, send.attempts, alert


def test_retryable_failures_are_retried_with_backoff_until_delivered(engine: Engine) -> None:
    script = Script(500, httpx.ConnectError("refused"), 429)
    deliverer, _ = _setup(engine, script)
    assert deliverer.run_once(NOW).retried == 1
    assert deliverer.run_once(NOW).attempts == 0          # not due yet
    assert deliverer.run_once(later(5)).attempts == 0     # backoff is 5-10 s
    assert deliverer.run_once(later(10)).retried == 1
    assert deliverer.run_once(later(40)).retried == 1
    assert deliverer.run_once(later(100)).sent == 1
    assert deliverer.run_once(later(1000)).attempts == 0  # sent once
    assert len(script.requests) == 4
    assert [(a, o, s) for a, o, s, _ in _log(engine)] == [
        (1, "retry", "http 500"), (2, "retry", "connection"), (3, "retry", "http 429"),
        (4, "sent", "http 200")]
    assert _log(engine)[1][3] == "ConnectError: refused"
    assert _send_state(engine) == ("sent", 4, "sent")
    with engine.connect() as conn:
        latencies = conn.execute(select(tables.deliveries.c.latency_ms)).scalars().all()
    assert all(latency >= 0 for latency in latencies)
    deliverer.close()


def test_a_final_error_is_not_retried(engine: Engine) -> None:
    script = Script(404)
    deliverer, _ = _setup(engine, script)
    assert deliverer.run_once(NOW).failed == 1
    assert deliverer.run_once(later(3600)).attempts == 0
    assert _send_state(engine) == ("failed", 1, "failed")
    assert _log(engine) == [(1, "failed", "http 404", "the receiver answered 404")]
    deliverer.close()


def test_after_max_attempts_the_alert_fails_and_alerts_failed_lists_it(
        engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    script = Script(*[503] * 10)
    deliverer, _ = _setup(engine, script)
    moment = NOW
    for _ in range(10):
        deliverer.run_once(moment)
        moment += timedelta(minutes=2)
    assert len(script.requests) == 4
    assert _send_state(engine) == ("failed", 4, "failed")
    assert _log(engine)[-1][3] == "the receiver answered 503 (gave up after 4 attempts)"
    deliverer.close()

    monkeypatch.setenv("NEWSWATCH_DATABASE_URL", db_url)
    assert main(["alerts", "--failed", "--json"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    listed = json.loads(line)
    assert listed["rule"] == "threat"
    assert listed["status"] == "failed"
    assert listed["sends"] == [{"channel": "hook", "status": "failed", "attempts": 4,
                                "last_error": "the receiver answered 503 "
                                              "(gave up after 4 attempts)"}]
    assert main(["alerts"]) == 0
    assert "threat" in capsys.readouterr().out
    assert main(["alerts", "--failed", "--rule", "other", "--json"]) == 0
    assert capsys.readouterr().out == ""


def test_the_deadline_ends_retries(engine: Engine) -> None:
    script = Script(*[500] * 10)
    deliverer, _ = _setup(engine, script)
    deliverer.run_once(NOW + timedelta(minutes=59, seconds=55))
    assert _send_state(engine) == ("failed", 1, "failed")
    assert "deadline passed after 1 attempts" in (_log(engine)[0][3] or "")
    deliverer.close()


def test_a_channel_missing_from_the_rules_is_retried_not_lost(engine: Engine) -> None:
    script = Script()
    deliverer, _ = _setup(engine, script)
    empty = Deliverer(engine, lambda: ({}, Delivery()), rng=random.Random(0))
    assert empty.run_once(NOW).retried == 1
    assert _log(engine)[0][2:] == ("config", "channel 'hook' is not in the rules file")
    assert deliverer.run_once(later(60)).sent == 1
    empty.close()
    deliverer.close()


def test_a_claimed_row_is_not_sent_by_a_second_deliverer(engine: Engine) -> None:
    script = Script()
    first, source = _setup(engine, script)
    second = Deliverer(engine, source)
    claimed = first._claim(NOW)
    assert len(claimed) == 1
    assert second.run_once(NOW).attempts == 0  # leased by the first
    assert second.run_once(later(200)).sent == 1  # the first died: the lease ran out
    first.close()
    second.close()


def test_the_webhook_request_is_signed_and_carries_the_payload(engine: Engine) -> None:
    script = Script()
    deliverer, _ = _setup(engine, script, secret=b"s3cret")
    assert deliverer.run_once(NOW).sent == 1
    (request,) = script.requests
    body = request.content
    assert verify(b"s3cret", request.headers["X-Newswatch-Signature"], body)
    assert not verify(b"other", request.headers["X-Newswatch-Signature"], body)
    assert not verify(b"s3cret", request.headers["X-Newswatch-Signature"], body + b" ")
    payload = json.loads(body)
    assert payload["version"] == 1
    assert payload["alert_id"] == int(
        request.headers["X-Newswatch-Alert-Id"])
    assert payload["dedup_key"] == request.headers["X-Newswatch-Dedup-Key"]
    deliverer.close()


# --- issue 18: sending a failed alert again --------------------------------------------


def test_a_resent_alert_gets_a_fresh_retry_budget_and_keeps_its_dedup_key(
        engine: Engine) -> None:
    """Decided in 2021, failed for good; sent again now: the deadline counts from the
    resend, so a 500 is retried instead of failing at once; the log shows who asked."""
    script = Script(404, 500)
    deliverer, _ = _setup(engine, script)
    assert deliverer.run_once(NOW).failed == 1
    assert failed_alert_ids(engine) == [1]
    assert resend_alert(engine, 1, who="analyst") == 1
    assert resend_alert(engine, 1, who="analyst") == 0  # nothing failed any more
    assert _send_state(engine) == ("pending", 0, "pending")
    assert failed_alert_ids(engine) == []
    assert deliverer.run_once().retried == 1  # now: a fresh deadline and attempt count
    with engine.begin() as conn:  # make the retry due at once
        conn.execute(tables.alert_sends.update().values(next_attempt_at=NOW))
    assert deliverer.run_once().sent == 1
    assert [(a, o, s) for a, o, s, _ in _log(engine)] == [
        (1, "failed", "http 404"), (1, "requeued", "resend by analyst"),
        (1, "retry", "http 500"), (2, "sent", "http 200")]
    keys = {r.headers["x-newswatch-dedup-key"] for r in script.requests}
    assert len(keys) == 1  # the same alert every time
    assert _send_state(engine) == ("sent", 2, "sent")
    with pytest.raises(NotFoundError):
        resend_alert(engine, 99, who="analyst")
    deliverer.close()


def test_an_attempt_that_raised_in_an_unwaited_round_does_not_stop_later_rounds(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon's rounds do not wait (``wait=False``). An attempt that raised (the
    database went away between claim and send) used to be raised again by every later
    round, so the daemon paused delivery for good."""
    script = Script()
    deliverer, _ = _setup(engine, script)
    real_send = deliverer._send
    failures = [ServiceUnavailableError("database unavailable: gone")]

    def send_once_failing(*args: object) -> object:
        if failures:
            raise failures.pop()
        return real_send(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(deliverer, "_send", send_once_failing)
    deliverer.run_once(NOW, wait=False)
    deadline = time.monotonic() + 10
    while deliverer.in_flight() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert deliverer.in_flight() == 0
    assert deliverer.run_once(NOW, wait=False).attempts == 0  # not raised; under lease
    after_lease = NOW + timedelta(minutes=3)
    deliverer.run_once(after_lease, wait=False)
    deadline = time.monotonic() + 10
    while _send_state(engine)[0] != "sent" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _send_state(engine) == ("sent", 1, "sent")
    assert len(script.requests) == 1
    deliverer.close()


def test_a_chain_of_one_host_stops_at_a_failed_send_and_gives_the_rest_back(
        engine: Engine) -> None:
    """One worker sends the due rows of one destination in turn (`Deliverer._claim`);
    a failed send ends the chain, and the rows it did not try are due again at once,
    not held for the two-minute lease."""
    script = Script(200, 500)
    deliverer, _ = _setup(engine, script)
    rules = compile_rules(parse_rules(RULES).rules, engine.dialect.name)
    for second in (1, 2):
        insert_article(engine, title=f"IS again {second}", published=later(second),
                       topics={"is_threat": 0.9})
        run_tick(engine, rules, later(second))
    with engine.connect() as conn:
        assert len(conn.execute(select(tables.alert_sends)).all()) == 3

    first = deliverer.run_once(later(3))
    assert (first.sent, first.retried) == (1, 1)
    assert len(script.requests) == 2  # the third was not tried after the failure
    with engine.connect() as conn:
        untried = conn.execute(select(tables.alert_sends).where(
            tables.alert_sends.c.attempts == 0)).one()
    assert untried.status == "pending"
    assert as_utc(untried.next_attempt_at) <= later(3)  # given back, not leased
    assert deliverer.run_once(later(3)).sent == 1  # sent now; the failed one waits
    assert len(script.requests) == 3
    deliverer.close()


TWO_CHANNELS_ONE_HOST = """channels:
  first: {type: webhook, url: "http://receiver.test/first"}
  second: {type: webhook, url: "http://receiver.test/second"}
delivery: {max_attempts: 4, backoff: 10s, max_backoff: 1m, deadline: 1h}
rules:
  - name: threat
    match: {topics: [is_threat]}
    channels: [first, second]
"""


@pytest.mark.parametrize(("second_answers", "alert_status"), [(200, "sent"), (404, "failed")])
def test_a_chain_of_two_channels_of_one_alert_records_the_alert_once_both_are_done(
        engine: Engine, second_answers: int, alert_status: str) -> None:
    """Both channels of one alert go to one host, so one worker sends them in one chain
    and records them in one transaction (`Deliverer._record`): the alert is done, sent or
    failed by its worst channel, only once neither row is pending."""
    answers = {"/first": 200, "/second": second_answers}
    requests: list[str] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        requests.append(request.url.path)
        return httpx.Response(answers[request.url.path])

    rules_file = parse_rules(TWO_CHANNELS_ONE_HOST)
    channels: dict[str, Notifier] = {
        name: WebhookNotifier(name, f"http://receiver.test/{name}", secret=None, timeout_s=1,
                              transport=httpx.MockTransport(receiver))
        for name in ("first", "second")}
    insert_seed(engine)
    run_tick(engine, compile_rules(rules_file.rules, engine.dialect.name), NOW)
    with engine.begin() as conn:  # "first" is due first, so the chain goes on to "second"
        conn.execute(tables.alert_sends.update().where(
            tables.alert_sends.c.channel == "first").values(next_attempt_at=later(-1)))
    deliverer = Deliverer(engine, lambda: (channels, rules_file.delivery))
    stats = deliverer.run_once(NOW)
    deliverer.close()

    assert requests == ["/first", "/second"]  # one chain, in due order
    assert (stats.sent, stats.failed) == ((2, 0) if alert_status == "sent" else (1, 1))
    with engine.connect() as conn:
        sends = dict(conn.execute(select(tables.alert_sends.c.channel,
                                         tables.alert_sends.c.status)).all())
        alert = conn.execute(select(tables.alerts.c.status,
                                    tables.alerts.c.finished_at)).one()
        attempts = conn.execute(select(tables.deliveries.c.channel,
                                       tables.deliveries.c.outcome)
                                .order_by(tables.deliveries.c.id)).all()
    assert sends == {"first": "sent", "second": "sent" if second_answers == 200 else "failed"}
    assert alert.status == alert_status
    assert alert.finished_at is not None
    assert [tuple(a) for a in attempts] == [
        ("first", "sent"), ("second", "sent" if second_answers == 200 else "failed")]
