"""The one retry policy of Newswatch: exponential backoff with jitter, a cap and a deadline.

Every loop that tries something again (the consumer loop's outages, the producer's
pauses, alert delivery and its records, the supervisor's restarts, the schema wait, the
daemons' start-up connections, the per-feed schedule) computes its wait here, so one
formula holds everywhere:

    ceiling(attempt) = min(max_s, initial_s * 2 ** attempt)        (attempt 0-based)
    delay(attempt)   = ceiling(attempt) * uniform(*jitter)         (then >= at_least)

``jitter`` is the range the ceiling is multiplied by: ``(0.5, 1.0)`` waits between half
and all of it (the default: retries of many clients spread out, never exceed the cap);
``(1.0, 1.25)`` only lengthens it (a feed's schedule); ``(1.0, 1.0)`` is no jitter (a
supervisor's restarts, shown to the operator).

Whether to retry at all is the error's to say (`is_retryable`: its ``retryable``
attribute, as `newswatch.errors` defines it); `Attempts` and `retry_call` wait out a
series of retryable failures, interruptibly, logging once when the series starts and
once when it ends, and counting every retry in ``newswatch_retries_total``.

This module knows no Kafka, SQL or HTTP: callers turn their library's errors into
`newswatch.errors` ones (e.g. `newswatch.db_errors.unavailable_as_retryable`).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from newswatch.metrics import RETRIES

log = logging.getLogger(__name__)

T = TypeVar("T")

# Past 2**30 every sane cap is reached; the bound keeps the float arithmetic finite.
_MAX_EXPONENT = 30


def is_retryable(error: BaseException) -> bool:
    """True when trying again later may succeed: the error's ``retryable`` attribute."""
    return bool(getattr(error, "retryable", False))


@dataclass(frozen=True)
class RetryPolicy:
    """How long to wait before retry number ``attempt`` (0-based), and for how long at all.

    ``deadline_s`` bounds a whole series of attempts (`Attempts`, `retry_call`): None
    means "until stopped".
    """

    initial_s: float = 0.5
    max_s: float = 30.0
    jitter: tuple[float, float] = (0.5, 1.0)
    deadline_s: float | None = None

    def ceiling(self, attempt: int) -> float:
        """The wait before jitter: doubling from ``initial_s``, capped at ``max_s``."""
        exponent = min(max(attempt, 0), _MAX_EXPONENT)
        return float(min(self.max_s, self.initial_s * float(2 ** exponent)))

    def delay(self, attempt: int, *, rng: random.Random | None = None,
              at_least: float | None = None) -> float:
        """The jittered wait; ``at_least`` (a server's Retry-After) lengthens it, never
        beyond ``max_s``."""
        low, high = self.jitter
        delay = self.ceiling(attempt) * (rng or random).uniform(low, high)
        if at_least is not None:
            delay = max(delay, min(at_least, self.max_s))
        return float(delay)


class Attempts:
    """One series of tries at ``what`` under ``policy``.

    `failed` logs the first failure of a series (not every one), counts it, and waits
    the policy's delay through ``wait`` (a `StopFlag.wait`-like callable that returns
    True when the wait was cut short by a stop). `succeeded` ends a series and logs the
    recovery when there was an outage; both log lines carry ``context``. Not thread-safe:
    one series per loop.
    """

    def __init__(self, policy: RetryPolicy, what: str, *,
                 wait: Callable[[float], bool] | None = None,
                 rng: random.Random | None = None, logger: logging.Logger | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 context: Mapping[str, Any] | None = None) -> None:
        self.policy = policy
        self.what = what
        self.attempt = 0
        self._wait = wait or _sleep
        self._rng = rng
        self._log = logger or log
        self._clock = clock
        self._extra = {"what": what, **(context or {})}
        self._since: float | None = None
        self.expired = False  # the deadline passed (as opposed to a stop)

    @property
    def failing(self) -> bool:
        return self._since is not None

    def next_delay(self) -> float:
        return self.policy.delay(self.attempt, rng=self._rng)

    def failed(self, error: BaseException, message: str | None = None) -> bool:
        """Record a retryable failure and wait before the next try. Returns False (without
        waiting the whole delay) when the wait was stopped or the deadline has passed."""
        now = self._clock()
        if self._since is None:
            self._since = now
            self._log.error("%s: %s; retrying with backoff", message or f"{self.what} failed",
                            error, extra=self._extra)
        RETRIES.labels(self.what).inc()
        delay = self.next_delay()
        self.attempt += 1
        if self.policy.deadline_s is not None:
            left = self._since + self.policy.deadline_s - now
            if left <= 0:
                self.expired = True
                return False
            delay = min(delay, left)
        return not self._wait(delay)

    def succeeded(self) -> None:
        """The thing worked: end the series (log how long it took when it had failed)."""
        if self._since is not None:
            self._log.warning("%s works again after %d tries, %.1fs", self.what,
                              self.attempt + 1, self._clock() - self._since,
                              extra={**self._extra, "tries": self.attempt + 1})
        self._since = None
        self.attempt = 0


def retry_call(fn: Callable[[], T], policy: RetryPolicy, what: str, *,
               wait: Callable[[float], bool] | None = None,
               retry_on: Callable[[BaseException], bool] = is_retryable,
               logger: logging.Logger | None = None) -> T | None:
    """``fn()``, tried again under ``policy`` while it raises a retryable error.

    A non-retryable error propagates at once; the last retryable one propagates when the
    policy's deadline passes. Returns None when ``wait`` reports a stop (the caller is
    shutting down).
    """
    attempts = Attempts(policy, what, wait=wait, logger=logger)
    while True:
        try:
            result = fn()
        except Exception as error:
            if not retry_on(error):
                raise
            if attempts.failed(error):
                continue
            if attempts.expired:
                raise
            return None
        attempts.succeeded()
        return result


def _sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return False
