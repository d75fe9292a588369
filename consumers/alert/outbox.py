"""The outbox: alert decisions, group memory and the watermark, in one SQL transaction.

`run_tick` is one live evaluation: it reads the cursor, evaluates the new hits, writes the
alerts (each with its dedup key and one ``alert_sends`` row per channel) and advances the
watermark, all in a single transaction. A crash before the commit leaves no trace, so the
same hits are evaluated again; a crash after it leaves pending outbox rows, which the
deliverer sends. So an alert is decided once and sent once.

When the write lock is taken. An evaluation reads first (the cursor, the new hits, the
rules' matches, windows, seen pairs, group states, payloads) and writes last (ledger,
alerts and sends, groups, hits marked, cursor): `WriteTurn`. On PostgreSQL the cursor row
is locked (``FOR UPDATE``) before the first read, so two evaluators take turns for the
whole evaluation; other writers only meet row locks, so the deliverer never waits for an
evaluation. SQLite has one writer at a time, and took it at the start too: the deliverer's
claims and records, and the store's inserts, waited for every evaluation's matching
(docs/performance.md). There the reads now run with no write transaction open (the
driver begins one at the first write), and the write lock is taken at the first write:
the cursor is then read again, and if another evaluator committed since this one read it
(its token, `windows.cursor_token`, changed) the evaluation rolls back with
`ConcurrentEvaluationError` and is retried: nothing it decided from stale reads is
written. Each commit stamps the cursor with a time later than the one it read, so the
token changes on every commit, even two within one clock tick. Writes of other processes
during the reads (new hits, a re-enrichment) are seen or not, as under PostgreSQL's READ
COMMITTED: they count as made just after the evaluation, and their hits are evaluated by
the next one.

Two evaluators on one database take turns: the cursor row is locked (PostgreSQL) or
checked under the write lock (SQLite), and its update checks the watermark it read, so
the second one rolls back instead of deciding the same alerts twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, select, update

from consumers.alert.compile import CompiledRule
from consumers.alert.evaluate import Cursor, Evaluation, evaluate, mark_evaluated, next_batch
from consumers.alert.group import DIGEST_KEY, Decisions, GroupState
from consumers.alert.group_cache import GroupCache, groups_for
from consumers.alert.ledger import (
    digest_sent,
    drop_removed,
    group_rows,
    open_groups,
    pairs_of_articles,
    record_groups,
    state_of,
    top,
)
from consumers.alert.rule_cache import PerRuleSet
from consumers.alert.seen_cache import SeenCache, seen_for
from consumers.alert.silence import active_silences
from consumers.alert.wakeup import notify_outbox
from consumers.alert.windows import cursor_token, windows_for
from consumers.store.audit import record_audit
from newswatch.db_errors import unavailable_as_retryable
from newswatch.errors import NewswatchError, NotFoundError
from newswatch.upsert import insert_ignoring, insert_or_update
from newswatch.utc import as_utc
from schemas import tables
from schemas.alert_payload import AlertPayload
from schemas.rules_file import Rule

log = logging.getLogger(__name__)

CURSOR_NAME = "topic_hits"
T_STATE, T_GROUPS, T_ALERTS = tables.alert_state, tables.alert_groups, tables.alerts
T_SENDS = tables.alert_sends
T_DELIVERIES = tables.deliveries
REQUEUED = "requeued"  # deliveries.outcome of a resend: who asked, and when
NEVER = datetime(1970, 1, 1, tzinfo=UTC)  # updated_at of a cursor row not evaluated yet


class ConcurrentEvaluationError(NewswatchError):
    """Another evaluator advanced the watermark first; this evaluation was rolled back."""

    retryable = True


def run_tick(engine: Engine, rules: Sequence[CompiledRule], now: datetime) -> Evaluation:
    """Evaluate the hits committed since the last tick; commit decisions and watermark.

    Count and spike windows come from this rule set's `windows.WindowCache`, group
    states from its `group_cache.GroupCache`; an evaluation with hits or decisions always
    stamps the cursor, so another evaluator's work is seen. Reads first, then the writes
    in the write lock's turn (`WriteTurn`, module docstring)."""
    windows, groups = windows_for(engine, rules), groups_for(engine, rules)
    seen = seen_for(engine, rules)
    idle = _IDLE.get(engine, rules)
    if idle is not None:
        if idle.still(engine, now):
            return Evaluation()
        idle.token = None  # until this evaluation ends as one that did nothing
    with unavailable_as_retryable(), engine.begin() as conn:
        turn = WriteTurn(conn)  # before the caches' sync: a commit after it is caught
        cursor = turn.cursor
        # The token the turn read: on PostgreSQL the locked row cannot change before the
        # commit; on SQLite a commit of another evaluator after this read makes
        # `WriteTurn.take` roll back before anything decided from the caches is written.
        # Read once instead of once per cache: 3 statements of an idle tick's 8.
        for cache in (windows, groups, seen):
            if cache is not None:
                cache.sync_to(turn.token)
        batch, advanced = next_batch(conn, cursor, now)
        store = SqlStore(conn, groups, seen, before_write=turn.take)
        result = evaluate(conn, rules, store, now, batch,
                          silences=active_silences(conn, now), windows=windows)
        # A release with no new hits changes groups too: the stamp tells other evaluators'
        # group caches (a stale one would send a held article twice).
        touch = batch.count > 0 or store.wrote
        saved = False
        if touch or moved(cursor, advanced):
            turn.take()
            mark_evaluated(conn, batch)
            saved = save_cursor(conn, cursor, advanced, turn.stamp(now), touch=touch)
    turn.committed(result)
    if saved:  # after the commit: what a rolled-back evaluation decided is not kept
        stamp = turn.stamp(now)
        if windows is not None:
            windows.committed(advanced.watermark, stamp)
        for kept in (groups, seen):
            if kept is not None:
                kept.committed(advanced.watermark, stamp)
    elif groups is not None:
        groups.unchanged()
    if idle is not None:
        idle.ended(rules, turn.token, did_nothing=not saved and not result.hits
                   and not result.alerts and groups is not None and groups.complete)
    return result


