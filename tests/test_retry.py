"""The one retry policy (`newswatch.retry`): formula, jitter, cap, deadline, `retryable`."""

from __future__ import annotations

import logging
import random

import pytest

from newswatch.errors import ConfigError, ServiceUnavailableError
from newswatch.retry import Attempts, RetryPolicy, is_retryable, retry_call


def test_ceiling_doubles_from_initial_and_stops_at_the_cap() -> None:
    policy = RetryPolicy(initial_s=0.5, max_s=5.0)
    assert [policy.ceiling(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert policy.ceiling(10_000) == 5.0  # no overflow on a long outage


def test_default_jitter_stays_between_half_and_all_of_the_ceiling() -> None:
    policy, rng = RetryPolicy(initial_s=1.0, max_s=8.0), random.Random(3)
    delays = [policy.delay(2, rng=rng) for _ in range(300)]
    assert min(delays) >= 2.0
    assert max(delays) <= 4.0
    assert max(delays) - min(delays) > 1.0  # jittered, not constant


def test_upward_jitter_and_no_jitter() -> None:
    rng = random.Random(5)
    up = RetryPolicy(initial_s=10.0, max_s=100.0, jitter=(1.0, 1.25))
    assert all(10.0 <= up.delay(0, rng=rng) <= 12.5 for _ in range(100))
    fixed = RetryPolicy(initial_s=1.0, max_s=60.0, jitter=(1.0, 1.0))
    assert [fixed.delay(n) for n in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]


def test_at_least_lengthens_but_never_past_the_cap() -> None:
    policy = RetryPolicy(initial_s=1.0, max_s=30.0)
    assert policy.delay(0, at_least=20) == 20
    assert policy.delay(0, at_least=999) == 30


def test_retryable_is_read_from_the_error() -> None:
    assert is_retryable(ServiceUnavailableError("db gone"))
    assert not is_retryable(ConfigError("bad file"))
    assert not is_retryable(ValueError("no attribute at all"))


def test_retry_call_waits_out_retryable_errors_and_logs_once(
        caplog: pytest.LogCaptureFixture) -> None:
    calls, waits = [], []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 4:
            raise ServiceUnavailableError("database is starting")
        return "ok"

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        return False

    with caplog.at_level(logging.WARNING, logger="newswatch.retry"):
        result = retry_call(flaky, RetryPolicy(0.1, 1.0, jitter=(1.0, 1.0)), "schema check",
                            wait=wait)
    assert result == "ok"
    assert len(calls) == 4
    assert waits == [0.1, 0.2, 0.4]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "database is starting" in errors[0].getMessage()
    assert any("works again after 4 tries" in r.getMessage() for r in caplog.records)


def test_retry_call_raises_a_final_error_at_once() -> None:
    calls = []

    def broken() -> None:
        calls.append(1)
        raise ConfigError("wrong revision")

    with pytest.raises(ConfigError):
        retry_call(broken, RetryPolicy(), "x", wait=lambda _s: False)
    assert len(calls) == 1


def test_retry_call_returns_none_when_stopped() -> None:
    def down() -> None:
        raise ServiceUnavailableError("away")

    assert retry_call(down, RetryPolicy(), "x", wait=lambda _s: True) is None


def test_the_deadline_ends_the_series_with_the_last_error() -> None:
    clock = [0.0]

    def wait(seconds: float) -> bool:
        clock[0] += seconds
        return False

    def down() -> None:
        raise ServiceUnavailableError("still away")

    policy = RetryPolicy(initial_s=1.0, max_s=4.0, jitter=(1.0, 1.0), deadline_s=10.0)
    attempts = Attempts(policy, "x", wait=wait, clock=lambda: clock[0])
    tries = 0
    while attempts.failed(ServiceUnavailableError("away")):
        tries += 1
    assert attempts.expired
    assert clock[0] == 10.0
    assert tries == 4
    with pytest.raises(ServiceUnavailableError, match="still away"):
        retry_call(down, RetryPolicy(0.01, 0.02, deadline_s=0.05), "x")
