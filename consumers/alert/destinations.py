"""Per-destination isolation of alert deliveries: one slow host holds at most one worker.

A destination is the remote end a channel talks to: a webhook's scheme, host and port,
an SMTP server's host and port; a channel that names none (a file, the terminal) is its
own destination. `Slots` counts the sends in flight per destination and in all: the
deliverer hands a worker a send only when its destination is under
``per_destination`` (1 by default) and a worker is free, so a receiver that drips its
answer for the whole channel timeout holds one worker, and emails and webhooks to other
hosts keep going on the others (issue 16: four dripping webhooks jammed all four
workers and every email waited).
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any
from urllib.parse import urlsplit


def webhook_destination(url: str) -> str:
    """``webhook:scheme://host:port`` of ``url`` (the default port made explicit)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"webhook:{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


def destination_of(notifier: Any) -> str:
    """The destination a notifier names (its ``destination`` attribute), else its channel."""
    value = getattr(notifier, "destination", None)
    if isinstance(value, str) and value:
        return value
    return f"channel:{getattr(notifier, 'name', '?')}"


class Slots:
    """Sends in flight per destination and in all. Thread-safe."""

    def __init__(self, per_destination: int, total: int) -> None:
        if per_destination < 1 or total < 1:
            raise ValueError("at least one send per destination and in all")
        self.per_destination = per_destination
        self.total = total
        self._lock = threading.Lock()
        self._busy: Counter[str] = Counter()

    def take(self, destination: str) -> bool:
        """Take a slot for a send to ``destination``; False when it or the pool is full."""
        with self._lock:
            if (sum(self._busy.values()) >= self.total
                    or self._busy[destination] >= self.per_destination):
                return False
            self._busy[destination] += 1
            return True

    def give(self, destination: str) -> None:
        with self._lock:
            self._busy[destination] -= 1
            if self._busy[destination] <= 0:
                del self._busy[destination]

    def full(self) -> set[str]:
        """The destinations at their limit now."""
        with self._lock:
            return {dest for dest, n in self._busy.items() if n >= self.per_destination}

    def free(self) -> int:
        with self._lock:
            return self.total - sum(self._busy.values())

    def in_flight(self) -> int:
        with self._lock:
            return sum(self._busy.values())