class IdleMark:
    """When the next live evaluation would do nothing, without running it.

    An evaluation that found no hit, wrote nothing and left the cursor unmoved, with the
    group cache complete and no digest rule, marks the cursor token it read. Until a
    probe (`still`: one statement, no transaction) sees either a hit not evaluated, a
    group whose ``release_at`` is due, or a token changed by another evaluator's commit,
    the next evaluation would read the same state and decide the same nothing: no
    triggers without hits, no release without a due group, the caches unchanged. So it is
    skipped. An idle tick was 5-8 statements and most of the alert daemon's CPU between
    batches (docs/performance.md); the probe is one.
    """

    def __init__(self) -> None:
        self.token: tuple[int, datetime | None] | None = None
        self._digests: bool | None = None  # whether the rule set has a digest rule

    def ended(self, rules: Sequence[CompiledRule], token: tuple[int, datetime | None] | None,
              *, did_nothing: bool) -> None:
        """Record how the evaluation just run ended (``token``: the cursor it read)."""
        if self._digests is None:
            self._digests = any(rule.rule.digest is not None for rule in rules)
        self.token = token if did_nothing and token is not None and not self._digests \
            else None

    def still(self, engine: Engine, now: datetime) -> bool:
        """Whether an evaluation at ``now`` would still do nothing (see the class)."""
        if self.token is None:
            return False
        with unavailable_as_retryable(), engine.connect() as conn:
            row = conn.execute(_IDLE_PROBE, {"now": now}).first()
        if row is None or row.waiting or row.due:
            return False
        return (int(row.watermark), as_utc(row.updated_at)) == self.token


def _idle_probe() -> Any:
    hits, groups = tables.topic_hits.c, T_GROUPS.c
    waiting = select(hits.id).where(hits.evaluated.is_(False)).exists()
    due = select(groups.rule).where(groups.release_at <= bindparam("now")).exists()
    return (select(T_STATE.c.watermark, T_STATE.c.updated_at, waiting.label("waiting"),
                   due.label("due"))
            .where(T_STATE.c.name == CURSOR_NAME))


_IDLE_PROBE = _idle_probe()
_IDLE: PerRuleSet[IdleMark] = PerRuleSet(IdleMark)


