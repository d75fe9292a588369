"""Shutdown for long-running daemons: signal handlers only set a flag; the loop owns exit.

The first SIGINT/SIGTERM asks the loop to finish the work in hand, flush, commit and
return; a second one exits at once (exit code 130), for an operator who means it.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType

log = logging.getLogger(__name__)


class StopFlag:
    """A thread-safe stop request; `wait` doubles as an interruptible sleep."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._reload = threading.Event()

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


def install_signal_handlers(flag: StopFlag, on_stop: Callable[[], None] | None = None) -> None:
    """SIGINT/SIGTERM set ``flag`` (twice: exit now); SIGHUP requests a reload."""

    def _stop(signum: int, _frame: FrameType | None) -> None:
        if flag.stopping:
            log.warning("second stop signal: exiting at once", extra={"signal": signum})
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
