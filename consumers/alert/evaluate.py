"""Incremental rule evaluation: new topic hits -> matches -> triggers -> decisions.

`evaluate` tells one evaluation's story top to bottom:

1. match: the articles with new topic hits are checked against the rules that can match
   them, found in an index of the rules (`rule_index.match_batch`);
2. dedup: (rule, article) pairs already alerted or held are dropped;
3. group: each article falls in one group of the rule (`payload.group_of`);
4. condition: for ``count`` and ``spike`` rules, the group's window is read from SQL, or
   from the live evaluator's `windows.WindowCache`, which keeps it up to date with each
   batch's matches; its articles are the alert's (those published outside the window do
   not ride along);
5. throttle/digest: `group.decide` turns triggers and group states into decisions;
6. record: the `StateStore` writes the decisions (the outbox) with their payloads.

The live store (`outbox.SqlStore`) does all of it in the caller's transaction, together
with the watermark advance, so a crash at any point leaves either the whole decision or
none of it. The backtest runs the same function with an in-memory store.

New hits are the rows not yet marked ``evaluated`` (`next_batch`), in id order; the live
store marks them in the evaluation's transaction. Transactions may commit ids out of
order (two store processes, one frozen for minutes while it holds new hits): a row
committed late is unevaluated until it is read, whatever the gap, which an id watermark
with a gap allowance could not promise (issue 16: 380 alerts of 381). The cursor's
watermark is still kept, as the highest id evaluated, for operators and `skip_history`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import Connection, select, update

from consumers.alert.compile import (
    CompiledRule,
    first_stored_query,
    models_by_name,
    published_query,
    rules_by_name,
    window_articles_query,
)
from consumers.alert.group import ArticleRef, Decisions, GroupState, Trigger, decide
from consumers.alert.payload import (
    ArticleView,
    TopicMemo,
    build_payload,
    group_of,
    load_articles,
    load_story,
)
from consumers.alert.rule_index import RuleIndex, batch_articles, index_of, match_batch
from consumers.alert.silence import Silence, drop_silenced
from consumers.alert.windows import (
    EMPTY,
    Entry,
    WindowCache,
    cacheable,
    feed_group,
    newest_first,
    verify,
)
from newswatch.utc import as_utc
from schemas import tables
from schemas.alert_payload import AlertPayload, StoryItem
from schemas.duration import format_duration
from schemas.rules_file import Rule

log = logging.getLogger(__name__)

H = tables.topic_hits
BATCH_LIMIT = 2000
# Articles of one count or spike window read at most (a payload shows 50 of them).
WINDOW_LIMIT = 5000


class StateStore(Protocol):
    """Where decisions and group memory live: SQL for the daemon, memory for backtests."""

    def seen(self, pairs: Sequence[tuple[str, str]], fresh: bool = False
             ) -> set[tuple[str, str]]:
        """The (rule, article id) pairs already held or alerted. ``fresh``: the pairs of
        the batch's own articles (a store that keeps pairs in memory reads these from
        its record)."""
        ...

    def load_groups(self, keys: Iterable[tuple[str, str]], rules: Mapping[str, Rule],
                    now: datetime) -> dict[tuple[str, str], GroupState]:
        """States of ``keys``, of groups due by ``now`` and of the rules' digest groups."""
        ...

    def apply(self, decisions: Decisions, payloads: Mapping[str, AlertPayload],
              rules: Mapping[str, Rule], now: datetime) -> list[int]:
        """Write the decisions; payloads are keyed by dedup key. Returns new alert ids."""
        ...


@dataclass(frozen=True)
class Cursor:
    """How far evaluation got: the highest hit id seen and the ids skipped below it."""

    watermark: int = 0
    gaps: Mapping[int, datetime] = field(default_factory=dict)


@dataclass(frozen=True)
class HitBatch:
    """New hits: ids in ``(low, high]`` plus ``late_ids`` (gaps that appeared)."""

    low: int
    high: int
    late_ids: tuple[int, ...] = ()
    count: int = 0
    topics: frozenset[str] = frozenset()
    full: bool = False


@dataclass
class Evaluation:
    """What one evaluation did."""

    hits: int = 0
    rules_checked: int = 0
    matches: int = 0
    alerts: list[tuple[int, str]] = field(default_factory=list)  # (alert id, rule)
    more: bool = False


