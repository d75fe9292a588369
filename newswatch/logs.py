"""Logging: JSON lines for machines, readable lines on a terminal; keys travel as extras.

Call sites pass context as ``extra={"feed": ..., "article_id": ...}``; both formats print
those keys, so a log line can always be traced to the feed, article, rule or offset.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and every extra key."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_extras(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``HH:MM:SS LEVEL logger: message key=value ...`` for people at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        keys = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        line = f"{stamp} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if keys:
            line += " " + keys
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class RepeatFilter(logging.Filter):
    """Lets through one record per kafka-python message template per ``every_s``.

    A broker restart made kafka-python log ~170 ERROR lines per consumer (one per
    reconnect try, issue 16); our own loop logs the outage once when it starts and once
    when it ends. The first line of each kind still shows, with how many were held back.
    """

    def __init__(self, every_s: float = 60.0, prefix: str = "kafka") -> None:
        super().__init__()
        self._every_s = every_s
        self._prefix = prefix
        self._last: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self._prefix):
            return True
        key = (record.name, str(record.msg))
        now = time.monotonic()
        last, held = self._last.get(key, (-self._every_s, 0))
        if now - last < self._every_s:
            self._last[key] = (last, held + 1)
            return False
        self._last[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} (and {held} more like it in {self._every_s:.0f}s)"
        return True


def setup_logging(fmt: str = "auto", level: str = "INFO") -> None:
    """Send logs to stderr as JSON lines, or as text when ``fmt`` is text or auto on a tty."""
    use_text = fmt == "text" or (fmt == "auto" and sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(TextFormatter() if use_text else JsonFormatter())
    root = logging.getLogger()
    handler.addFilter(RepeatFilter())
    root.handlers[:] = [handler]
    root.setLevel(level)
    # kafka-python reports every reconnect at INFO or ERROR; our own code logs what matters.
    logging.getLogger("kafka").setLevel(logging.WARNING)
    # httpx logs every request at INFO: too much for feed polls and metric scrapes.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
