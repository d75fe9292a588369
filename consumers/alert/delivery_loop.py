"""The delivery loop: sends due outbox rows until stopped, woken when new ones are due.

It runs a `deliver.Deliverer` round (`run_once(wait=False)`: start every send a free
worker and its destination's slot allow, count the ones that finished), then sleeps on
an `wakeup.OutboxWakeup` until the earliest pending row is due, a send finishes (a slot
frees), or it is woken: by the evaluator in the same process, by a PostgreSQL
notification from any process, or, when nothing can wake it (a deliverer of its own on
SQLite), after ``poll_s``. It shares nothing with the evaluator but the database, so a
busy or blocked evaluator delays no send that was already decided.

Two loops on one database (two processes, or a restart overlapping the old one) are
safe: each row is claimed in SQL before it is sent (`Deliverer._claim`). A database that
goes away pauses the loop with backoff, logged once per outage. A stop finishes the sends
in hand (`Deliverer.close`, called by the owner); a row not yet claimed stays in the
outbox for the next start.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from consumers.alert.deliver import Deliverer
from consumers.alert.wakeup import OutboxWakeup
from newswatch.daemon import StopFlag
from newswatch.errors import ServiceUnavailableError
from newswatch.metrics import DELIVERIES_IN_FLIGHT
from newswatch.retry import Attempts, RetryPolicy

log = logging.getLogger(__name__)

# Longest sleep when something will wake the loop anyway (it looks again after it, so
# a retry made due by another process is never later than this).
IDLE_DELIVERY_WAIT_S = 1.0


class DeliveryLoop:
    """Runs ``deliverer`` until ``stop`` (see the module docstring).

    ``woken_in_process``: an evaluator in this process wakes ``wakeup`` for every
    decision; else, unless a PostgreSQL listener is up, the loop polls every ``poll_s``.
    ``on_reload``: called on SIGHUP (a delivery-only process re-reads its channels).
    ``on_round``: called with True after each round that reached the database, False
    after one that did not (the daemon's readiness).
    """

    def __init__(self, deliverer: Deliverer, stop: StopFlag, wakeup: OutboxWakeup, *,
                 woken_in_process: bool, poll_s: float = 0.1,
                 on_reload: Callable[[], object] | None = None,
                 on_round: Callable[[bool], None] = lambda ok: None) -> None:
        self.deliverer = deliverer
        self.stop = stop
        self.wakeup = wakeup
        self.woken_in_process = woken_in_process
        self.poll_s = poll_s
        self.on_reload = on_reload
        self.on_round = on_round
        deliverer.on_slot_free = lambda: wakeup.set("slot")  # a finished send may free a host

    def idle_wait_s(self) -> float:
        """The longest sleep between rounds while nothing is due."""
        if self.woken_in_process or self.wakeup.listening:
            return IDLE_DELIVERY_WAIT_S
        return self.poll_s

    def run(self) -> None:
        # A wake-up ends a backoff early (an evaluator that could write says the database
        # is back); only a stop ends the series. One line per outage, every retry counted.
        outage = Attempts(RetryPolicy(), "delivering alerts", logger=log,
                          wait=lambda s: self.wakeup.wait(s) and self.stop.stopping)
        while not self.stop.stopping:
            if self.on_reload is not None and self.stop.take_reload():
                self.on_reload()
            try:
                stats = self.deliverer.run_once(wait=False)  # a slow host holds no round
                due = self.deliverer.next_due() if not stats.attempts else None
            except ServiceUnavailableError as exc:
                self.on_round(False)
                outage.failed(exc, "delivery paused")
                continue
            outage.succeeded()
            self.on_round(True)
            DELIVERIES_IN_FLIGHT.set(self.deliverer.in_flight())
            if stats.attempts:
                continue
            wait = self.idle_wait_s()
            if due is not None:
                wait = min(wait, max(0.01, (due - datetime.now(UTC)).total_seconds()))
            self.wakeup.wait(wait)