class WriteTurn:
    """When an evaluation's transaction takes the database's write lock (module docstring).

    Made first in the transaction: reads the cursor and its token (on PostgreSQL after
    locking the row, held to the commit). `take` is called before the first write: on
    SQLite it takes the write lock and checks that no other evaluator committed since;
    on PostgreSQL the row lock already guarantees it, and the check costs one read.
    """

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._sqlite = conn.dialect.name == "sqlite"
        # The cursor and its token from one read of the row (on PostgreSQL locked first);
        # on SQLite no write yet: the reads that follow take no lock.
        self.cursor, self.token = load_cursor_and_token(conn, lock=not self._sqlite)
        self.taken = False
        self.began = time.monotonic()
        self.waited_s = 0.0  # for the write lock
        self.read_s = 0.0  # from the start to `take`

    def take(self) -> None:
        """Take the write lock (once); raises `ConcurrentEvaluationError` when another
        evaluator committed since this one read the cursor."""
        if self.taken:
            return
        asked = time.monotonic()
        self.read_s = asked - self.began
        if self._sqlite:
            # A write statement takes SQLite's write lock at once (waiting up to the
            # busy timeout); it changes nothing. The driver began the transaction for it.
            self.conn.execute(update(T_STATE).where(T_STATE.c.name == CURSOR_NAME)
                              .values(watermark=T_STATE.c.watermark))
        self.waited_s = time.monotonic() - asked
        if cursor_token(self.conn) != self.token:
            raise ConcurrentEvaluationError(
                "another evaluator committed while this one was reading; retrying")
        self.taken = True

    def stamp(self, now: datetime) -> datetime:
        """The cursor's ``updated_at`` for this commit: ``now``, or just after the stamp
        read when the clock has not passed it, so the token changes on every commit."""
        if self.token is None or self.token[1] is None or now > self.token[1]:
            return now
        return self.token[1] + timedelta(microseconds=1)

    def committed(self, result: Evaluation) -> None:
        """Log what the turn cost once the transaction committed: ``read_ms`` before the
        write lock was asked for, ``lock_wait_ms`` waiting for it, ``locked_ms`` from
        asking to the commit's end (what other writers waited, at most). INFO for an
        evaluation that decided alerts (beside their "alert decided" lines), else DEBUG."""
        level = logging.INFO if result.alerts else logging.DEBUG
        if self.taken and log.isEnabledFor(level):
            log.log(level, "evaluation committed", extra={
                "hits": result.hits, "alerts": len(result.alerts),
                "read_ms": round(1000 * self.read_s, 1),
                "lock_wait_ms": round(1000 * self.waited_s, 1),
                "locked_ms": round(1000 * (time.monotonic() - self.began - self.read_s), 1)})


def moved(old: Cursor, new: Cursor) -> bool:
    """Whether ``new`` differs from ``old`` (watermark or gaps)."""
    return new.watermark != old.watermark or dict(new.gaps) != dict(old.gaps)


def load_cursor(conn: Connection, lock: bool = False) -> Cursor:
    """The stored cursor; a database never evaluated starts from the first hit.

    ``lock``: hold the cursor until the transaction ends, so that two evaluators take
    turns instead of deciding the same hits at once: ``FOR UPDATE`` on PostgreSQL; on
    SQLite a write statement, which takes the database's write lock at once (a plain
    read did not, so two alert daemons started together both decided the first hits and
    the second died on a UNIQUE constraint: tests/fault/test_two_alert_daemons.py).
    """
    return load_cursor_and_token(conn, lock)[0]


