"""Silences (Alertmanager's idea): for a while, a rule or one group of it decides nothing.

A silence names a rule and optionally one group key; it holds from ``starts_at`` until
``ends_at``. While it holds, `drop_silenced` removes the silenced groups' triggers and
states from an evaluation, so nothing is held, released or fired for them; each such
group is logged and counted. When the silence ends, what the throttle held before it
goes out as usual. Silences are stored in SQL (``silences``), created from the console
or the API, and read by the alert daemon at every evaluation.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Row, select, update

from consumers.alert.group import Trigger
from consumers.store.audit import record_audit
from newswatch.db_errors import unavailable_as_retryable
from newswatch.errors import ConfigError, NotFoundError
from newswatch.metrics import ALERTS_SILENCED
from newswatch.utc import as_utc
from schemas import tables

log = logging.getLogger(__name__)

S = tables.silences.c
MAX_DURATION = timedelta(days=365)
V = TypeVar("V")


@dataclass(frozen=True)
class Silence:
    id: int
    rule: str
    group_key: str | None
    starts_at: datetime
    ends_at: datetime
    comment: str
    created_by: str

    def covers(self, rule: str, group_key: str) -> bool:
        return self.rule == rule and self.group_key in (None, group_key)

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at


def _silence(row: Row[Any]) -> Silence:
    return Silence(id=int(row.id), rule=row.rule, group_key=row.group_key,
                   starts_at=as_utc(row.starts_at), ends_at=as_utc(row.ends_at),
                   comment=row.comment, created_by=row.created_by)


def active_silences(conn: Connection, now: datetime) -> list[Silence]:
    """The silences holding at ``now`` (served by the rule, ends_at index)."""
    rows = conn.execute(select(tables.silences).where(S.ends_at > now, S.starts_at <= now))
    return [_silence(row) for row in rows]


def silence_for(silences: Sequence[Silence], rule: str, group_key: str) -> Silence | None:
    """The silence that covers this rule's group, if one does."""
    return next((s for s in silences if s.covers(rule, group_key)), None)


def drop_silenced(triggers: Sequence[Trigger],
                  states: dict[tuple[str, str], V], silences: Sequence[Silence]
                  ) -> tuple[list[Trigger], dict[tuple[str, str], V]]:
    """Triggers and group states without the silenced groups; logs and counts each.

    Without silences ``states`` itself comes back (the backtest's store keeps the very
    dict that `group.decide` adds new groups to).
    """
    if not silences:
        return list(triggers), states
    kept: list[Trigger] = []
    for trigger in triggers:
        silence = silence_for(silences, trigger.rule, trigger.group_key)
        if silence is None:
            kept.append(trigger)
            continue
        ALERTS_SILENCED.labels(trigger.rule).inc()
        log.info("group silenced: nothing decided", extra={
            "rule": trigger.rule, "group": trigger.group_key, "silence_id": silence.id,
            "articles": len(trigger.articles), "silenced_until": silence.ends_at.isoformat()})
    states_kept = {key: state for key, state in states.items()
                   if silence_for(silences, key[0], key[1]) is None}
    return kept, states_kept


def create_silence(engine: Engine, *, rule: str, group_key: str | None, duration: timedelta,
                   comment: str, who: str, now: datetime | None = None) -> int:
    """Silence a rule (``group_key`` None) or one of its groups for ``duration``."""
    comment = comment.strip()
    if not comment:
        raise ConfigError("a silence needs a comment saying why")
    if not timedelta(0) < duration <= MAX_DURATION:
        raise ConfigError("a silence lasts more than 0 and at most 365 days")
    now = now or datetime.now(UTC)
    with unavailable_as_retryable(), engine.begin() as conn:
        new_id = conn.execute(tables.silences.insert().values(
            rule=rule[:64], group_key=group_key[:255] if group_key else None, starts_at=now,
            ends_at=now + duration, comment=comment[:2000], created_by=who, created_at=now,
        ).returning(S.id)).scalar_one()
        record_audit(conn, who=who, action="silence", target=_target(rule, group_key),
                     detail={"silence_id": int(new_id), "until": (now + duration).isoformat(),
                             "comment": comment[:2000]}, at=now)
    log.info("silence created", extra={"silence_id": new_id, "rule": rule,
                                       "group": group_key, "who": who})
    return int(new_id)


def expire_silence(engine: Engine, silence_id: int, *, who: str) -> None:
    """End a silence now (it stays in the table, as history)."""
    now = datetime.now(UTC)
    with unavailable_as_retryable(), engine.begin() as conn:
        row = conn.execute(select(tables.silences).where(S.id == silence_id)).first()
        if row is None:
            raise NotFoundError(f"no silence {silence_id}")
        conn.execute(update(tables.silences).where(S.id == silence_id, S.ends_at > now)
                     .values(ends_at=now))
        record_audit(conn, who=who, action="unsilence",
                     target=_target(row.rule, row.group_key),
                     detail={"silence_id": silence_id}, at=now)


def list_silences(engine: Engine, now: datetime | None = None, *, include_ended: bool = False,
                  limit: int = 100) -> list[Silence]:
    """Silences newest first: those holding (and, if asked, those that ended)."""
    now = now or datetime.now(UTC)
    query = select(tables.silences).order_by(S.id.desc()).limit(limit)
    if not include_ended:
        query = query.where(S.ends_at > now)
    with unavailable_as_retryable(), engine.connect() as conn:
        return [_silence(row) for row in conn.execute(query)]


def _target(rule: str, group_key: str | None) -> str:
    return f"rule:{rule}" + (f"|group:{group_key}" if group_key else "")