def next_batch(conn: Connection, cursor: Cursor, now: datetime,
               limit: int = BATCH_LIMIT) -> tuple[HitBatch, Cursor]:
    """The next hits to evaluate (unevaluated, oldest first) and the cursor to store once
    they are evaluated; `mark_evaluated` marks them in the same transaction."""
    rows = conn.execute(
        select(H.c.id, H.c.topic).where(H.c.evaluated.is_(False)).order_by(H.c.id)
        .limit(limit)
    ).all()
    ids = tuple(int(r.id) for r in rows)
    high = max(cursor.watermark, *ids) if ids else cursor.watermark
    # An empty id range: the hits are named one by one (as the backtest does).
    batch = HitBatch(low=high, high=high, late_ids=ids, count=len(ids),
                     full=len(ids) >= limit, topics=frozenset(r.topic for r in rows))
    return batch, Cursor(watermark=high)


def mark_evaluated(conn: Connection, batch: HitBatch) -> None:
    """Mark ``batch``'s hits evaluated, in the transaction that recorded its decisions."""
    ids = list(batch.late_ids)
    for start in range(0, len(ids), 500):
        conn.execute(update(H).where(H.c.id.in_(ids[start:start + 500]))
                     .values(evaluated=True))


def evaluate(conn: Connection, rules: Sequence[CompiledRule], store: StateStore,
             now: datetime, batch: HitBatch | None, window_end: datetime | None = None,
             silences: Sequence[Silence] = (), windows: WindowCache | None = None
             ) -> Evaluation:
    """Evaluate ``rules`` on ``batch`` at time ``now`` and record the decisions in ``store``.

    ``window_end`` bounds count and spike windows (the backtest's clock); None means
    open-ended, so an article stamped a little in the future still counts. Groups covered
    by one of ``silences`` decide nothing (`silence.drop_silenced`); the backtest passes none.
    ``windows`` (the live evaluator's) answers count and spike windows from memory.
    """
    result = Evaluation(hits=batch.count if batch else 0, more=bool(batch and batch.full))
    by_name = rules_by_name(rules)

    # 1. match (the rule index: only rules that can match are checked)
    pairs: list[tuple[CompiledRule, str]] = []
    if batch is not None and batch.count:
        result.rules_checked, pairs = match_batch(conn, rules, batch)
        if windows is not None:
            windows.observe(conn, rules, batch_articles(conn, batch), pairs)

    # 2. dedup
    seen = store.seen([(rule.name, article_id) for rule, article_id in pairs], fresh=True)
    fresh = [(rule, aid) for rule, aid in pairs if (rule.name, aid) not in seen] if seen \
        else pairs
    result.matches = len(fresh)

    # 3. group
    views = load_articles(conn, {aid for _, aid in fresh})
    grouped: dict[tuple[str, str], list[ArticleRef]] = {}
    # The batch's fresh article ids by rule name: a window's rows among them need no seen
    # lookup (they are not seen), and those not among them are the ones looked up.
    fresh_of: dict[str, set[str]] = {}
    # ``fresh`` is ordered by rule: what depends on the rule alone is found once per run
    # of its pairs, and for a rule grouped by feed, its (rule, group key) and labels once
    # per feed (83,000 matches, 8,000 groups).
    # A count or spike group's trigger is made from its window, not from these refs: only
    # its first ref is kept (for the group's key and labels; 40,000 refs fewer here).
    last: CompiledRule | None = None
    plain = windowed = False
    taken: set[str] = set()
    names: dict[str, tuple[tuple[str, str], dict[str, str]]] = {}
    for rule, aid in fresh:
        if rule is not last:
            last, plain, windowed, names = rule, rule.by_feed, rule.windowed, {}
            taken = fresh_of.setdefault(rule.name, set())
        taken.add(aid)
        view = views.get(aid)
        if view is None:
            continue
        if plain:
            known = names.get(view.feed_id)
            if known is None:
                key, labels = feed_group(rule, view.feed_id)
                known = names[view.feed_id] = ((rule.name, key), labels)
            name, labels = known
            key = name[1]
        else:
            key, labels = group_of(rule.rule, view)
            name = (rule.name, key)
        refs = grouped.get(name)
        if refs is None:
            grouped[name] = [ArticleRef(aid, view.published, key, labels)]
        elif not windowed:
            refs.append(ArticleRef(aid, view.published, key, labels))

    # 4. condition (a count/spike window's articles not alerted yet make the trigger)
    def conditions() -> list[Trigger]:
        # Windows first, then one seen lookup for all their articles not in the batch, so
        # only the articles that ride along become `ArticleRef`s.
        found = {name: _window_of(conn, by_name[name[0]], refs, now, window_end, views,
                                  windows)
                 for name, refs in grouped.items()}
        # A window's rows of earlier batches that its rule is known to have taken
        # (`WindowCache.taken`) are not looked up again: with 10,000 rules, ~130,000
        # pairs an evaluation, the same ones every time.
        taken: dict[tuple[str, str], Collection[str]] = {}
        extra: list[tuple[str, str]] = []
        for name, window in found.items():
            if window is not None:
                rule_name = name[0]
                batch_ids = fresh_of.get(rule_name, EMPTY)
                rows, entries, pending = window
                if pending is not None:  # the whole group: its entries not taken
                    extra.extend((rule_name, aid) for aid in pending if aid not in batch_ids)
                    continue
                known = taken[name] = (windows.taken(*name) if windows is not None
                                       and entries is not None else EMPTY)
                extra.extend((rule_name, row[0]) for row in rows
                             if row[0] not in batch_ids and row[0] not in known)
        seen = store.seen(extra) if extra else set()
        if windows is not None and seen:
            windows.took(seen)
        seen_ids: dict[str, set[str]] = {}
        for rule_name, aid in seen:
            seen_ids.setdefault(rule_name, set()).add(aid)
        return [_trigger(conn, by_name[name[0]], refs, found[name],
                         seen_ids.get(name[0], EMPTY), now, taken.get(name, EMPTY))
                for name, refs in grouped.items()]

    triggers = conditions()
    if windows is not None and (gone := _gone(conn, index_of(rules), by_name, triggers,
                                                fresh_of)):
        # Filed articles deleted or changed without a new hit: out of memory, decide again.
        windows.discard(gone)
        triggers = conditions()

    # 5. throttle / digest
    rule_models = models_by_name(rules)
    states = store.load_groups(grouped.keys(), rule_models, now)
    triggers, states = drop_silenced(triggers, states, silences)
    decisions = decide(now, rule_models, triggers, states)

    # 6. record
    payloads = _payloads(conn, decisions, rule_models, views, now)
    ids = store.apply(decisions, payloads, rule_models, now)
    if windows is not None and decisions.taken:  # taken once the transaction commits
        windows.stage(decisions.taken, by_name)
    result.alerts = [(alert_id, fire.rule) for alert_id, fire in zip(ids, decisions.fires,
                                                                      strict=True)]
    return result