def load_cursor_and_token(conn: Connection, lock: bool = False
                          ) -> tuple[Cursor, tuple[int, datetime | None] | None]:
    """`load_cursor` and `windows.cursor_token` from one read of the cursor row."""
    query = select(T_STATE.c.watermark, T_STATE.c.gaps, T_STATE.c.updated_at
                   ).where(T_STATE.c.name == CURSOR_NAME)
    if lock and conn.dialect.name == "postgresql":
        # FOR UPDATE locks nothing while the row does not exist: two daemons started on a
        # new database both evaluated the first hits, and the second died on the alerts'
        # dedup key (tests/fault/test_two_alert_daemons.py). The row is made first; a
        # second evaluator's insert waits for the first's commit, then locks the row.
        conn.execute(insert_ignoring(conn, T_STATE, ["name"]).values(
            name=CURSOR_NAME, watermark=0, gaps=[], updated_at=NEVER))
        query = query.with_for_update()
    elif lock:
        conn.execute(update(T_STATE).where(T_STATE.c.name == CURSOR_NAME)
                     .values(watermark=T_STATE.c.watermark))
    row = conn.execute(query).first()
    if row is None:
        return Cursor(), None
    gaps = {int(hit_id): as_utc(datetime.fromisoformat(seen)) for hit_id, seen in row.gaps}
    return (Cursor(watermark=int(row.watermark), gaps=gaps),
            (int(row.watermark), as_utc(row.updated_at)))


def save_cursor(conn: Connection, old: Cursor, new: Cursor, now: datetime,
                touch: bool = False) -> bool:
    """Store ``new`` if it moved (or ``touch``: stamp ``updated_at`` anyway); raises
    `ConcurrentEvaluationError` if ``old`` is stale. True when the row was written."""
    if not touch and not moved(old, new):
        return False
    gaps = [[hit_id, seen.isoformat()] for hit_id, seen in sorted(new.gaps.items())]
    values = {"watermark": new.watermark, "gaps": gaps, "updated_at": now}
    exists = conn.execute(
        select(T_STATE.c.watermark).where(T_STATE.c.name == CURSOR_NAME)
    ).first()
    if exists is None:
        conn.execute(T_STATE.insert().values(name=CURSOR_NAME, **values))
        return True
    done = conn.execute(
        update(T_STATE)
        .where(T_STATE.c.name == CURSOR_NAME, T_STATE.c.watermark == old.watermark)
        .values(**values)
    )
    if done.rowcount != 1:
        raise ConcurrentEvaluationError("another evaluator advanced the watermark; retrying")
    return True


def skip_history(engine: Engine, now: datetime) -> int:
    """Start a never-evaluated database at its newest hit (no alerts for the past)."""
    with engine.begin() as conn:
        cursor = load_cursor(conn, lock=True)
        if cursor.watermark:
            return cursor.watermark
        high = conn.execute(select(tables.topic_hits.c.id).order_by(
            tables.topic_hits.c.id.desc()).limit(1)).scalar()
        if high:
            conn.execute(update(tables.topic_hits)
                         .where(tables.topic_hits.c.evaluated.is_(False),
                                tables.topic_hits.c.id <= high)
                         .values(evaluated=True))
            save_cursor(conn, cursor, Cursor(watermark=int(high)), now)
        return int(high or 0)





