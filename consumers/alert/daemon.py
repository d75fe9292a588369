"""``newswatch alert``: evaluate rules on new topic hits, deliver from the outbox, repeat.

Two loops share a `StopFlag`, and only the database otherwise:

- the evaluator (this thread): every ``alert_poll_interval_s``, counted from the start
  of the last one (at once while hits are waiting), one `outbox.run_tick` decides
  alerts and advances the watermark in one transaction, then wakes the deliverer;
- the deliverer (`delivery_loop.DeliveryLoop`, a thread): sends due outbox rows
  (`deliver.Deliverer`), sleeping until the next row is due or it is woken.

``role`` runs both (``all``, the default) or one of them: ``evaluate`` decides alerts
and sends nothing; ``deliver`` sends what any evaluator decided and compiles no rule (it
reads only the channels and the delivery policy of the rules file), woken by PostgreSQL
notifications or polling SQLite every ``delivery_poll_s``. A deliverer in a process of
its own is what keeps webhooks prompt while evaluation is busy: threads of one process
take turns on Python's interpreter lock, so a long evaluation slowed every send beside
it (``newswatch run`` starts the two roles as two processes; docs/alerts.md).

SIGHUP reloads the rules file, keeping the rules in force when the new file is invalid.
An unexpected error in either loop is logged, stops the other loop and is raised from
`run` (the process exits non-zero, for its supervisor to restart); until then `alive`
is False, which turns /healthz red (issue 16: a dead evaluator behind a green /healthz).
SIGTERM/SIGINT finish the evaluation and the sends in hand, then return; whatever was
decided and not yet sent is in the outbox for the next start. A database that goes away
is waited for with backoff, logged once per outage.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import Engine

from consumers.alert.deliver import Deliverer
from consumers.alert.delivery_loop import DeliveryLoop
from consumers.alert.outbox import ConcurrentEvaluationError, run_tick, skip_history
from consumers.alert.ruleset import RulesHolder
from consumers.alert.wakeup import OutboxWakeup
from newswatch.daemon import StopFlag
from newswatch.errors import ServiceUnavailableError
from newswatch.metrics import ALERTS_FIRED
from newswatch.retry import Attempts, RetryPolicy

log = logging.getLogger(__name__)

ROLES = ("all", "evaluate", "deliver")
# Allocations between two youngest-generation collections (Python's default is 700).
GC_YOUNG_THRESHOLD = 100_000


def settle_heap() -> None:
    """Move the objects alive now (the compiled rules, their index) out of the cyclic
    garbage collector's scans: with 10,000 rules, collections that walked them all over
    again took about a third of each evaluation (bench/bench_alert.py). Objects made
    later are collected as usual; `gc.unfreeze` before a rules reload lets the old rule
    set go.

    Collections are also made rarer: an evaluation of 1,000 hits with 10,000 rules makes
    a few hundred thousand short-lived objects, and at Python's default threshold ran
    3,000 collections, 3 of them over the whole heap of kept windows and groups (1.4 s
    of 6.5 s); at `GC_YOUNG_THRESHOLD` 19 collections, 0.2 s. Our objects are freed by
    reference counting; the collector is only there for cycles, which we do not make."""
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, oldest)


Role = Literal["all", "evaluate", "deliver"]


class AlertDaemon:
    """The evaluator and deliverer loops of ``role``; `run` returns when ``stop`` is set."""

    def __init__(self, engine: Engine, holder: RulesHolder, stop: StopFlag, *,
                 interval_s: float = 0.2, deliverer: Deliverer | None = None,
                 role: Role = "all", delivery_poll_s: float = 0.1) -> None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        self.engine = engine
        self.holder = holder
        self.stop = stop
        self.interval_s = interval_s
        self.role = role
        self.healthy = False
        self.wakeup = OutboxWakeup()
        self.delivery: DeliveryLoop | None = None
        if role != "evaluate":
            self.delivery = DeliveryLoop(
                deliverer or Deliverer(engine, holder.channels), stop, self.wakeup,
                woken_in_process=role == "all", poll_s=delivery_poll_s,
                on_reload=holder.reload if role == "deliver" else None,
                on_round=self._delivery_round if role == "deliver" else lambda ok: None)
        self._died: list[BaseException] = []
        self._sender: threading.Thread | None = None

    @property
    def deliverer(self) -> Deliverer | None:
        return None if self.delivery is None else self.delivery.deliverer

    def alive(self) -> bool:
        """False once a loop died (or the delivery thread is gone while running)."""
        sender = self._sender
        return not self._died and (sender is None or sender.is_alive() or self.stop.stopping)

    def run(self, *, from_now: bool = False) -> None:
        """Run until stopped. ``from_now`` skips hits stored before the first start."""
        if from_now and self.role != "deliver":
            log.info("starting after the newest stored hit",
                     extra={"watermark": skip_history(self.engine, datetime.now(UTC))})
        delivery = self.delivery
        if delivery is not None:
            self.wakeup.listen(self.engine)  # PostgreSQL: woken by other processes too
            log.info("delivering alerts", extra={"role": self.role,
                                                 "dialect": self.engine.dialect.name})
        try:
            if self.role == "deliver":
                assert delivery is not None
                self._guarded(delivery.run, "deliver")
            else:
                if delivery is not None:
                    self._sender = threading.Thread(
                        target=self._guarded, args=(delivery.run, "deliver"),
                        name="alert-deliver")
                    self._sender.start()
                self._guarded(self._evaluate_loop, "evaluate")
        finally:
            self.wakeup.close()
            if self._sender is not None:
                self._sender.join()
            if delivery is not None:
                delivery.deliverer.close()
        if self._died:
            raise self._died[0]

    def _delivery_round(self, ok: bool) -> None:
        self.healthy = ok

    def _guarded(self, loop: Callable[[], None], name: str) -> None:
        """Run ``loop``; when it raises, record it and stop the other loop too."""
        try:
            loop()
        except BaseException as exc:
            log.critical("alert %s loop died; stopping the daemon", name, exc_info=True,
                         extra={"loop": name})
            self._died.append(exc)
            self.healthy = False
            self.stop.stop()
            self.wakeup.set("stop")

    def _evaluate_loop(self) -> None:
        # One outage is logged once and every retry counted (`newswatch.retry`).
        outage = Attempts(RetryPolicy(), "evaluating alerts", wait=self.stop.wait,
                          logger=log)
        rules = self.holder.current.rules
        settle_heap()
        log.info("evaluating alert rules", extra={"rules": len(rules),
                                                  "rules_file": str(self.holder.current.path)})
        while not self.stop.stopping:
            if self.stop.take_reload():
                gc.unfreeze()  # the old rules may be collected once replaced
                self.holder.reload()
                settle_heap()
            started = time.monotonic()
            try:
                result = run_tick(self.engine, self.holder.current.rules, datetime.now(UTC))
            except (ServiceUnavailableError, ConcurrentEvaluationError) as exc:
                self.healthy = False
                outage.failed(exc, "evaluation failed")
                continue
            outage.succeeded()
            self.healthy = True
            for alert_id, rule in result.alerts:
                ALERTS_FIRED.labels(rule).inc()
                log.info("alert decided", extra={"alert_id": alert_id, "rule": rule})
            if result.alerts and self.delivery is not None:
                self.wakeup.set()
            if not result.more:
                # The interval runs from this evaluation's start: a hit committed during
                # a long evaluation (a loaded machine) waited for it, then for a whole
                # interval more, before the evaluation that took it began.
                self.stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))