def _gone(conn: Connection, index: RuleIndex, rules: Mapping[str, CompiledRule],
          triggers: list[Trigger], fresh: Mapping[str, set[str]]) -> set[tuple[str, str]]:
    """Window articles from memory about to ride along that were deleted, or no longer
    match, since they were filed (checked in one batch; the batch's own matches, ``fresh``
    by rule name, need not be)."""
    filed: set[tuple[str, str]] = set()
    for trigger in triggers:
        if trigger.articles and cacheable(rules[trigger.rule]):
            batch_ids = fresh.get(trigger.rule, EMPTY)
            filed.update((trigger.rule, ref.article_id) for ref in trigger.articles
                         if ref.article_id not in batch_ids)
    if not filed:
        return set()
    return filed - verify(conn, index, rules, filed)


# A count or spike window: its (article id, published, feed) rows newest first, the
# group's entries from memory (None: read from SQL) and, when the rows are all of the
# group's entries, those not known taken by id (`WindowCache.untaken`); the rows are then
# in no particular order, and what rides along is sorted from those.
Window = tuple[Sequence[tuple[str, datetime, str]], Sequence[Entry] | None,
               Mapping[str, Entry] | None]


def _window_of(conn: Connection, rule: CompiledRule, refs: list[ArticleRef], now: datetime,
               window_end: datetime | None, views: dict[str, ArticleView],
               windows: WindowCache | None = None) -> Window | None:
    """The group's count or spike window (None for a rule without either): exactly the
    window's articles, so one published outside the window neither counts nor rides
    along."""
    model = rule.rule
    if model.count is not None:
        within = model.count.within
    elif model.spike is not None:
        within = model.spike.within
    else:
        return None
    key, labels = refs[0].group_key, refs[0].labels
    entries = (windows.window(conn, rule, key, labels, now, ordered=False)
               if windows is not None else None)
    if entries is None or windows is None:
        return _window(conn, rule, key, labels, now - within, window_end, views), None, None
    if model.count is not None and window_end is None:
        # The cache keeps a count group from now - within on: the window is all of it.
        if len(entries) <= WINDOW_LIMIT:
            return entries, entries, windows.untaken(rule.name, key)
        return newest_first(entries)[:WINDOW_LIMIT], entries, None
    return _between(newest_first(entries), now - within, window_end)[:WINDOW_LIMIT], \
        entries, None


