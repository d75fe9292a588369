"""When to check a feed next. Pure functions of the outcome, the clock and a random source.

- After a success (200 or 304): the feed's interval, raised to the server's Cache-Control
  ``max-age`` and the feed's RSS ``<ttl>`` when those are longer (lower bounds, never
  shorter waits), capped at ``max_delay_s``; plus up to 10% jitter, so feeds added
  together drift apart instead of hitting a host at the same second forever.
- After a failure: exponential backoff from the feed's interval, doubling with every
  consecutive error (``interval * 2**(errors-1)``), capped at ``max_delay_s``, with up to
  25% jitter; a Retry-After from the server is honoured when it asks for longer. A failing
  feed is therefore never polled in a tight loop.
- After a 410 Gone: never (the feed is disabled until its URL changes in feeds.yaml).

The failure backoff is the project's one formula (`newswatch.retry.RetryPolicy`), with the
feed's interval as its first step and jitter that only lengthens.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from newswatch.retry import RetryPolicy

SUCCESS_JITTER = 0.10
FAILURE_JITTER = 0.25


def after_success(now: datetime, interval_s: float, *, max_age_s: float | None = None,
                  ttl_minutes: int | None = None, max_delay_s: float = 86_400.0,
                  rng: random.Random | None = None) -> datetime:
    """Next check after a successful poll; see the module docstring."""
    delay = success_delay(interval_s, max_age_s=max_age_s, ttl_minutes=ttl_minutes,
                          max_delay_s=max_delay_s)
    jitter = (rng or random).uniform(0.0, SUCCESS_JITTER) * delay
    return now + timedelta(seconds=delay + jitter)


def success_delay(interval_s: float, *, max_age_s: float | None = None,
                  ttl_minutes: int | None = None, max_delay_s: float = 86_400.0) -> float:
    """The wait before jitter: the longest of interval, max-age and ttl, capped."""
    lower_bounds = [interval_s]
    if max_age_s is not None:
        lower_bounds.append(max_age_s)
    if ttl_minutes is not None:
        lower_bounds.append(ttl_minutes * 60.0)
    return min(max(lower_bounds), max(interval_s, max_delay_s))


def failure_policy(interval_s: float, max_delay_s: float = 86_400.0) -> RetryPolicy:
    """The backoff of a failing feed: from its interval, doubling, capped (never below the
    interval), jittered up to `FAILURE_JITTER` longer."""
    return RetryPolicy(initial_s=interval_s, max_s=max(interval_s, max_delay_s),
                       jitter=(1.0, 1.0 + FAILURE_JITTER))


def failure_delay(interval_s: float, error_count: int, *, retry_after_s: float | None = None,
                  max_delay_s: float = 86_400.0) -> float:
    """The wait before jitter after ``error_count`` consecutive failures (>= 1)."""
    delay = failure_policy(interval_s, max_delay_s).ceiling(max(error_count, 1) - 1)
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, max_delay_s))
    return delay


def after_failure(now: datetime, interval_s: float, error_count: int, *,
                  retry_after_s: float | None = None, max_delay_s: float = 86_400.0,
                  rng: random.Random | None = None) -> datetime:
    """Next check after a failed poll; see the module docstring."""
    delay = failure_delay(interval_s, error_count, retry_after_s=retry_after_s,
                          max_delay_s=max_delay_s)
    # Jitter after Retry-After, unlike RetryPolicy.delay: feeds a host throttled all at
    # once must not all come back at the second it named.
    low, high = failure_policy(interval_s, max_delay_s).jitter
    return now + timedelta(seconds=delay * (rng or random).uniform(low, high))
