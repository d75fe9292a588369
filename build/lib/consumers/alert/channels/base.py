"""What every channel returns, and the notifier interface the deliverer calls.

A notifier decides at the point of failure whether trying again may help and returns that
as data (Alertmanager's ``(retry, err)``): delivered; failed but retryable (timeouts,
connection errors, HTTP 429 and 5xx, SMTP 4xx); or failed for good (other 4xx, SMTP 5xx,
a bad configuration). It never retries by itself: `consumers.alert.deliver` is the one
retry loop. Error texts never contain secrets or URLs (they may carry tokens).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from schemas.alert_payload import AlertPayload


@dataclass(frozen=True)
class SendResult:
    """``error`` None means delivered; otherwise ``retry`` says whether to try again."""

    status: str
    error: str | None = None
    retry: bool = False
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def delivered(status: str) -> SendResult:
    return SendResult(status=status)


def retryable(status: str, error: str, retry_after: float | None = None) -> SendResult:
    return SendResult(status=status, error=error[:1000], retry=True, retry_after=retry_after)


def final(status: str, error: str) -> SendResult:
    return SendResult(status=status, error=error[:1000], retry=False)


class Notifier(Protocol):
    """One configured channel. ``send`` must be safe to call from several threads."""

    name: str
    kind: str

    def send(self, alert: AlertPayload) -> SendResult:
        """Try once to deliver ``alert``; never raises for a delivery failure."""
        ...

    def close(self) -> None:
        """Release connections; idempotent."""
        ...
