"""Feed leases: several producer processes on one database, no feed refreshed twice.

A producer refreshes a feed only while it holds that feed's lease. A lease lasts
``producer_lease_s`` (15 s by default) and is renewed by its holder every third of that
while the refresh runs, so only a holder that died, froze or lost the database loses it;
its feeds are then taken over by the others once the lease ends (a kill -9 costs at most
one lease period before its feeds are polled again).

- PostgreSQL (`RowLeases`): each feed row carries its lease (``lease_owner``,
  ``lease_expires_at``, on the database clock so hosts' clocks do not matter). A claim is
  one short transaction: ``SELECT ... FOR UPDATE SKIP LOCKED`` of the due feeds whose
  lease is free, then an UPDATE that takes them; two producers claiming at once never wait
  for each other and never get the same feed. Due-ness is checked again in that query, so
  a feed another producer has just refreshed (and rescheduled) is not claimed again.
- SQLite (`WriterLease`): SQLite has one writer at a time, so sharing the feeds would only
  make producers queue for the write lock. One row of ``producer_leases`` names the single
  producer that polls; the others stand by and take over when its lease ends.

A lease whose owner was a process of this host (and PID namespace) that has exited is
free at once (`dead_here`): a producer restarted after a kill -9, or its neighbour, need
not wait for the lease to end. Elsewhere the end of the lease is the bound.

The holder releases a feed's lease after the refresh has recorded its outcome (in its own
transaction), and every lease it holds when it stops.

Fencing. A producer can lose a lease without knowing it: frozen (SIGSTOP, a stalled VM) or
cut off from the database for a lease period, then resumed, its workers would carry on
with feeds another producer holds now (a worker resumed with a feed it had claimed before
the freeze polled it beside the new holder: tests/test_producer_lease.py). So a refresh does
each step that reaches outside only under its lease, and `producers.refresh` skips the
rest of a refresh whose step was fenced off (`LeaseLapsedError`: logged with the feed,
counted in ``newswatch_producer_lease_fenced_total``); the feed is left to its new holder.

- The poll: `fence` runs right before the request's first byte is written (a hook of
  `producers.fetch`, on every redirect hop too). It does no I/O: it compares
  ``time.monotonic()`` with the feed's local deadline, the monotonic reading taken
  *before* the claim or renewal that last set the lease, plus ``lease_s``, minus a margin
  of `FENCE_MARGIN` of it. Every lease end is computed from a clock reading taken after
  ours (PostgreSQL's ``now()`` of the claiming or renewing transaction; on SQLite our
  wall clock, read after the monotonic one), and another producer takes the lease only
  once its own reading of that clock is past the end; so the local deadline falls at
  least the margin before anyone else can poll the feed. This assumes the clocks run at
  the same rate (NTP slews by at most 0.05 %, the margin is 20 %) and the clock a lease
  end is judged by (PostgreSQL's host; for SQLite, the one host whose producers share the
  file) is not stepped forward by more than the margin during a lease.
- What remains: a pause *before* the check is caught by it (on resume the deadline has
  passed). A pause *between* the check and the write sends the request late; that is
  harmless while it is shorter than the margin, so the residual risk is a freeze longer
  than ``lease_s / 5`` (3 s at the default) that begins in the fraction of a millisecond
  between the check and the socket write of the request headers (h11 formats them, one
  ``send``: 69 us median, 173 us p99 measured under load), instead of in the queue wait,
  state read and connection set-up before the check, where the flake was. A request
  sent just before a freeze is not recalled: a server slower to answer than what was
  left of the lease (at least the margin) may still be serving it when the next holder's
  poll comes. A producer cut off from the database (not frozen) keeps its deadlines only
  while its renewals succeed: a worker whose lease could not be renewed skips its poll,
  and the released feed is claimed again on a later scan.
- The publish: `fence` again, then the publishing mark is written under the lease (next
  point). A freeze between that write and Kafka's ack remains (docs/reliability.md).
- The writes: every write of a feed's state by a refresh (the publishing mark, the
  outcome, a recovered publish) carries `write_fence`, a condition in the UPDATE itself
  that this owner still holds an unexpired lease (PostgreSQL: the row's ``lease_owner``
  and ``lease_expires_at > now()``, evaluated under the row lock, so a concurrent claim
  either finds the lease held or has taken it first; SQLite: the writer-lease row, under
  SQLite's one write lock). A stale holder's late write matches no row and its whole
  transaction is rolled back: it cannot clear the new holder's publishing mark or put
  back an older ETag and schedule. The fencing token is the owner id with, on SQLite, the
  tenure. The owner id is unique to the process (its random part), and a process never
  refreshes one feed twice at once (the daemon hands a feed to one worker at a time):
  on PostgreSQL, where a process claims a feed only when no worker of its own has it,
  "this owner holds an unexpired lease on the row" holds only in the tenure the refresh
  was claimed in, or in that one renewed after it lapsed with nobody claiming the feed
  between (then nobody else polled it). SQLite's one lease covers every feed, so a
  process may hold it again, after another producer held it, while a stale worker still
  has a feed claimed before: `WriterLease` counts its tenures (a lease it takes from
  another owner or from none, or that it did not surely hold just before, starts one) and
  fences each feed to the tenure it was claimed in, on the poll and in the writes alike
  (a write's tenure is checked as its statement is built, microseconds before it runs).

"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import (
    ColumnElement,
    Engine,
    and_,
    event,
    exists,
    false,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from newswatch.errors import LeaseLapsedError
from newswatch.upsert import insert_ignoring
from schemas import tables

log = logging.getLogger(__name__)

WRITER = "producers"  # the name of SQLite's single-writer lease row
# The local deadline of a lease ends this fraction of the lease before the lease itself (see
# the module docstring): far above the clocks' rate difference, and below the two thirds
# of a lease that renewing every third of it keeps ahead of a running refresh.
FENCE_MARGIN = 0.2


def _pid_namespace() -> str:
    """This process's PID namespace ("" when unknown): two containers may share a host
    name, never a PID namespace, so a pid means the same process only within one."""
    try:
        return os.readlink("/proc/self/ns/pid").removeprefix("pid:[").removesuffix("]")
    except OSError:
        return ""


def owner_id() -> str:
    """A name for this process's leases: host, PID namespace and pid (for people and for
    `dead_here`), plus a random part (a recycled pid never inherits a dead one's leases)."""
    return (f"{socket.gethostname()[:120]}/{_pid_namespace()}/{os.getpid()}/"
            f"{uuid.uuid4().hex[:8]}")


def dead_here(owner: str) -> bool:
    """Whether ``owner`` was a process of this host and PID namespace that has exited: its
    leases are free at once instead of after their end (a kill -9, then a restart). An
    owner elsewhere, or one that cannot be told, is taken as alive."""
    host, _, rest = owner.partition("/")
    namespace, _, rest = rest.partition("/")
    pid, _, _ = rest.partition("/")
    if host != socket.gethostname()[:120] or not namespace or namespace != _pid_namespace():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (OSError, ValueError):
        return False  # alive under another user, or not a pid of ours
    return False


class FeedLeases(Protocol):
    """What the producer daemon needs from a lease strategy. Thread-safe."""

    owner: str

    def claim(self, feed_ids: Sequence[str], now: datetime) -> list[str]:
        """Of ``feed_ids`` (due by the caller's reading), those this process now holds."""

    def renew(self, feed_ids: Collection[str]) -> None:
        """Extend the leases of the feeds being refreshed. Called on every turn of the
        daemon's loop; writes at most every `renew_every_s`."""

    def release(self, feed_id: str) -> None:
        """Give up ``feed_id`` after its refresh recorded its outcome."""

    def holds(self, feed_id: str) -> bool:
        """Whether this process still holds ``feed_id`` (RowLeases asks the database)."""

    def fence(self, feed_id: str, step: str) -> None:
        """Raise `LeaseLapsedError` (naming ``step``) unless the local deadline of this
        process's lease on ``feed_id`` is still ahead. No I/O: cheap enough to run right
        before a request is sent."""

    def write_fence(self, feed_id: str) -> ColumnElement[bool]:
        """A condition for the UPDATE of ``feed_id``'s ``feeds`` row: true only while this
        process holds the feed's unexpired lease, judged by the statement itself."""

    def close(self) -> None:
        """Give up every lease (on stop), so the others take over at once."""

    @property
    def renew_every_s(self) -> float: ...


def leases_for(engine: Engine, lease_s: float, owner: str | None = None) -> FeedLeases:
    """The lease strategy of ``engine``'s dialect (see the module docstring)."""
    if engine.dialect.name == "postgresql":
        return RowLeases(engine, lease_s, owner or owner_id())
    return WriterLease(engine, lease_s, owner or owner_id())


def _end_idle_after(dbapi_connection: Any, timeout_ms: int) -> None:
    """Session setting: PostgreSQL aborts a transaction idle for ``timeout_ms``."""
    cursor = dbapi_connection.cursor()
    cursor.execute(f"SET idle_in_transaction_session_timeout = {int(timeout_ms)}")
    cursor.close()
    dbapi_connection.commit()


class RowLeases:
    """Per-feed leases on the ``feeds`` rows, claimed with SKIP LOCKED (PostgreSQL)."""

    def __init__(self, engine: Engine, lease_s: float, owner: str) -> None:
        self.engine = engine
        self.lease_s = lease_s
        self.owner = owner
        self._next_renew = 0.0
        self._deadlines: dict[str, float] = {}  # feed -> local deadline (time.monotonic())
        self._lock = threading.Lock()  # the loop sets deadlines, workers read them
        # A producer frozen (SIGSTOP, a stalled VM) inside any of its transactions keeps
        # that transaction's row locks on ``feeds``, and SKIP LOCKED then skips those
        # feeds for every other producer for the whole freeze: no takeover at all. Every
        # producer transaction is a few statements in milliseconds, so PostgreSQL may end
        # one whose client went quiet for a third of a lease; the frozen producer, resumed,
        # finds its connection gone and retries (its lease is gone too, so it does not
        # publish). New pool connections get the setting; existing ones are dropped.
        timeout_ms = max(1000, int(self.renew_every_s * 1000))
        event.listen(engine, "connect", lambda dbapi, _record: _end_idle_after(dbapi, timeout_ms))
        engine.dispose()

    @property
    def renew_every_s(self) -> float:
        return self.lease_s / 3

    def _until(self) -> object:
        return func.now() + timedelta(seconds=self.lease_s)

    def claim(self, feed_ids: Sequence[str], now: datetime) -> list[str]:
        if not feed_ids:
            return []
        feeds = tables.feeds
        due = and_(feeds.c.disabled_reason.is_(None),
                   or_(feeds.c.next_check_at.is_(None), feeds.c.next_check_at <= now))
        started = time.monotonic()  # before the transaction whose now() ends the leases
        with self.engine.begin() as conn:
            holders = conn.execute(select(feeds.c.lease_owner).distinct().where(
                feeds.c.lease_owner.is_not(None), feeds.c.lease_owner != self.owner,
                feeds.c.lease_expires_at >= func.now())).scalars()
            dead = [holder for holder in holders if dead_here(holder)]
            free = or_(feeds.c.lease_expires_at.is_(None),
                       feeds.c.lease_expires_at < func.now(),
                       feeds.c.lease_owner.in_([self.owner, *dead]))
            claimed = list(conn.execute(
                select(feeds.c.id).where(feeds.c.id.in_(list(feed_ids)), free, due)
                .with_for_update(skip_locked=True)).scalars())
            if claimed:
                conn.execute(update(feeds).where(feeds.c.id.in_(claimed)).values(
                    lease_owner=self.owner, lease_expires_at=self._until()))
        self._set_deadlines(claimed, started)
        if dead and claimed:
            log.info("took over feeds of a producer that exited", extra={
                "owner": self.owner, "exited": dead, "feeds": len(claimed)})
        order = {feed_id: n for n, feed_id in enumerate(feed_ids)}
        return sorted(claimed, key=order.__getitem__)

    def _set_deadlines(self, feed_ids: Collection[str], started: float) -> None:
        deadline = started + self.lease_s * (1 - FENCE_MARGIN)
        with self._lock:
            self._deadlines.update(dict.fromkeys(feed_ids, deadline))

    def renew(self, feed_ids: Collection[str]) -> None:
        clock = time.monotonic()
        if not feed_ids or clock < self._next_renew:
            return
        self._next_renew = clock + self.renew_every_s
        feeds = tables.feeds
        with self.engine.begin() as conn:
            kept = set(conn.execute(update(feeds).where(
                feeds.c.id.in_(list(feed_ids)), feeds.c.lease_owner == self.owner)
                .values(lease_expires_at=self._until()).returning(feeds.c.id)).scalars())
        self._set_deadlines(kept, clock)
        with self._lock:
            for feed_id in set(feed_ids) - kept:
                self._deadlines.pop(feed_id, None)
        renewed = len(kept)
        if renewed < len(feed_ids):
            # Another producer took some over: we were frozen or cut off for a lease period.
            log.warning("feed leases lost while refreshing; those refreshes will not poll, "
                        "publish or record", extra={"held": renewed, "refreshing": len(feed_ids),
                                                    "lost": sorted(set(feed_ids) - kept)})

    def release(self, feed_id: str) -> None:
        with self._lock:
            self._deadlines.pop(feed_id, None)
        feeds = tables.feeds
        with self.engine.begin() as conn:
            conn.execute(update(feeds).where(feeds.c.id == feed_id,
                                             feeds.c.lease_owner == self.owner)
                         .values(lease_owner=None, lease_expires_at=None))

    def holds(self, feed_id: str) -> bool:
        feeds = tables.feeds
        with self.engine.connect() as conn:
            return conn.execute(select(feeds.c.id).where(
                feeds.c.id == feed_id, feeds.c.lease_owner == self.owner,
                feeds.c.lease_expires_at > func.now())).first() is not None

    def fence(self, feed_id: str, step: str) -> None:
        with self._lock:
            deadline = self._deadlines.get(feed_id, 0.0)
        if time.monotonic() >= deadline:
            raise LeaseLapsedError(feed_id, step)

    def write_fence(self, feed_id: str) -> ColumnElement[bool]:
        feeds = tables.feeds
        return and_(feeds.c.lease_owner == self.owner, feeds.c.lease_expires_at > func.now())

    def close(self) -> None:
        with self._lock:
            self._deadlines.clear()
        feeds = tables.feeds
        try:
            with self.engine.begin() as conn:
                conn.execute(update(feeds).where(feeds.c.lease_owner == self.owner)
                             .values(lease_owner=None, lease_expires_at=None))
        except SQLAlchemyError as error:  # the leases end by themselves
            log.warning("could not release feed leases on stop: %s", error.__class__.__name__,
                        extra={"owner": self.owner})


class WriterLease:
    """SQLite's single-writer lease: one producer polls every feed, the others stand by."""

    def __init__(self, engine: Engine, lease_s: float, owner: str) -> None:
        self.engine = engine
        self.lease_s = lease_s
        self.owner = owner
        self._held_until = 0.0  # local deadline (time.monotonic()): we surely hold it before
        self._next_try = 0.0
        self._standby_logged = False
        # The lease covers every feed, so a stale worker's feed would be covered again by a
        # later tenure of ours (another producer took the lease meanwhile, then stopped):
        # a feed is fenced to the tenure it was claimed in.
        self._tenure = 0
        self._claimed: dict[str, int] = {}  # feed -> tenure it was handed to a worker in
        self._lock = threading.Lock()

    @property
    def renew_every_s(self) -> float:
        return self.lease_s / 3

    def _take(self) -> bool:
        """Take or extend the writer lease: one conditional UPDATE, atomic under SQLite's
        write lock."""
        leases = tables.producer_leases
        started = time.monotonic()  # first: the lease end is counted from a later reading
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            conn.execute(insert_ignoring(conn, leases).values(name=WRITER))
            holder = conn.execute(select(leases.c.owner).where(leases.c.name == WRITER)
                                  ).scalar()
            free = [self.owner] + ([holder] if holder and dead_here(holder) else [])
            taken = conn.execute(update(leases).where(
                leases.c.name == WRITER,
                or_(leases.c.owner.is_(None), leases.c.owner.in_(free),
                    leases.c.expires_at.is_(None), leases.c.expires_at < now))
                .values(owner=self.owner,
                        expires_at=now + timedelta(seconds=self.lease_s))).rowcount == 1
        held_before = self._held_until > time.monotonic()
        with self._lock:  # a worker's `fence` sees the new tenure with the new deadline
            if taken and (holder != self.owner or not held_before):
                self._tenure += 1  # someone else may have held it since: a new tenure
            self._held_until = started + self.lease_s * (1 - FENCE_MARGIN) if taken else 0.0
        if taken and not held_before:
            log.info("producer holds the writer lease; polling the feeds",
                     extra={"owner": self.owner, "lease_s": self.lease_s})
            self._standby_logged = False
        elif not taken and not self._standby_logged:
            log.info("another producer holds the writer lease; standing by",
                     extra={"owner": self.owner})
            self._standby_logged = True
        return taken

    def _held(self) -> bool:
        clock = time.monotonic()
        if clock < self._next_try:
            return self._held_until > clock
        self._next_try = clock + (self.renew_every_s if self._held_until > clock else 1.0)
        return self._take()

    def claim(self, feed_ids: Sequence[str], now: datetime) -> list[str]:
        if not self._held():
            return []
        with self._lock:
            self._claimed.update(dict.fromkeys(feed_ids, self._tenure))
        return list(feed_ids)

    def renew(self, feed_ids: Collection[str]) -> None:
        self._held()  # also while idle: a holder with no due feed keeps its lease

    def release(self, feed_id: str) -> None:
        with self._lock:  # the lease itself covers every feed; it ends with `close`
            self._claimed.pop(feed_id, None)

    def holds(self, feed_id: str) -> bool:
        return self._held_until > time.monotonic()

    def _same_tenure(self, feed_id: str) -> bool:
        with self._lock:
            return self._claimed.get(feed_id) == self._tenure

    def fence(self, feed_id: str, step: str) -> None:
        with self._lock:
            held_until, same_tenure = self._held_until, self._claimed.get(feed_id) == self._tenure
        if held_until <= time.monotonic() or not same_tenure:
            raise LeaseLapsedError(feed_id, step)

    def write_fence(self, feed_id: str) -> ColumnElement[bool]:
        if not self._same_tenure(feed_id):
            return false()
        leases = tables.producer_leases
        # Judged by the wall clock, as the other producers' `_take` judges the lease's end.
        return exists().where(leases.c.name == WRITER, leases.c.owner == self.owner,
                              leases.c.expires_at > datetime.now(UTC))

    def close(self) -> None:
        leases = tables.producer_leases
        self._held_until = 0.0
        with self._lock:
            self._claimed.clear()
        try:
            with self.engine.begin() as conn:
                conn.execute(update(leases).where(leases.c.name == WRITER,
                                                  leases.c.owner == self.owner)
                             .values(owner=None, expires_at=None))
        except SQLAlchemyError as error:  # the lease ends by itself
            log.warning("could not release the writer lease on stop: %s",
                        error.__class__.__name__, extra={"owner": self.owner})
