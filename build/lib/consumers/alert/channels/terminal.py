"""Terminal channel: each alert printed as text on the daemon's standard output."""

from __future__ import annotations

import sys
import threading
from typing import TextIO

from consumers.alert.channels.base import SendResult, delivered, retryable
from consumers.alert.render import render_text
from schemas.alert_payload import AlertPayload


class TerminalNotifier:
    """Prints each alert as text on standard output."""

    kind = "terminal"

    def __init__(self, name: str, stream: TextIO | None = None) -> None:
        self.name = name
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, alert: AlertPayload) -> SendResult:
        stream = self._stream or sys.stdout
        text = render_text(alert)
        rule = "=" * 72
        try:
            with self._lock:
                stream.write(f"{rule}\nALERT {text}{rule}\n")
                stream.flush()
        except (OSError, ValueError) as exc:
            return retryable("io", f"cannot write to the terminal: {exc}")
        return delivered("printed")

    def close(self) -> None:
        return None
