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
transaction), and every lease it holds when it stops. `holds` is checked just before a
batch is published, so a producer that lost its lease while frozen does not publish what
the new holder is publishing; the publishing mark (`producers.state`) covers the rest.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Engine, and_, event, func, or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from newswatch.upsert import insert_ignoring
from schemas import tables

log = logging.getLogger(__name__)

WRITER = "producers"  # the name of SQLite's single-writer lease row


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
        """Whether this process still holds ``feed_id`` (checked before publishing)."""

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
        if dead and claimed:
            log.info("took over feeds of a producer that exited", extra={
                "owner": self.owner, "exited": dead, "feeds": len(claimed)})
        order = {feed_id: n for n, feed_id in enumerate(feed_ids)}
        return sorted(claimed, key=order.__getitem__)

    def renew(self, feed_ids: Collection[str]) -> None:
        clock = time.monotonic()
        if not feed_ids or clock < self._next_renew:
            return
        self._next_renew = clock + self.renew_every_s
        feeds = tables.feeds
        with self.engine.begin() as conn:
            renewed = conn.execute(update(feeds).where(
                feeds.c.id.in_(list(feed_ids)), feeds.c.lease_owner == self.owner)
                .values(lease_expires_at=self._until())).rowcount
        if renewed < len(feed_ids):
            # Another producer took some over: we were frozen or cut off for a lease period.
            log.warning("feed leases lost while refreshing; those refreshes will not publish",
                        extra={"held": renewed, "refreshing": len(feed_ids)})

    def release(self, feed_id: str) -> None:
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

    def close(self) -> None:
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
        self._held_until = 0.0  # time.monotonic() until which we know we hold it
        self._next_try = 0.0
        self._standby_logged = False

    @property
    def renew_every_s(self) -> float:
        return self.lease_s / 3

    def _take(self) -> bool:
        """Take or extend the writer lease: one conditional UPDATE, atomic under SQLite's
        write lock."""
        leases = tables.producer_leases
        now = datetime.now(UTC)
        started = time.monotonic()
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
        self._held_until = started + self.lease_s if taken else 0.0
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
        return list(feed_ids) if self._held() else []

    def renew(self, feed_ids: Collection[str]) -> None:
        self._held()  # also while idle: a holder with no due feed keeps its lease

    def release(self, feed_id: str) -> None:
        return  # the writer lease covers every feed; it ends with `close`

    def holds(self, feed_id: str) -> bool:
        return self._held_until > time.monotonic()

    def close(self) -> None:
        leases = tables.producer_leases
        self._held_until = 0.0
        try:
            with self.engine.begin() as conn:
                conn.execute(update(leases).where(leases.c.name == WRITER,
                                                  leases.c.owner == self.owner)
                             .values(owner=None, expires_at=None))
        except SQLAlchemyError as error:  # the lease ends by itself
            log.warning("could not release the writer lease on stop: %s",
                        error.__class__.__name__, extra={"owner": self.owner})
