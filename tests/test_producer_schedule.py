"""Scheduling: interval, max-age and ttl as lower bounds; backoff; Retry-After; jitter."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from producers import schedule

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("interval", "max_age", "ttl", "expected"), [
    (900, None, None, 900),
    (900, 60, None, 900),          # a shorter max-age never makes us poll more often
    (900, 3600, None, 3600),       # a longer one is honoured
    (900, None, 60, 3600),         # <ttl>60</ttl> minutes
    (900, 7200, 60, 7200),
    (900, 10 ** 9, None, 86_400),  # capped
    (100_000, None, None, 100_000),  # the cap never shortens the configured interval
])
def test_success_delay(interval: float, max_age: float | None, ttl: int | None,
                       expected: float) -> None:
    assert schedule.success_delay(interval, max_age_s=max_age, ttl_minutes=ttl,
                                  max_delay_s=86_400) == expected


@pytest.mark.parametrize(("errors", "retry_after", "expected"), [
    (1, None, 600), (2, None, 1200), (3, None, 2400), (5, None, 9600),
    (20, None, 86_400),            # capped
    (1, 3600, 3600),               # Retry-After asks for longer: honoured
    (3, 60, 2400),                 # ... but never shortens the backoff
    (1, 10 ** 8, 86_400),          # and is capped too
])
def test_failure_delay(errors: int, retry_after: float | None, expected: float) -> None:
    assert schedule.failure_delay(600, errors, retry_after_s=retry_after,
                                  max_delay_s=86_400) == expected


def test_jitter_only_lengthens_and_stays_bounded() -> None:
    rng = random.Random(7)
    successes = [schedule.after_success(NOW, 600, rng=rng) - NOW for _ in range(200)]
    failures = [schedule.after_failure(NOW, 600, 2, rng=rng) - NOW for _ in range(200)]
    assert all(timedelta(seconds=600) <= d <= timedelta(seconds=660) for d in successes)
    assert all(timedelta(seconds=1200) <= d <= timedelta(seconds=1500) for d in failures)
    assert len(set(successes)) > 150  # spread, not one instant for every feed


def test_consecutive_failures_wait_longer_and_longer() -> None:
    rng = random.Random(1)
    waits = [schedule.after_failure(NOW, 60, n, rng=rng) - NOW for n in range(1, 8)]
    assert waits == sorted(waits)
    assert waits[-1] >= timedelta(seconds=60 * 2 ** 6)
