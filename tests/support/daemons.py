"""A Newswatch daemon as a child process: started, watched, signalled, stopped.

The tests of SIGTERM mid-work, the end-to-end and fault tests and the benchmarks all run
``python -m newswatch.cli <command>`` the same way: in a session of its own (a Ctrl+C
meant for pytest or the bench reaches it only through `stop`, in order), stdin closed,
stdout and stderr appended to one log file with a marker line per start, so a daemon may
be started again after it died and its log still reads in order.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.support.waits import WaitTimeoutError, wait_for

REPO = Path(__file__).resolve().parent.parent.parent
_START_MARK = "===== start"


class DaemonExitedError(AssertionError):
    """A daemon that should be running has exited (the message holds its log's end)."""


class DaemonProcess:
    """``newswatch <argv>`` as a child process (``name`` names it in messages)."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str],
                 log_path: Path, cwd: Path = REPO) -> None:
        self.name = name
        self.argv = tuple(argv)
        self.env = dict(env)
        self.log_path = log_path
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0

    def start(self) -> DaemonProcess:
        assert not self.running(), f"{self.name} is already running"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"\n{_START_MARK} {self.starts + 1} at {time.strftime('%H:%M:%S')} "
                      "=====\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "newswatch.cli", *self.argv],
                env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)
        self.starts += 1
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} was never started"
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def exit_code(self) -> int | None:
        """The exit code when the process ended, else None (also when never started)."""
        return None if self.process is None else self.process.poll()

    def check(self) -> None:
        """Raise `DaemonExitedError`, with the end of the log, when it has exited."""
        code = self.exit_code()
        if self.starts and code is not None:
            raise DaemonExitedError(f"{self.name} exited with code {code}:\n{self.tail(60)}")

    def log_text(self) -> str:
        """What the current (latest) run has logged so far."""
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace").rsplit(_START_MARK, 1)[-1]

    def logged(self, text: str) -> bool:
        return text in self.log_text()

    def wait_log(self, text: str, timeout_s: float = 20.0) -> None:
        """Wait until the current run logged ``text``; fail at once if it exits first."""
        wait_for(lambda: self.logged(text), timeout_s, f"{self.name} to log {text!r}",
                 check=self.check, detail=lambda: self.tail(), interval_s=0.05)

    def send(self, sig: int) -> None:
        assert self.process is not None, f"{self.name} was never started"
        self.process.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed or committed."""
        assert self.process is not None, f"{self.name} was never started"
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.kills += 1
        self.process.wait(timeout=30)

    def stop(self, timeout_s: float = 30.0, *, signalled: bool = False) -> int | None:
        """SIGTERM (unless ``signalled`` already) and wait for the daemon's own clean
        shutdown; SIGKILL after the bound (then None). Idempotent. A second SIGTERM would
        mean "exit at once", so it is never sent twice."""
        if self.process is None:
            return None
        if self.process.poll() is None and not signalled:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
            return None

    def tail(self, lines: int = 25) -> str:
        if not self.log_path.exists():
            return "(no log)"
        content = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(content[-lines:]) or "(empty log)"


def stop_all(daemons: Sequence[DaemonProcess], timeout_s: float = 30.0
             ) -> dict[str, int | None]:
    """SIGTERM every running daemon at once (they shut down side by side), then wait for
    each; returns each one's exit code (None: killed after the bound)."""
    for daemon in daemons:
        if daemon.running():
            daemon.send(signal.SIGTERM)
    return {daemon.name: daemon.stop(timeout_s, signalled=True) for daemon in daemons}


def processes_of(state: Path) -> list[int]:
    """Every live process started for a `newswatch run` whose state folder is ``state``:
    its environment names the folder (the supervised daemons and the broker inherit it,
    though each runs in a session of its own), or its command line does (the broker's
    config file)."""
    marker = str(state).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            cmdline = (entry / "cmdline").read_bytes()
            status = (entry / "status").read_text()
        except OSError:
            continue
        if "\nState:\tZ" in status:  # a zombie is dead, only not yet reaped
            continue
        if b"NEWSWATCH_STATE_DIR=" + marker + b"\0" in environ or marker in cmdline:
            found.append(int(entry.name))
    return found


def kill_processes_of(state: Path, timeout_s: float = 30.0) -> list[int]:
    """SIGKILL every process of `processes_of` (again each round: a supervisor killed
    mid-restart may have started one more) until none is left; returns the survivors
    after ``timeout_s`` (empty when all are gone)."""
    def gone() -> bool:
        for pid in processes_of(state):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return not processes_of(state)

    try:
        wait_for(gone, timeout_s, f"every process of {state} to be killed", interval_s=0.2)
    except WaitTimeoutError:
        return processes_of(state)
    return []
