"""``rules test``: replay stored history through the rules; nothing is sent or written.

The stored topic hits published in ``[since, until]`` are fed to the same `evaluate`
the daemon runs, in publication order, one publication moment at a time with the clock
set to it (a daemon sees an article moments after it is stored; the replay takes that to
be when it was published), and throttled groups and digests are released at the moment
they fall due. Group state lives in memory (`MemoryStore`). Count and spike windows are
read from SQL as of that clock, so a rule is judged on what it would have seen then, and
on a history that arrived in publication order the alerts are the daemon's, one for one
(tests/alert/test_backtest_equals_live.py). A ``step`` groups the moments of each
interval into one evaluation at its end: faster on long histories, no longer exact.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import Connection, Engine, select

from consumers.alert.compile import CompiledRule
from consumers.alert.evaluate import HitBatch, evaluate
from consumers.alert.group import Decisions, GroupState
from newswatch.utc import as_utc
from schemas import tables
from schemas.alert_payload import AlertPayload, ArticleItem
from schemas.rules_file import Rule

H = tables.topic_hits
STEP = timedelta(0)  # each publication moment is one evaluation, as the daemon's
MAX_HITS_PER_STEP = 500  # with a step: hits per evaluation at most


@dataclass
class RuleReport:
    """What one rule would have done over the period."""

    rule: str
    alerts: int = 0
    articles: int = 0
    per_day: Counter[date] = field(default_factory=Counter)
    samples: list[ArticleItem] = field(default_factory=list)
    held_at_end: int = 0
    decided: list[AlertPayload] = field(default_factory=list)  # every alert, in order

    def to_json(self) -> dict[str, object]:
        return {
            "rule": self.rule, "alerts": self.alerts, "articles": self.articles,
            "per_day": {day.isoformat(): n for day, n in sorted(self.per_day.items())},
            "held_at_end": self.held_at_end,
            "samples": [s.model_dump(mode="json", include={"id", "title", "url", "source",
                                                          "published", "group"})
                        for s in self.samples],
        }


class MemoryStore:
    """`evaluate.StateStore` in memory: the backtest writes nothing to the database."""

    def __init__(self, samples: int) -> None:
        self.seen_pairs: set[tuple[str, str]] = set()
        self.groups: dict[tuple[str, str], GroupState] = {}
        self.reports: dict[str, RuleReport] = {}
        self._samples = samples
        self._next_id = 1

    def seen(self, pairs: Sequence[tuple[str, str]], fresh: bool = False
             ) -> set[tuple[str, str]]:
        return {pair for pair in pairs if pair in self.seen_pairs}

    def load_groups(self, keys: Iterable[tuple[str, str]], rules: Mapping[str, Rule],
                    now: datetime) -> dict[tuple[str, str], GroupState]:
        return self.groups

    def apply(self, decisions: Decisions, payloads: Mapping[str, AlertPayload],
              rules: Mapping[str, Rule], now: datetime) -> list[int]:
        for rule, ref in decisions.holds:
            self.seen_pairs.add((rule, ref.article_id))
        ids = []
        for fire in decisions.fires:
            report = self.reports.setdefault(fire.rule, RuleReport(fire.rule))
            report.alerts += 1
            report.articles += len(fire.articles)
            report.per_day[now.date()] += 1
            report.decided.append(payloads[fire.dedup_key])
            for item in payloads[fire.dedup_key].articles:
                if len(report.samples) < self._samples:
                    report.samples.append(item)
            ids.append(self._next_id)
            self._next_id += 1
        return ids


def backtest(engine: Engine, rules: Sequence[CompiledRule], since: datetime,
             until: datetime, *, samples: int = 3, step: timedelta = STEP
             ) -> list[RuleReport]:
    """Per rule (in file order), the alerts it would have fired between the two times."""
    store = MemoryStore(samples)
    with engine.connect() as conn:
        hits = conn.execute(
            select(H.c.id, H.c.topic, H.c.published)
            .where(H.c.published >= since, H.c.published <= until)
            .order_by(H.c.published, H.c.id)
        ).all()
        batch: list[tuple[int, str]] = []
        batch_end: datetime | None = None
        for hit_id, topic, published in hits:
            moment = as_utc(published)
            if batch and (batch_end is None or moment > batch_end
                          or (step and len(batch) >= MAX_HITS_PER_STEP)):
                _run(conn, rules, store, batch, batch_end or moment)
                batch = []
            if not batch:
                batch_end = min(until, moment + step)
            batch.append((hit_id, topic))
        if batch:
            _run(conn, rules, store, batch, batch_end or until)
        # Release what the throttle and digests would have sent by the end.
        _release_due(conn, rules, store, until)
        conn.rollback()
    reports = [store.reports.get(rule.name, RuleReport(rule.name)) for rule in rules]
    held = Counter(state.rule for state in store.groups.values() for _ in state.held)
    for report in reports:
        report.held_at_end = held[report.rule]
    return reports


def _release_due(conn: Connection, rules: Sequence[CompiledRule], store: MemoryStore,
                 until: datetime, *, inclusive: bool = True) -> None:
    """Release held groups and digests at the times they fall due, up to ``until``, as
    the daemon would have (it evaluates every fraction of a second). Not ``inclusive``:
    what falls due at ``until`` itself is left to the evaluation at that moment, which
    releases it together with what arrives then, as the daemon's one tick would."""
    while True:
        due = [state.release_at for state in store.groups.values()
               if state.release_at is not None
               and (state.release_at <= until if inclusive else state.release_at < until)]
        if not due:
            return
        evaluate(conn, rules, store, min(due), None, window_end=min(due))


def _run(conn: Connection, rules: Sequence[CompiledRule], store: MemoryStore,
         batch: list[tuple[int, str]], now: datetime) -> None:
    _release_due(conn, rules, store, now, inclusive=False)
    hit_batch = HitBatch(low=0, high=0, late_ids=tuple(hit_id for hit_id, _ in batch),
                         count=len(batch), topics=frozenset(topic for _, topic in batch))
    evaluate(conn, rules, store, now, hit_batch, window_end=now)
