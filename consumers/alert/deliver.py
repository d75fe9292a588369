"""Delivery from the outbox: the one retry loop, with exponential backoff, jitter and a deadline.

Each `Deliverer.run_once` takes the outbox rows (``alert_sends``) that are due, claims
each one, asks its channel to send, and records the attempt in ``deliveries`` (time,
status, latency, error) together with the row's new state, in one transaction:

- delivered -> ``sent``;
- retryable (429, 5xx, timeout, connection error, SMTP 4xx) -> due again after
  ``backoff * 2**(attempt-1)`` (capped at ``max_backoff``, at least the server's
  Retry-After), jittered to between half and all of that;
- final, or ``max_attempts`` reached, or the next try would be past ``deadline`` after
  the alert was decided -> ``failed`` (listed by ``newswatch alerts --failed``).

Claiming pushes the row's due time ahead by a lease, so two deliverers never send one row
at the same time; a deliverer that dies mid-send leaves the row to be retried when the
lease ends. The state is all in SQL, so a restart goes on where the last run stopped:
an alert decided before a crash is sent after it, once.

Sends run on ``workers`` threads, at most ``per_destination`` (1) to one host at a time
(`consumers.alert.destinations`): a due row whose host is busy stays due and is not even
read until a slot frees, so a slow receiver holds one worker and the rest flow. A
worker sends up to ``chain`` due rows of its destination in turn, claimed together,
stops the chain at the first send that does not succeed, and records the chain's
attempts in one transaction. A deliverer killed mid-chain sends that chain's sends
again after their lease (same alert id and dedup key, as for a kill mid-send). The
delivery loop (`consumers.alert.delivery_loop`) runs rounds without waiting for the
sends they started (``wait=False``); a round counts the sends that finished since the
last one. Any number of deliverers, in one process or several, may share an outbox: the
claim decides which one sends a row.

A send whose record cannot be written (the database went away after the receiver
answered) retries the record, never the send: with backoff, for as long as it takes, so
the row never comes back pending for its lease to send again (issue 16: 217 POSTs for
209 alerts after a 15 s PostgreSQL outage). Only `close` (shutdown) ends that wait; the
row then is sent again after its lease, logged with its alert id.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, bindparam, func, select, tuple_, update

from consumers.alert.channels.base import Notifier, SendResult, retryable
from consumers.alert.destinations import Slots, destination_of
from newswatch.db_errors import unavailable_as_retryable
from newswatch.errors import ServiceUnavailableError
from newswatch.metrics import ALERT_DELIVERY_SECONDS, ALERTS_DELIVERED, ALERTS_FAILED
from newswatch.retry import Attempts, RetryPolicy
from newswatch.utc import as_utc
from schemas import tables
from schemas.alert_payload import AlertPayload
from schemas.rules_file import Delivery

log = logging.getLogger(__name__)

T_ALERTS, T_SENDS, T_DELIVERIES = tables.alerts, tables.alert_sends, tables.deliveries
LEASE = timedelta(minutes=2)
BATCH = 50
# Rows of one destination one worker sends in turn (`Deliverer._claim`), as many as one
# claim reads: each chain costs a claim and a record, two commits that wait for SQLite's
# write lock (and for the CPU, on a loaded machine), so with a backlog at one host chains
# of 10 sent at most 10 alerts per two lock turns and fell seconds behind at 50 alerts/s
# (docs/performance.md, seventh session). A deliverer killed mid-chain sends up to a
# chain again after its lease, with the same alert ids and dedup keys.
CHAIN = BATCH
# Between tries to record a send: short, since the send is done and its row leased.
RECORD_RETRY = RetryPolicy(initial_s=0.2, max_s=2.0, jitter=(1.0, 1.0))

ChannelSource = Callable[[], tuple[Mapping[str, Notifier], Delivery]]


def _count(stats: DeliveryStats, outcome: str) -> None:
    if outcome == "sent":
        stats.sent += 1
    elif outcome == "retry":
        stats.retried += 1
    else:
        stats.failed += 1


def backoff_delay(policy: Delivery, attempt: int, rng: random.Random,
                  retry_after: float | None = None) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
    return RetryPolicy(initial_s=policy.backoff.total_seconds(),
                       max_s=policy.max_backoff.total_seconds()
                       ).delay(attempt - 1, rng=rng, at_least=retry_after)


@dataclass
class DeliveryStats:
    sent: int = 0
    retried: int = 0
    failed: int = 0

    @property
    def attempts(self) -> int:
        return self.sent + self.retried + self.failed


@dataclass(frozen=True)
class _Due:
    alert_id: int
    channel: str
    attempts: int
    destination: str = ""


@dataclass(frozen=True)
class _Alert:
    """What a send of one row needs of its alert."""

    payload: dict[str, Any]
    since: datetime  # decided, or resent: its deadline counts from then


@dataclass(frozen=True)
class _Done:
    """One attempt made, to be recorded."""

    due: _Due
    attempt: int
    now: datetime
    result: SendResult
    outcome: str
    next_at: datetime | None
    error: str | None
    latency_ms: float
    since: datetime


class Deliverer:
    """Sends due outbox rows. ``channels`` returns the notifiers and policy in force."""

    def __init__(self, engine: Engine, channels: ChannelSource, *,
                 rng: random.Random | None = None, workers: int = 4,
                 lease: timedelta = LEASE, batch: int = BATCH,
                 per_destination: int = 1, chain: int = CHAIN) -> None:
        self._engine = engine
        self._channels = channels
        self._rng = rng or random.Random()
        self._lease = lease
        self._batch = batch
        self._chain = chain
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="deliver")
        self._slots = Slots(per_destination, workers)
        self._started: list[Future[list[str]]] = []  # sends of rounds that did not wait
        self._busy_channels: list[str] = []  # channels whose destination was full
        self.on_slot_free: Callable[[], None] = lambda: None  # the daemon's wake-up
        self._closing = threading.Event()

    def close(self) -> None:
        """Wait for sends in flight, then release the threads. Idempotent. Sends waiting
        to be recorded give up (see the module docstring)."""
        self._closing.set()
        self._pool.shutdown(wait=True)

    def run_once(self, now: datetime | None = None, *, wait: bool = True) -> DeliveryStats:
        """Start a send of every due row a free worker and its destination's slot allow.

        ``wait``: return once they are done, counting them. Without: return at once,
        counting the sends of earlier rounds that finished since (the daemon's way, so a
        slow host never holds up the next round).
        """
        moment = now or datetime.now(UTC)
        stats = self._finished()
        channels, policy = self._channels()
        where = {name: destination_of(notifier) for name, notifier in channels.items()}
        full = self._slots.full()
        self._busy_channels = sorted(name for name, dest in where.items() if dest in full)
        if self._slots.free() == 0:
            return stats
        started = [self._pool.submit(self._attempt_chain, chain, channels, policy, moment)
                   for chain in self._claim(moment, where)]
        if wait:
            for future in started:
                for outcome in future.result():
                    _count(stats, outcome)
        else:
            self._started.extend(started)
        return stats

    def in_flight(self) -> int:
        """Sends started and not finished."""
        return self._slots.in_flight()

    def _finished(self) -> DeliveryStats:
        """Count the sends of earlier rounds that ended, and forget them.

        An attempt that raised (the database went away between the claim and the send,
        so nothing was sent) is logged once and dropped: its row stays pending under its
        lease. Raising it here instead would raise it again on every later round, and
        the daemon would pause delivery for good (found by tests/e2e/test_faults.py).
        """
        stats = DeliveryStats()
        still = []
        for future in self._started:
            if not future.done():
                still.append(future)
                continue
            error = future.exception()
            if error is None:
                for outcome in future.result():
                    _count(stats, outcome)
            else:
                log.warning("a delivery attempt ended without a send; its row is sent "
                            "after its lease: %s", error)
        self._started = still
        return stats

    def _attempt_chain(self, chain: Sequence[_Due], channels: Mapping[str, Notifier],
                       policy: Delivery, now: datetime) -> list[str]:
        """Send a chain of rows of one destination in turn, in its slot (see `_claim`).

        The chain stops at the first send that did not succeed (the host is failing or
        slow: its other rows go back to the normal retry flow), at `close`, or when half
        the lease has passed (a row must be sent well within its lease, or another
        deliverer could take it); the rows not tried are released, due at once."""
        done: list[_Done] = []
        began = time.monotonic()
        try:
            try:
                alerts = self._alerts_of(chain)
            except BaseException:
                self._release(chain, now)
                raise
            for position, due in enumerate(chain):
                if position and (done[-1].outcome != "sent" or self._closing.is_set()
                                 or time.monotonic() - began > self._lease.total_seconds() / 2):
                    self._release(chain[position:], now)
                    break
                moment = now + timedelta(seconds=time.monotonic() - began)
                try:
                    done.append(self._send(due, alerts[(due.alert_id, due.channel)],
                                           channels, policy, moment))
                except BaseException:
                    self._release(chain[position + 1:], now)
                    raise
        finally:
            try:
                if done:  # what was sent is recorded, also when a later send raised
                    self._record_surely(done)
            finally:
                self._slots.give(chain[0].destination)
                self.on_slot_free()
        return [each.outcome for each in done]

    def _release(self, rows: Sequence[_Due], claimed_at: datetime) -> None:
        """Give claimed rows not tried back to the outbox, due at their claim time (only
        while still under this claim's lease). A database away leaves them leased: sent
        when the lease ends, never twice."""
        if not rows:
            return
        leased = claimed_at + self._lease
        try:
            with unavailable_as_retryable(), self._engine.begin() as conn:
                for due in rows:
                    conn.execute(
                        update(T_SENDS)
                        .where(T_SENDS.c.alert_id == due.alert_id,
                               T_SENDS.c.channel == due.channel,
                               T_SENDS.c.status == "pending",
                               T_SENDS.c.next_attempt_at == leased)
                        .values(next_attempt_at=claimed_at))
        except ServiceUnavailableError as exc:
            log.warning("could not give claimed deliveries back; they are sent after "
                        "their lease: %s", exc, extra={"rows": len(rows)})

    def next_due(self) -> datetime | None:
        """When the earliest pending row that could be started is due (None when nothing
        is pending, or no worker is free: `on_slot_free` says when one is)."""
        if self._slots.free() == 0:
            return None
        with unavailable_as_retryable(), self._engine.connect() as conn:
            value = conn.execute(
                select(T_SENDS.c.next_attempt_at).where(T_SENDS.c.status == "pending")
                .where(T_SENDS.c.channel.not_in(self._busy_channels))
                .order_by(T_SENDS.c.next_attempt_at).limit(1)
            ).scalar()
        return None if value is None else as_utc(value)

    def _claim(self, now: datetime, where: Mapping[str, str] | None = None
               ) -> list[list[_Due]]:
        """Claim due rows in chains: each chain holds up to ``chain`` rows of one
        destination, sent in turn by one worker in the slot it took (see `Slots`).

        Rows of a channel whose destination is full are not read at all: fifty due rows
        for a slow host must not fill the batch and starve the others. A chain saves a
        claim and two thread hand-offs per send: with one slot per destination, a busy
        host's sends used to go one claim, one wake-up of a worker and one of the loop
        at a time, and on a loaded machine each hand-off waited for the CPU (50 alerts/s
        to one webhook fell seconds behind; docs/performance.md, fifth session).
        """
        chains: dict[str, list[_Due]] = {}
        claimed: set[tuple[int, str]] = set()
        try:
            with unavailable_as_retryable(), self._engine.begin() as conn:
                query = (select(T_SENDS.c.alert_id, T_SENDS.c.channel, T_SENDS.c.attempts)
                         .where(T_SENDS.c.status == "pending", T_SENDS.c.next_attempt_at <= now)
                         .where(T_SENDS.c.channel.not_in(self._busy_channels))
                         .order_by(T_SENDS.c.next_attempt_at, T_SENDS.c.alert_id)
                         .limit(self._batch))
                if conn.dialect.name == "postgresql":
                    # Locked in this order, so the one UPDATE below waits for no other
                    # deliverer (and cannot deadlock with one); rows another deliverer
                    # is claiming are skipped, as its claim would win them anyway.
                    query = query.with_for_update(skip_locked=True)
                for row in conn.execute(query).all():
                    destination = (where or {}).get(row.channel, f"channel:{row.channel}")
                    chain = chains.get(destination)
                    if chain is None:
                        if not self._slots.take(destination):
                            continue  # stays due: sent when its destination has a free slot
                        chain = chains[destination] = []
                    elif len(chain) >= self._chain:
                        continue
                    chain.append(_Due(int(row.alert_id), row.channel, int(row.attempts),
                                      destination))
                keys = [(due.alert_id, due.channel) for c in chains.values() for due in c]
                if keys:
                    # One statement for the whole claim (it was one per row, each a round
                    # trip that waited for the CPU on a loaded machine). The conditions
                    # are checked again row by row: a row another deliverer claimed since
                    # the SELECT (SQLite) is not returned, so not sent by this one.
                    claimed = {(int(a), c) for a, c in conn.execute(
                        update(T_SENDS)
                        .where(tuple_(T_SENDS.c.alert_id, T_SENDS.c.channel).in_(keys),
                               T_SENDS.c.status == "pending",
                               T_SENDS.c.next_attempt_at <= now)
                        .values(next_attempt_at=now + self._lease)
                        .returning(T_SENDS.c.alert_id, T_SENDS.c.channel))}
        except BaseException:
            for destination in chains:
                self._slots.give(destination)
            raise
        out: list[list[_Due]] = []
        for destination, rows in chains.items():
            mine = [due for due in rows if (due.alert_id, due.channel) in claimed]
            if mine:
                out.append(mine)
            else:
                self._slots.give(destination)
        return out

    def _alerts_of(self, chain: Sequence[_Due]) -> dict[tuple[int, str], _Alert]:
        """The payload, decision time and last resend of every row of ``chain``, by
        (alert id, channel), in one query (it was one per send)."""
        # A resend (outbox.resend_alert) restarts the deadline: it counts from then.
        resent = (select(func.max(T_DELIVERIES.c.attempted_at))
                  .where(T_DELIVERIES.c.alert_id == T_SENDS.c.alert_id,
                         T_DELIVERIES.c.channel == T_SENDS.c.channel,
                         T_DELIVERIES.c.outcome == "requeued").scalar_subquery())
        keys = [(due.alert_id, due.channel) for due in chain]
        with unavailable_as_retryable(), self._engine.connect() as conn:
            rows = conn.execute(
                select(T_SENDS.c.alert_id, T_SENDS.c.channel, T_ALERTS.c.payload,
                       T_ALERTS.c.created_at, resent.label("resent_at"))
                .join(T_ALERTS, T_ALERTS.c.id == T_SENDS.c.alert_id)
                .where(tuple_(T_SENDS.c.alert_id, T_SENDS.c.channel).in_(keys))).all()
        return {(int(row.alert_id), row.channel): _Alert(
                    row.payload, as_utc(row.resent_at or row.created_at)) for row in rows}

    def _send(self, due: _Due, alert: _Alert, channels: Mapping[str, Notifier],
              policy: Delivery, now: datetime) -> _Done:
        """Send one row (not recorded yet: `_record_surely`); ``alert`` is its `_alerts_of`."""
        since = alert.since
        payload = AlertPayload.model_validate({**alert.payload, "alert_id": due.alert_id})
        notifier = channels.get(due.channel)
        started = time.perf_counter()
        if notifier is None:
            result = retryable("config", f"channel '{due.channel}' is not in the rules file")
        else:
            try:
                result = notifier.send(payload)
            except Exception as exc:  # a notifier bug must not stop the other deliveries
                log.exception("channel raised", extra={"channel": due.channel})
                result = retryable("error", f"{type(exc).__name__}: {exc}")
        latency_ms = (time.perf_counter() - started) * 1000
        attempt = due.attempts + 1
        outcome, next_at, error = self._next(result, attempt, policy, now, latency_ms, since)
        return _Done(due, attempt, now, result, outcome, next_at, error, latency_ms, since)

    @staticmethod
    def _report(done: _Done) -> None:
        """Log and count a recorded attempt."""
        due, outcome = done.due, done.outcome
        fields = {"alert_id": due.alert_id, "channel": due.channel, "attempt": done.attempt,
                  "status": done.result.status, "latency_ms": round(done.latency_ms, 1)}
        if outcome == "sent":
            ALERTS_DELIVERED.labels(due.channel).inc()
            ALERT_DELIVERY_SECONDS.labels(due.channel).observe(
                max(0.0, (datetime.now(UTC) - done.since).total_seconds()))
            log.info("alert delivered", extra=fields)
        elif outcome == "retry":
            log.warning("alert delivery failed; will retry",
                        extra={**fields, "error": done.error, "next_attempt_at": done.next_at})
        else:
            ALERTS_FAILED.labels(due.channel).inc()
            log.error("alert delivery failed for good", extra={**fields, "error": done.error})

    def _next(self, result: SendResult, attempt: int, policy: Delivery, now: datetime,
              latency_ms: float, created_at: datetime
              ) -> tuple[str, datetime | None, str | None]:
        if result.ok:
            return "sent", None, None
        if not result.retry:
            return "failed", None, result.error
        if attempt >= policy.max_attempts:
            return "failed", None, f"{result.error} (gave up after {attempt} attempts)"
        delay = backoff_delay(policy, attempt, self._rng, result.retry_after)
        next_at = now + timedelta(milliseconds=latency_ms, seconds=delay)
        if next_at > created_at + policy.deadline:
            return "failed", None, f"{result.error} (deadline passed after {attempt} attempts)"
        return "retry", next_at, result.error

    def _record_surely(self, done: Sequence[_Done]) -> None:
        """`_record` of ``done`` (one transaction), retried until the database answers:
        the sends are done, and a lost record would make them be sent again when their
        lease ends."""
        first = done[0].due
        where = {"alert_id": first.alert_id, "channel": first.channel, "sends": len(done)}
        attempts = Attempts(RECORD_RETRY, "recording a delivery", wait=self._closing.wait,
                            logger=log, context=where)
        while True:
            try:
                self._record(done)
            except ServiceUnavailableError as exc:
                if self._closing.is_set():
                    log.error("shutting down with a delivery done but not recorded; it "
                              "will be sent again after its lease", extra=where)
                    raise
                # One line per outage, not per try; the wait ends early at `close`.
                attempts.failed(exc, "recording a delivery failed; retrying the record "
                                     "(not the send) until the database answers")
                continue
            attempts.succeeded()
            for each in done:
                self._report(each)
            return

    def _record(self, done: Sequence[_Done]) -> None:
        """Every attempt of ``done`` and its row's new state, in one transaction of a
        few statements, whatever the chain's length (a chain costs one commit: on SQLite
        each commit is a disk flush, ~5 ms here, and one per send held a deliverer under
        100 sends/s; and five statements per send, each a round trip to the server that
        waited for the CPU on a loaded machine, made a chain of 10 a third of a second:
        docs/performance.md).

        The alert rows are locked first, in id order. Two channels of one alert finish in
        parallel threads; without the lock each transaction still saw the other's row as
        pending (READ COMMITTED) and neither marked the alert sent, so it stayed
        'pending' forever (found by tests/e2e/test_faults.py); in id order, because two
        chains locking the same alerts in another order could deadlock on PostgreSQL.
        SQLite serialises writers anyway and has no FOR UPDATE; SQLAlchemy leaves it out
        there."""
        ids = sorted({each.due.alert_id for each in done})
        finished: dict[int, datetime] = {}  # alert id -> when its last row here ended
        attempts, states = [], []
        for each in done:
            status = {"sent": "sent", "retry": "pending", "failed": "failed"}[each.outcome]
            ended = each.now + timedelta(milliseconds=each.latency_ms)
            attempts.append({
                "alert_id": each.due.alert_id, "channel": each.due.channel,
                "attempt": each.attempt, "attempted_at": each.now, "outcome": each.outcome,
                "status": each.result.status[:64], "latency_ms": each.latency_ms,
                "error": each.error})
            states.append({"k_alert": each.due.alert_id, "k_channel": each.due.channel,
                           "v_status": status, "v_attempts": each.attempt,
                           "v_next": each.next_at, "v_error": each.error,
                           "v_updated": ended})
            if status != "pending":
                finished[each.due.alert_id] = max(ended, finished.get(each.due.alert_id,
                                                                      ended))
        with unavailable_as_retryable(), self._engine.begin() as conn:
            conn.execute(select(T_ALERTS.c.id).where(T_ALERTS.c.id.in_(ids))
                         .order_by(T_ALERTS.c.id).with_for_update())
            conn.execute(T_DELIVERIES.insert(), attempts)
            conn.execute(
                update(T_SENDS)
                .where(T_SENDS.c.alert_id == bindparam("k_alert"),
                       T_SENDS.c.channel == bindparam("k_channel"))
                .values(status=bindparam("v_status"), attempts=bindparam("v_attempts"),
                        next_attempt_at=bindparam("v_next"), last_error=bindparam("v_error"),
                        updated_at=bindparam("v_updated")), states)
            if not finished:
                return
            # An alert is done when none of its rows (of any channel) is pending.
            open_or_failed = conn.execute(
                select(T_SENDS.c.alert_id, T_SENDS.c.status).distinct()
                .where(T_SENDS.c.alert_id.in_(sorted(finished)),
                       T_SENDS.c.status.in_(("pending", "failed")))).all()
            pending = {int(a) for a, status in open_or_failed if status == "pending"}
            failed = {int(a) for a, status in open_or_failed if status == "failed"}
            ends = [{"k_alert": alert_id, "v_status": "failed" if alert_id in failed
                     else "sent", "v_finished": at}
                    for alert_id, at in sorted(finished.items()) if alert_id not in pending]
            if ends:
                conn.execute(
                    update(T_ALERTS).where(T_ALERTS.c.id == bindparam("k_alert"))
                    .values(status=bindparam("v_status"),
                            finished_at=bindparam("v_finished")), ends)
