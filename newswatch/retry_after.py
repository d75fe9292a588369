"""The HTTP ``Retry-After`` header, read the same way by the feed fetcher and the webhook
channel: how many seconds from now the server asks us to wait.

Accepted: delay-seconds (``120``, or ``1.5`` as some servers send) or an HTTP date (a past
date means now). Anything else (``soon``, a negative number, ``nan``, ``inf``, a header
from a hostile server) is None: the caller falls back to its own backoff.
"""

from __future__ import annotations

import email.utils
import re
from datetime import UTC, datetime

_SECONDS = re.compile(r"^\d{1,12}(?:\.\d{1,6})?$")


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds from ``now`` (default: the current time); None if unreadable."""
    if not value:
        return None
    value = value.strip()
    if _SECONDS.match(value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
