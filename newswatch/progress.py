"""Live progress of a pipeline run, read from each child daemon's /metrics endpoint, and
the run's console output (`RunOutput`)."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterable
from typing import TextIO

import httpx
from prometheus_client.parser import text_string_to_metric_families

# What the progress line shows, in pipeline order: label -> metric (summed over labels).
PROGRESS_METRICS = {
    "feeds polled": "newswatch_feed_polls",
    "published": "newswatch_articles_published",
    "enriched": "newswatch_articles_enriched",
    "stored": "newswatch_articles_stored",
    "alerts fired": "newswatch_alerts_fired",
    "delivered": "newswatch_alerts_delivered",
    "failed deliveries": "newswatch_alerts_failed",
    "dead-lettered": "newswatch_dead_lettered",
    "feed errors": "newswatch_feed_errors",
}


def scrape(ports: Iterable[int], timeout_s: float = 1.0) -> dict[str, float]:
    """Sum the progress counters over every child that answers; silent ones count 0."""
    totals = dict.fromkeys(PROGRESS_METRICS, 0.0)
    wanted = {metric: label for label, metric in PROGRESS_METRICS.items()}
    for port in ports:
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=timeout_s).text
        except httpx.HTTPError:
            continue
        for family in text_string_to_metric_families(text):
            label = wanted.get(family.name)
            if label is None:
                continue
            totals[label] += sum(s.value for s in family.samples if s.name.endswith("_total"))
    return totals


FAILED_HINT = ("see `newswatch alerts --failed`; `newswatch alerts resend --failed` "
               "sends them again")


def render(totals: dict[str, float]) -> str:
    """The status line; failed deliveries (sends that failed for good) say where to look."""
    line = " | ".join(f"{label} {int(value)}" for label, value in totals.items())
    if totals.get("failed deliveries"):
        line += f" ({FAILED_HINT})"
    return line


def failed_summary(failed_alerts: int) -> str | None:
    """The summary's line about alerts the database holds as failed for good, if any."""
    if not failed_alerts:
        return None
    return f"{failed_alerts} alert(s) failed for good: {FAILED_HINT}"


class RunOutput:
    """What ``newswatch run`` prints: messages, and a status line that a terminal shows
    updated in place (one line, carriage return) and a pipe or file gets as one line per
    change.

    A closed pipe is not an error: ``newswatch run | tee log`` then Ctrl+C kills tee too,
    and the run must still stop its daemons and the broker instead of dying on
    BrokenPipeError with them orphaned. After the first failed write the output is
    dropped (the stream's descriptor then points at /dev/null, so a later print or the
    interpreter's last flush cannot fail either).
    """

    def __init__(self, stream: TextIO | None = None, *, terminal: bool | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdout
        self.terminal = _isatty(self._stream) if terminal is None else terminal
        self.closed = False
        self._status_open = False

    def say(self, text: str = "") -> None:
        """A message of its own line(s); a status line in place is ended first."""
        self._end_status()
        self._write(text + "\n")

    def status(self, text: str) -> None:
        """Show the status line: in place on a terminal (cut to its width), else a line."""
        if not self.terminal:
            self._write(text + "\n")
            return
        width = max(20, shutil.get_terminal_size().columns - 1)
        line = text if len(text) <= width else text[:width - 1] + "…"
        self._write("\r" + line + "\x1b[K")  # ESC[K: clear what a longer line left
        self._status_open = True

    def _end_status(self) -> None:
        if self._status_open:
            self._status_open = False
            self._write("\n")

    def _write(self, text: str) -> None:
        if self.closed:
            return
        try:
            self._stream.write(text)
            self._stream.flush()
        except (BrokenPipeError, ValueError):  # ValueError: the stream was closed
            self._drop()

    def _drop(self) -> None:
        self.closed = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):  # no descriptor: nothing to redirect
            pass


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (ValueError, AttributeError):
        return False