class SqlStore:
    """`evaluate.StateStore` on the caller's connection and transaction."""

    def __init__(self, conn: Connection, groups: GroupCache | None = None,
                 seen: SeenCache | None = None,
                 before_write: Callable[[], None] = lambda: None) -> None:
        """``groups``: the live evaluator's `group_cache.GroupCache` (states kept between
        evaluations, read from SQL only when not kept); ``seen``: its
        `seen_cache.SeenCache`; ``before_write``: called before `apply` writes anything
        (the live evaluator's `WriteTurn.take`: the reads before it take no write lock)."""
        self.conn = conn
        self._before_write = before_write
        self.groups = groups
        self.seen_cache = seen
        self._loaded: dict[tuple[str, str], GroupState] = {}
        self.wrote = False  # whether `apply` wrote anything
        self.rebuilt = False  # whether `load_groups` rebuilt every open group

    def seen(self, pairs: Sequence[tuple[str, str]], fresh: bool = False
             ) -> set[tuple[str, str]]:
        """Read by article (`ledger.pairs_of_articles`); with the live evaluator's
        `seen_cache.SeenCache`, pairs of windowed rules on articles it knows come from
        memory, except for ``fresh`` ones (the batch's own articles: always SQL)."""
        cache = self.seen_cache
        found: set[tuple[str, str]] = set()
        rest: Iterable[tuple[str, str]] = pairs
        if cache is not None and not fresh:  # fresh: the batch's articles, mostly new
            found, rest = cache.answer(set(pairs))
            if not rest:
                return found
        articles = sorted({aid for _, aid in rest})
        rows = pairs_of_articles(self.conn, articles)
        if cache is not None:
            cache.load(articles, rows)
        return found | (set(rest) & set(rows)) if rows else found

    def load_groups(self, keys: Iterable[tuple[str, str]], rules: Mapping[str, Rule],
                    now: datetime) -> dict[tuple[str, str], GroupState]:
        """States of ``keys``, of due groups and of the rules' digest groups.

        Held articles live in the ledger, not by group: a group holds some exactly while
        its ``release_at`` is set, so with the live evaluator's group cache complete (it
        has every such group, `group_cache.GroupCache.complete`) the other groups are read
        as rows holding nothing; otherwise every open group is rebuilt from the ledger
        first (`ledger.open_groups`, one pass), as after a restart."""
        wanted = set(keys) | {(name, DIGEST_KEY) for name, rule in rules.items()
                              if rule.digest is not None}
        kept = self.groups
        states: dict[tuple[str, str], GroupState] = {}
        # Due groups of other rule sets are left out here, not in SQL: naming all 10,000
        # rules in an IN list cost every tick more than the rest of an idle one.
        due = [(row.rule, row.group_key) for row in self.conn.execute(
            select(T_GROUPS.c.rule, T_GROUPS.c.group_key).where(T_GROUPS.c.release_at <= now))
            if row.rule in rules]
        complete = kept is not None and kept.complete
        if complete and kept is not None:
            for key in [*wanted, *due]:
                if key not in states and (state := kept.get(key)) is not None:
                    states[key] = state
            complete = all(key in states for key in due)
        if not complete:
            # A rule set's groups are rebuilt at start and after a reload: groups of
            # rules no longer in it stop holding (their articles would be kept forever).
            if removed := drop_removed(self.conn, rules):
                log.warning("alert groups of removed rules dropped what they held",
                            extra={"rules": len(removed), "names": removed[:20]})
                self.wrote = True
            states = open_groups(self.conn, rules)
            self.rebuilt = True
        missing = sorted(wanted - states.keys())
        for row in group_rows(self.conn, missing):
            states[(row.rule, row.group_key)] = state_of(row)
        self._loaded = states
        return states

    def apply(self, decisions: Decisions, payloads: Mapping[str, AlertPayload],
              rules: Mapping[str, Rule], now: datetime) -> list[int]:
        """Write everything with a few multi-row statements: one ledger row per article
        taken, the alerts with their sends, the groups and their marks."""
        conn = self.conn
        self.wrote = self.wrote or bool(decisions.taken or decisions.fires
                                        or decisions.to_digest or decisions.changed)
        if self.wrote or decisions.released or decisions.digests_sent:
            self._before_write()  # `top` below too: read in the write lock's turn
        mark = record_groups(conn, decisions.taken, now) if decisions.taken else None
        if decisions.taken and self.seen_cache is not None:
            self.seen_cache.stage(decisions.taken)
        if decisions.released:
            mark = top(conn) if mark is None else mark
            for state in decisions.released:
                state.released_through = mark
        ids: list[int] = []
        if decisions.fires:
            inserted = conn.execute(
                T_ALERTS.insert().returning(T_ALERTS.c.id, sort_by_parameter_order=True),
                [{"dedup_key": fire.dedup_key, "rule": fire.rule, "group_key": fire.group_key,
                  "kind": fire.kind, "status": "pending", "reason": fire.reason,
                  "payload": payloads[fire.dedup_key].model_dump(mode="json",
                                                                 exclude={"alert_id"}),
                  "article_ids": [ref.article_id for ref in fire.articles],
                  "created_at": now}
                 for fire in decisions.fires],
            )
            ids = [int(alert_id) for alert_id in inserted.scalars()]
            sends: list[dict[str, Any]] = []
            for alert_id, fire in zip(ids, decisions.fires, strict=True):
                sends.extend({"alert_id": alert_id, "channel": channel, "status": "pending",
                              "attempts": 0, "next_attempt_at": now, "updated_at": now}
                             for channel in rules[fire.rule].channels)
            if sends:
                conn.execute(T_SENDS.insert(), sends)
                notify_outbox(conn)  # deliverers of other processes wake at the commit
        if decisions.changed and (rows := decisions.to_write()):
            self._save_groups(rows)
        for rule in decisions.digests_sent:  # after the groups: their marks are written
            digest_sent(conn, rule)
        if self.groups is not None:  # what SQL holds once this transaction commits
            self.groups.stage({**self._loaded, **decisions.changed}, complete=self.rebuilt)
        return ids

    def _save_groups(self, states: Sequence[GroupState]) -> None:
        columns = ("labels", "sequence", "last_alert_at", "release_at", "last_true_at",
                   "last_reason", "released_through")
        rows = [{"rule": state.rule, "group_key": state.key, "labels": state.labels,
                 "sequence": state.sequence, "last_alert_at": state.last_alert_at,
                 "release_at": state.release_at, "last_true_at": state.last_true_at,
                 "last_reason": state.last_reason[:2000],
                 "released_through": state.released_through} for state in states]
        self.conn.execute(insert_or_update(self.conn, T_GROUPS, key=["rule", "group_key"],
                                           update=columns), rows)


