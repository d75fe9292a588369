"""JSON-lines channel: each alert's JSON payload (as a webhook receives it) on one line.

Needs no setup, so the demo rules use it. A relative path is under the state folder.
Lines are appended and fsynced; a reader dedups by ``dedup_key`` (a crash between the
write and recording it leads to the line being written again).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from consumers.alert.channels.base import SendResult, delivered, retryable
from schemas.alert_payload import AlertPayload


class JsonlNotifier:
    """Appends each alert's JSON payload (as a webhook receives it) as one line."""

    kind = "jsonl"

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path
        self._lock = threading.Lock()

    def send(self, alert: AlertPayload) -> SendResult:
        line = alert.model_dump_json() + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._lock, self.path.open("a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            return retryable("io", f"cannot append to the alerts file: {exc.strerror or exc}")
        return delivered("written")

    def close(self) -> None:
        return None
