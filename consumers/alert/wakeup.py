"""Waking the deliverer when the outbox has new rows: in the same process, and across.

Every write that makes an outbox row due (an evaluation that decided alerts, a resend)
calls `notify_outbox` inside its transaction: on PostgreSQL a ``pg_notify`` on
`CHANNEL`, which the server delivers when (and only if) the transaction commits, so a
deliverer never wakes for a row it cannot see yet. The payload is the writer's
``current_schema()``: a listener on another schema of the same server (tests, benches)
ignores it.

`OutboxWakeup` is what the delivery loop waits on. `set` wakes it from the same process
(the evaluator thread of ``newswatch alert``); `listen` adds a thread holding one
PostgreSQL connection in ``LISTEN`` that sets it on each notification, for a deliverer
in its own process (``newswatch alert --role deliver``). On SQLite, which has no
notifications, a deliverer of its own process polls instead (the caller's ``idle_s``).
A notification is only a hint: the loop reads what is due from SQL either way, so a lost
one (listener reconnecting) costs at most one poll interval, never an alert.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine, text

from newswatch.db_errors import short_reason
from newswatch.errors import ServiceUnavailableError
from newswatch.metrics import DELIVERY_WAKEUPS
from newswatch.retry import Attempts, RetryPolicy

log = logging.getLogger(__name__)

CHANNEL = "newswatch_outbox"
# How often the listener thread looks at its stop flag while no notification comes.
LISTEN_TICK_S = 0.5
LISTEN_RETRY = RetryPolicy(initial_s=0.5, max_s=10.0)


def notify_outbox(conn: Connection) -> None:
    """Tell listening deliverers, at commit, that the outbox has new due rows (PostgreSQL;
    nothing on SQLite). Call it inside the transaction that wrote them."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_notify(:channel, current_schema())"),
                     {"channel": CHANNEL})


class OutboxWakeup:
    """An event the delivery loop waits on; thread-safe."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._stopping = threading.Event()
        self._listener: threading.Thread | None = None
        self.listening = False  # a LISTEN connection is open now

    def set(self, source: str = "process") -> None:
        """Wake the loop (``source`` is counted in ``newswatch_delivery_wakeups_total``)."""
        DELIVERY_WAKEUPS.labels(source).inc()
        self._event.set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds`` or until woken; True when woken. Clears the wake-up."""
        woken = self._event.wait(seconds)
        self._event.clear()
        return woken

    def listen(self, engine: Engine) -> None:
        """On PostgreSQL, start the listener thread (see the module docstring); on other
        databases do nothing."""
        if engine.dialect.name != "postgresql" or self._listener is not None:
            return
        self._listener = threading.Thread(target=self._listen_loop, args=(engine,),
                                          name="alert-outbox-listen", daemon=True)
        self._listener.start()

    def close(self) -> None:
        """Stop the listener thread (within `LISTEN_TICK_S`) and wake the loop."""
        self._stopping.set()
        self._event.set()
        if self._listener is not None:
            self._listener.join(timeout=5 * LISTEN_TICK_S)

    def _listen_loop(self, engine: Engine) -> None:
        # One line per outage, every reconnection counted (`newswatch.retry`); the series
        # ends when LISTEN is in place again, not when the connection is next lost.
        outage = Attempts(LISTEN_RETRY, "listening for outbox notifications", logger=log,
                          wait=self._stopping.wait, context={"channel": CHANNEL})
        while not self._stopping.is_set():
            try:
                self._listen_once(engine, on_listening=outage.succeeded)
            except Exception as exc:  # the database went away: poll until it is back
                self.listening = False
                # The driver's first line only: SQLAlchemy's text carries the statement.
                outage.failed(ServiceUnavailableError(short_reason(exc)),
                              "outbox notifications lost; the deliverer polls until the "
                              "database answers again")

    def _listen_once(self, engine: Engine, *, on_listening: Callable[[], None]) -> None:
        """One LISTEN connection, held until it fails or `close`; ``on_listening`` is
        called once it listens."""
        raw = engine.raw_connection()
        try:
            conn: Any = raw.driver_connection  # psycopg.Connection
            conn.autocommit = True
            schema = conn.execute("SELECT current_schema()").fetchone()[0]
            conn.execute(f"LISTEN {CHANNEL}")
            self.listening = True
            on_listening()
            self._event.set()  # rows written while not listening are read now
            log.info("listening for outbox notifications", extra={"channel": CHANNEL})
            while not self._stopping.is_set():
                for note in conn.notifies(timeout=LISTEN_TICK_S):
                    if note.payload == schema:
                        self.set("notify")
                    if self._stopping.is_set():
                        break
        finally:
            self.listening = False
            raw.invalidate()  # a connection in LISTEN state does not go back to the pool