# --- sending a failed alert again ------------------------------------------------------


def failed_alert_ids(engine: Engine, *, rule: str | None = None) -> list[int]:
    """Alerts that failed for good (``newswatch alerts --failed``), oldest first."""
    query = select(T_ALERTS.c.id).where(T_ALERTS.c.status == "failed").order_by(T_ALERTS.c.id)
    if rule is not None:
        query = query.where(T_ALERTS.c.rule == rule)
    with unavailable_as_retryable(), engine.connect() as conn:
        return [int(alert_id) for alert_id in conn.execute(query).scalars()]


def resend_alert(engine: Engine, alert_id: int, *, who: str) -> int:
    """Queue the failed sends of ``alert_id`` again; returns how many (0: none failed).

    The alert is the same row with the same payload and dedup key, so a receiver that
    did get it after all drops the repeat. Each failed ``alert_sends`` row goes back to
    pending, due now, with a fresh retry budget (attempts from 0; the delivery deadline
    counts from the resend), and the deliverer sends and records it like any send. The
    resend itself is a ``deliveries`` row (outcome ``requeued``, status ``resend by
    <who>``) and an audit-log entry, so both show who sent it again and when. Serves the
    console's "send again" and ``newswatch alerts resend``. Raises `NotFoundError` for an
    unknown id.
    """
    now = datetime.now(UTC)
    with unavailable_as_retryable(), engine.begin() as conn:
        # Locked like a delivery record (deliver._record) so the two never interleave.
        status = conn.execute(select(T_ALERTS.c.status).where(T_ALERTS.c.id == alert_id)
                              .with_for_update()).scalar()
        if status is None:
            raise NotFoundError(f"no alert {alert_id}")
        channels = list(conn.execute(
            select(T_SENDS.c.channel, T_SENDS.c.attempts)
            .where(T_SENDS.c.alert_id == alert_id, T_SENDS.c.status == "failed")
        ))
        if not channels:
            return 0
        conn.execute(T_DELIVERIES.insert(), [
            {"alert_id": alert_id, "channel": channel, "attempt": attempts,
             "attempted_at": now, "outcome": REQUEUED, "status": f"resend by {who}"[:64],
             "latency_ms": 0.0, "error": None}
            for channel, attempts in channels
        ])
        conn.execute(
            update(T_SENDS)
            .where(T_SENDS.c.alert_id == alert_id, T_SENDS.c.status == "failed")
            .values(status="pending", attempts=0, next_attempt_at=now, updated_at=now)
        )
        conn.execute(update(T_ALERTS).where(T_ALERTS.c.id == alert_id)
                     .values(status="pending", finished_at=None))
        notify_outbox(conn)
        record_audit(conn, who=who, action="resend", target=f"alert:{alert_id}",
                     detail={"channels": [channel for channel, _ in channels]}, at=now)
    log.info("alert queued to be sent again", extra={
        "alert_id": alert_id, "channels": [channel for channel, _ in channels], "who": who})
    return len(channels)
