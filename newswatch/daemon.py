"""The daemon shell (`Daemon`): one way to run every Newswatch daemon, and its shutdown.

Signal handlers only set a flag (`StopFlag`); the loop owns exit. The first SIGINT/SIGTERM
asks the loop to finish the work in hand, flush, commit and return; a second one exits at
once (exit code 130), for an operator who means it. Start-up connections (`connect`) wait
for a broker or database that is not there yet instead of exiting.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import TypeVar

from newswatch.health import HealthServer, safe_check, start_health_server
from newswatch.metrics import STARTUP_WAITS
from newswatch.retry import RetryPolicy, is_retryable, retry_call
from newswatch.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")


class StopFlag:
    """A thread-safe stop request; `wait` doubles as an interruptible sleep."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._reload = threading.Event()
        # What `connect` is waiting for at start-up: the shell's readiness is red meanwhile.
        self.waiting_for: set[str] = set()

    def stop(self) -> None:
        """Ask the loop to stop. Idempotent."""
        self._event.set()

    @property
    def stopping(self) -> bool:
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; returns True (early) when a stop was requested."""
        return self._event.wait(seconds)

    def request_reload(self) -> None:
        self._reload.set()

    def take_reload(self) -> bool:
        """True once after each SIGHUP: the loop reloads its configuration files then."""
        if self._reload.is_set():
            self._reload.clear()
            return True
        return False


def install_signal_handlers(flag: StopFlag, on_stop: Callable[[], None] | None = None,
                            on_exit_now: Callable[[], None] | None = None) -> None:
    """SIGINT/SIGTERM set ``flag`` (twice: exit now, after ``on_exit_now``); SIGHUP requests
    a reload."""

    def _stop(signum: int, _frame: FrameType | None) -> None:
        if flag.stopping:
            log.warning("second stop signal: exiting at once", extra={"signal": signum})
            if on_exit_now is not None:
                on_exit_now()
            os._exit(130)
        log.info("stop requested; finishing the work in hand", extra={"signal": signum})
        flag.stop()
        if on_stop is not None:
            on_stop()

    def _reload(_signum: int, _frame: FrameType | None) -> None:
        log.info("reload requested")
        flag.request_reload()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGHUP, _reload)


# Reaching a broker or database while a daemon starts: soon after it is back, and never
# giving up (an orchestrator or `newswatch run` may start the daemon before its broker).
CONNECT_RETRY = RetryPolicy(initial_s=0.5, max_s=5.0)


def connect(dependency: str, factory: Callable[[], T], stop: StopFlag, *, stage: str,
            policy: RetryPolicy = CONNECT_RETRY) -> T | None:
    """``factory()`` (a Kafka client, a first query), retried while it raises a retryable
    error (`newswatch.errors`; Kafka factories turn "no broker" into one).

    Logged once per series of attempts, counted in ``newswatch_startup_waits_total``;
    while it waits, the daemon's /readyz is red (``stop.waiting_for``). A stop request
    ends the wait: returns None then. A non-retryable error propagates at once.
    """

    def attempt() -> T:
        try:
            return factory()
        except Exception as error:
            if is_retryable(error):
                STARTUP_WAITS.labels(stage, dependency).inc()
            raise

    stop.waiting_for.add(dependency)
    try:
        return retry_call(attempt, policy, f"{stage}: connecting to {dependency}",
                          wait=stop.wait, logger=log)
    finally:
        stop.waiting_for.discard(dependency)


class Daemon:
    """The shell of every Newswatch daemon process.

    It owns what all six daemons share: the settings they were started with (logging is
    set up from them by `newswatch.cli.main` before any command runs), the signal handlers
    (first SIGINT/SIGTERM: finish the work in hand and commit; second: exit at once; SIGHUP:
    reload), the /metrics, /healthz and /readyz server, readiness (red while `connect`
    waits or any probe given to `ready_when` says no) and the ordered shutdown
    (`close_at_exit`, last registered first). A daemon plugs in its work as ``body``: it
    connects its source and sink (`connect`), runs its handler until ``stop``, returns.

        shell = Daemon("store", settings)
        shell.ready_when(lambda: database_answers(engine))
        return shell.run(lambda: run_store(settings, shell.stop, engine=engine))
    """

    def __init__(self, name: str, settings: Settings, *, stop: StopFlag | None = None
                 ) -> None:
        self.name = name
        self.settings = settings
        self.stop = stop or StopFlag()
        self._ready: list[Callable[[], bool]] = []
        self._alive: list[Callable[[], bool]] = []
        self._on_stop: list[Callable[[], None]] = []
        self._exit = contextlib.ExitStack()
        self.health: HealthServer | None = None

    def ready_when(self, check: Callable[[], bool]) -> None:
        """Add a readiness probe (its dependencies answer); a probe that raises is "no"."""
        self._ready.append(check)

    def alive_when(self, check: Callable[[], bool]) -> None:
        """Add a liveness probe (its worker threads run): /healthz and /readyz go red."""
        self._alive.append(check)

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` at the first stop signal (e.g. tell a server to stop)."""
        self._on_stop.append(callback)

    def close_at_exit(self, close: Callable[[], object]) -> None:
        """Call ``close`` at shutdown, after the body returned or raised."""
        self._exit.callback(close)

    def connect(self, dependency: str, factory: Callable[[], T]) -> T | None:
        """`connect` with this daemon's stop flag and name."""
        return connect(dependency, factory, self.stop, stage=self.name)

    def ready(self) -> bool:
        return not self.stop.waiting_for and all(safe_check(check) for check in self._ready)

    def alive(self) -> bool:
        return all(safe_check(check) for check in self._alive)

    def run(self, body: Callable[[], int | None]) -> int:
        """Install the signal handlers, serve the health endpoints, run ``body`` and shut
        down in order. Returns ``body``'s exit code (None counts as 0)."""
        install_signal_handlers(self.stop, on_stop=self._stopping)
        with self._exit:
            self.health = start_health_server(
                self.settings.metrics_port, self.ready, self.settings.metrics_host,
                alive=self.alive if self._alive else None)
            if self.health is not None:
                self._exit.callback(self.health.stop)
            log.info("%s starting", self.name, extra={"stage": self.name, "pid": os.getpid()})
            try:
                code = body()
            finally:
                log.info("%s stopped", self.name, extra={"stage": self.name})
        return 0 if code is None else code

    def _stopping(self) -> None:
        for callback in self._on_stop:
            callback()