def _trigger(conn: Connection, rule: CompiledRule, refs: list[ArticleRef],
             window: Window | None, seen: Collection[str], now: datetime,
             taken: Collection[str] = EMPTY) -> Trigger:
    """The group's trigger; a window's articles in ``seen`` or ``taken`` (ids the rule
    holds or alerted) count but do not ride along."""
    labels = refs[0].labels
    key = refs[0].group_key
    model = rule.rule
    if window is None:
        return Trigger(rule.name, key, labels, True, _explain(model, len(refs)), tuple(refs))
    rows, entries, pending = window
    # A group by feed has one feed (a set of each window's feeds cost 3% of an evaluation).
    feeds = (1 if rows else 0) if "feed" in labels else len({feed for _, _, feed in rows})
    count = len(rows)
    if model.count is not None:
        within = model.count.within
        holds = count >= model.count.at_least and feeds >= model.count.distinct_feeds
        reason = (f"{count} matching article(s) from {feeds} feed(s) within "
                  f"{format_duration(within)} (the rule needs {model.count.at_least} from "
                  f"{model.count.distinct_feeds})")
    else:
        holds, reason = _spike(conn, rule, labels, now, count, entries)
    if not holds:
        return Trigger(rule.name, key, labels, False, reason, ())
    if pending is not None:  # the rows' order, of the few not taken
        rows = newest_first([entry for aid, entry in pending.items() if aid not in seen])
        return Trigger(rule.name, key, labels, True, reason, tuple(
            ArticleRef(aid, published, key, labels) for aid, published, _ in rows))
    return Trigger(rule.name, key, labels, True, reason, tuple(
        ArticleRef(aid, published, key, labels)
        for aid, published, _ in rows if aid not in seen and aid not in taken))


def _window(conn: Connection, rule: CompiledRule, key: str, labels: Mapping[str, str],
            start: datetime, end: datetime | None, views: dict[str, ArticleView]
            ) -> list[tuple[str, datetime, str]]:
    """The group's matching articles published in ``[start, end]``, with their feeds.

    SQL narrows by the group's labels; a group by topic or entity then keeps only the
    articles `group_of` puts in it (an article naming two of the rule's topics is counted
    in its best one's group only, where it is also alerted). At most `WINDOW_LIMIT`.
    """
    rows = conn.execute(window_articles_query(rule, labels, start, end, WINDOW_LIMIT)).all()
    if any(name == "topic" or name.startswith("entity:") for name in labels):
        missing = {row.id for row in rows} - set(views)
        if missing:
            views.update(load_articles(conn, missing))
        rows = [row for row in rows
                if row.id in views and group_of(rule.rule, views[row.id])[0] == key]
    return [(row.id, as_utc(row.published), row.feed_id) for row in rows]


def _between(entries: Sequence[Entry], start: datetime, end: datetime | None
             ) -> list[Entry]:
    return [e for e in entries if e.published >= start and (end is None or e.published <= end)]


