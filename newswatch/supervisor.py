"""Supervise the pipeline's daemons as child processes: start, restart with backoff, stop.

A crashed child is restarted after a growing delay (`RESTART_BACKOFF` of `newswatch.retry`:
1 s doubling to 60 s, no jitter; reset after it has run for a minute) and the crash is
shown with the tail of its log. `stop_all` sends SIGTERM, waits for the children's own
clean shutdown, and kills what outlives the bound.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from newswatch.retry import RetryPolicy

log = logging.getLogger(__name__)

STABLE_AFTER_S = 60.0
RESTART_BACKOFF = RetryPolicy(initial_s=1.0, max_s=60.0, jitter=(1.0, 1.0))


@dataclass
class ChildSpec:
    """One daemon: its name, command line, extra environment and log file."""

    name: str
    argv: Sequence[str]
    env: dict[str, str] = field(default_factory=dict)
    log_path: Path | None = None


@dataclass
class Child:
    spec: ChildSpec
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    next_start_at: float = 0.0
    crashes_in_a_row: int = 0  # since it last ran for STABLE_AFTER_S: the backoff's attempt
    crashes: list[str] = field(default_factory=list)


class Supervisor:
    """Keeps every child running until `stop_all`."""

    def __init__(self, specs: Sequence[ChildSpec]) -> None:
        self.children = [Child(spec) for spec in specs]
        self._stopping = False

    def start_all(self) -> None:
        for child in self.children:
            self._start(child)

    def _start(self, child: Child) -> None:
        spec = child.spec
        stderr: int | object = subprocess.DEVNULL
        if spec.log_path is not None:
            spec.log_path.parent.mkdir(parents=True, exist_ok=True)
            stderr = spec.log_path.open("ab")
        child.process = subprocess.Popen(
            list(spec.argv), env={**os.environ, **spec.env}, stdin=subprocess.DEVNULL,
            stderr=stderr,  # type: ignore[arg-type]
            # Own process group: the terminal's Ctrl+C reaches the supervisor only, which
            # then stops the children in order instead of all of them dying at once.
            start_new_session=True,
        )
        if spec.log_path is not None:
            stderr.close()  # type: ignore[union-attr]
        child.started_at = time.monotonic()
        log.info("started %s", spec.name, extra={"child": spec.name, "pid": child.process.pid})

    def check(self) -> list[str]:
        """Restart crashed children whose backoff elapsed; returns crash reports to show."""
        reports = []
        now = time.monotonic()
        for child in self.children:
            process = child.process
            if process is None:
                if now >= child.next_start_at and not self._stopping:
                    self._start(child)
                continue
            code = process.poll()
            if code is None:
                if now - child.started_at > STABLE_AFTER_S:
                    child.crashes_in_a_row = 0
                continue
            if self._stopping:
                continue
            child.process = None
            child.restarts += 1
            delay = RESTART_BACKOFF.delay(child.crashes_in_a_row)
            child.crashes_in_a_row += 1
            report = (f"{child.spec.name} exited with code {code}; restarting in "
                      f"{delay:.0f}s (restart {child.restarts})"
                      + _tail(child.spec.log_path))
            child.crashes.append(report)
            reports.append(report)
            log.error("child crashed", extra={"child": child.spec.name, "code": code})
            child.next_start_at = now + delay
        return reports

    def stop_all(self, timeout_s: float = 30.0) -> dict[str, int | None]:
        """SIGTERM every child, wait up to ``timeout_s``, SIGKILL the rest; exit codes."""
        self._stopping = True
        for child in self.children:
            if child.process is not None and child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        codes: dict[str, int | None] = {}
        for child in self.children:
            if child.process is None:
                codes[child.spec.name] = None
                continue
            try:
                codes[child.spec.name] = child.process.wait(
                    timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("child did not stop in time, killing", extra={"child": child.spec.name})
                child.process.kill()
                codes[child.spec.name] = child.process.wait()
        return codes


def _tail(path: Path | None, lines: int = 8) -> str:
    if path is None or not path.exists():
        return ""
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - 8192))
        text = handle.read().decode("utf-8", errors="replace")
    tail = "\n    ".join(text.splitlines()[-lines:])
    return f"\n    {tail}" if tail else ""