def _spike(conn: Connection, rule: CompiledRule, labels: Mapping[str, str], now: datetime,
           current: int, entries: Sequence[Entry] | None = None) -> tuple[bool, str]:
    """Current window count against windows of the same length in the trailing baseline.

    Only the baseline windows the store was watching count (it has watched since its
    oldest kept article was stored); until they add up to ``min_history`` no spike is
    decided, so a new install with an empty baseline does not fire at once. ``entries``:
    the group's articles from memory (`windows.WindowCache`), else the baseline is read
    from SQL.
    """
    spike = rule.rule.spike
    assert spike is not None
    within = format_duration(spike.within)
    windows = max(1, int(spike.baseline / spike.within))
    end = now - spike.within
    first_stored = conn.execute(first_stored_query()).scalar()
    watched = end - as_utc(first_stored) if first_stored is not None else timedelta(0)
    covered = min(windows, max(0, int(watched / spike.within)))
    history = spike.within * covered
    if history < spike.history_needed:
        return False, (f"{current} matching article(s) within {within}; no spike decision "
                       f"yet: the baseline holds {format_duration(history)} of history, the "
                       f"rule needs {format_duration(spike.history_needed)}")
    start = end - spike.within * covered
    counts = [0] * covered
    if entries is None:
        published_times = [as_utc(p) for (p,) in conn.execute(
            published_query(rule, labels, start, end))]
    else:
        published_times = [e.published for e in entries if start <= e.published < end]
    for published in published_times:
        slot = int((end - as_utc(published)) / spike.within)
        counts[min(max(slot, 0), covered - 1)] += 1
    mean = sum(counts) / covered
    std = math.sqrt(sum((c - mean) ** 2 for c in counts) / covered)
    base = (f"{current} matching article(s) within {within} against a baseline of "
            f"{mean:.1f} ± {std:.1f} per {within} over {format_duration(history)} of history "
            f"({covered} window(s))")
    if current < spike.min_count:
        return False, base
    if spike.ratio is not None:
        ratio = current / mean if mean > 0 else math.inf
        return ratio >= spike.ratio, f"{base} (ratio {ratio:.1f}, the rule needs {spike.ratio:g})"
    z = (current - mean) / max(std, 1.0)
    return z >= (spike.z_score or 0.0), f"{base} (z {z:.1f}, the rule needs {spike.z_score:g})"


def _explain(rule: Rule, articles: int) -> str:
    """The plain-rule reason: which conditions the article(s) met."""
    match = rule.match
    parts: list[str] = []
    if match.topics is not None and match.topics.any:
        parts.append("topic " + " or ".join(match.topics.any))
    if match.topics is not None and match.topics.all:
        parts.append("topics " + " and ".join(match.topics.all))
    if match.min_score > 0:
        parts.append(f"score ≥ {match.min_score:g}")
    if match.entities is not None and (match.entities.any or match.entities.all):
        names = [e.name for e in match.entities.any] + [e.name for e in match.entities.all]
        parts.append("entities " + ", ".join(names))
    if match.feeds:
        parts.append("feeds " + ", ".join(match.feeds))
    if match.tags:
        parts.append("tags " + ", ".join(match.tags))
    if match.title_keywords:
        parts.append("title has " + " or ".join(repr(k) for k in match.title_keywords))
    if match.languages:
        parts.append("language " + " or ".join(match.languages))
    return f"{articles} article(s) matched {rule.name}: " + "; ".join(parts)


def _payloads(conn: Connection, decisions: Decisions, rules: Mapping[str, Rule],
              views: dict[str, ArticleView], now: datetime) -> dict[str, AlertPayload]:
    missing = {ref.article_id for fire in decisions.fires for ref in fire.articles} - set(views)
    if missing:
        views.update(load_articles(conn, missing))
    payloads: dict[str, AlertPayload] = {}
    memo: TopicMemo = {}
    stories: dict[str | None, StoryItem | None] = {None: None}
    for fire in decisions.fires:
        story_id = fire.labels.get("story")
        if story_id not in stories:
            stories[story_id] = load_story(conn, story_id)
        payloads[fire.dedup_key] = build_payload(
            rule=rules[fire.rule], kind=fire.kind, labels=fire.labels,
            dedup_key=fire.dedup_key, reason=fire.reason, created_at=now,
            articles=[(views[ref.article_id], ref.labels) for ref in fire.articles
                      if ref.article_id in views],
            story=stories[story_id], memo=memo,
        )
    return payloads
