"""Count and spike windows kept in memory between evaluations, instead of re-counted in SQL.

The live evaluator (`outbox.run_tick`) sees every matching (rule, article) pair once, when
the article's hits are evaluated; a `WindowCache` files those pairs by (rule, group) with
their publication time and feed, so a count or spike condition is decided from memory:

    cache = windows_for(engine, rules)          # one per database and rule set
    cache.sync(conn)                            # cleared if another evaluator ran
    cache.observe(conn, rules, batch, pairs)    # this batch's matches (and non-matches)
    window = cache.window(conn, rule, key, labels, start, views)

A group's window is read from SQL once, the first time it is needed (`WindowCache.window`
takes the same query as before, from the start of the longest period the rule looks back
over), and then kept up to date by `observe`: an article of the batch that matches is
added (or moved, when its group changed); one that no longer matches after a re-enrichment
is removed. Entries older than the rule's horizon are dropped. Count windows keep the
newest `WINDOW_LIMIT` entries (the SQL read no more, and which articles those are does not
depend on the older ones); a spike group over `MAX_SPIKE_ENTRIES` is read from SQL each
time, as before.

What is cached: count and spike rules grouped by ``rule`` and ``feed`` only. A group by
topic, entity or story depends on rows that change without a new hit to the rule (the
article's best topic, its most-named entity, the story it is placed in), and its spike
baseline counts articles of other groups: those rules keep reading SQL every time.

Exactness: the figures equal the SQL's as long as every change that makes an article
match or stop matching comes with a new topic hit, which is how the store writes
(a re-enrichment replaces the article's hits). Two exceptions are handled: another
evaluator on the same database (`sync` sees the cursor moved by someone else and starts
afresh) and articles deleted or left without any hit inside a window: before one rides
along in an alert it is checked against the database (`verify`); if it is gone it leaves
the window and the condition is decided again. One already alerted or held is not
checked again, so it still counts until the window passes it. The backtest passes no
cache and reads SQL as before; tests/alert/test_backtest_equals_live.py compares the two
alert by alert, tests/alert/test_windows.py the windows tick by tick.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from operator import attrgetter
from typing import NamedTuple

from sqlalchemy import Connection, Engine, select

from consumers.alert.compile import CompiledRule, window_articles_query
from consumers.alert.group import ArticleRef
from consumers.alert.payload import group_key
from consumers.alert.rule_cache import PerRuleSet
from consumers.alert.rule_index import RuleIndex, load_facts
from newswatch.chunks import chunks
from newswatch.utc import as_utc
from schemas import tables

log = logging.getLogger(__name__)

A, S = tables.articles, tables.alert_state
CURSOR_NAME = "topic_hits"
# Articles of one count window read at most (a payload shows 50 of them); as in evaluate.
WINDOW_LIMIT = 5000
# A spike group whose baseline holds more is not kept in memory (read from SQL each time).
MAX_SPIKE_ENTRIES = 50_000
# Entries kept in all groups together; the least recently used groups go first.
MAX_ENTRIES = 1_000_000
EMPTY: frozenset[str] = frozenset()
BY_ID, BY_PUBLISHED = attrgetter("article_id"), attrgetter("published")


def cursor_token(conn: Connection) -> tuple[int, datetime | None] | None:
    """The cursor as stored (watermark, updated_at); an evaluation that commits always
    changes it, so a cache that saw the last commit knows no one else evaluated since."""
    row = conn.execute(select(S.c.watermark, S.c.updated_at)
                       .where(S.c.name == CURSOR_NAME)).first()
    return None if row is None else (int(row.watermark), as_utc(row.updated_at))


def cacheable(rule: CompiledRule) -> bool:
    """Whether ``rule``'s windows are kept in memory (see the module docstring)."""
    return rule.windowed and rule.by_feed


def horizon(rule: CompiledRule) -> timedelta:
    """How far back from ``now`` the rule's windows reach (its baseline, for a spike)."""
    model = rule.rule
    if model.count is not None:
        return model.count.within
    assert model.spike is not None
    windows = max(1, int(model.spike.baseline / model.spike.within))
    return model.spike.within * (windows + 1)


def feed_group(rule: CompiledRule, feed_id: str) -> tuple[str, dict[str, str]]:
    """`payload.group_of` for a rule grouped by ``rule`` and ``feed`` only. The answer is
    kept on the rule (`CompiledRule.feed_groups`: making the key was a tenth of an
    evaluation with 10,000 rules) and shared between calls: its labels must not be
    changed."""
    known = rule.feed_groups.get(feed_id)
    if known is None:
        labels = {key: rule.name if key == "rule" else feed_id for key in rule.group_by}
        known = rule.feed_groups[feed_id] = (group_key(labels), labels)
    return known


class Entry(NamedTuple):
    """A window's article (a tuple: 5,000 windows of an evaluation make one each per
    article, and a frozen dataclass cost three times as much to build)."""

    article_id: str
    published: datetime
    feed_id: str


@dataclass
class Group:
    """One (rule, group)'s matching articles: id -> (published, feed)."""

    since: datetime  # entries published before this were never read
    entries: dict[str, Entry] = field(default_factory=dict)
    oldest: datetime | None = None  # no entry was published before it (a lower bound)
    # Entries the rule is known to have taken (held or alerted: the ledger says so, and
    # it keeps saying so while the article exists): not looked up again (`taken`).
    taken: set[str] = field(default_factory=set)


class WindowCache:
    """The windows of one rule set on one database (see the module docstring)."""

    def __init__(self) -> None:
        self._groups: OrderedDict[tuple[str, str], Group] = OrderedDict()
        self._filed: dict[str, dict[str, str]] = {}  # article -> rule -> group key
        self._uncached: set[tuple[str, str]] = set()  # spike groups too big to keep
        self._token: tuple[int, datetime | None] | None = None
        # (rule, articles of one of its groups) taken, not committed (`stage`)
        self._staged: list[tuple[str, Sequence[ArticleRef]]] = []
        self._size = 0
        self.cold_loads = 0  # windows read from SQL
        self.reads = 0  # windows answered

    # --- staying in step with the database -----------------------------------------

    def sync(self, conn: Connection) -> None:
        """Start afresh unless the cursor is as this cache last left it."""
        self.sync_to(cursor_token(conn))

    def sync_to(self, token: tuple[int, datetime | None] | None) -> None:
        """`sync` with the cursor's token already read in this transaction."""
        self._staged = []
        if token != self._token or token is None:
            if self._groups:
                log.info("alert windows read afresh (the cursor moved elsewhere)",
                         extra={"groups": len(self._groups)})
            self.clear()

    def committed(self, watermark: int, updated_at: datetime) -> None:
        """The evaluation that used the cache committed with this cursor: what it took
        (`stage`) is taken."""
        self._token = (watermark, as_utc(updated_at))
        staged, self._staged = self._staged, []
        groups = self._groups
        for rule_name, refs in staged:  # a group's articles: filed in it, or not at all
            group = groups.get((rule_name, refs[0].group_key))
            if group is not None:
                entries = group.entries
                group.taken.update(ref.article_id for ref in refs
                                   if ref.article_id in entries)

    def clear(self) -> None:
        self._groups.clear()
        self._filed.clear()
        self._uncached.clear()
        self._size = 0
        self._token = None

    # --- what a batch changed ----------------------------------------------------------

    def observe(self, conn: Connection, rules: Sequence[CompiledRule],
                article_ids: Iterable[str],
                pairs: Sequence[tuple[CompiledRule, str]]) -> None:
        """File this batch's matches; take out articles of the batch that stopped matching.

        ``article_ids`` are all articles with a hit in the batch, ``pairs`` every
        (rule, article) match among them, already alerted or not.
        """
        batch = set(article_ids)
        # ``pairs`` come ordered by rule: what depends on the rule alone is asked once
        # per run of its pairs, not per pair (83,000 of them with 10,000 rules).
        cached: list[tuple[CompiledRule, str]] = []
        matched: dict[str, set[str]] = {}
        last: CompiledRule | None = None
        keep = False
        for pair in pairs:
            rule = pair[0]
            if rule is not last:
                last, keep = rule, cacheable(rule)
            if keep:
                cached.append(pair)
                aid = pair[1]
                names = matched.get(aid)
                if names is None:
                    names = matched[aid] = set()
                names.add(rule.name)
        # By the batch, not ``set(self._filed)``: that set was as large as the cache.
        for aid in [aid for aid in batch if aid in self._filed]:
            for rule_name in [r for r in self._filed[aid] if r not in matched.get(aid, ())]:
                self._remove(rule_name, aid)
        if not cached:
            return
        query = select(A.c.id, A.c.published, A.c.feed_id)
        # One entry per article, shared by the groups it is filed in (~40 each here).
        rows = {row.id: Entry(row.id, as_utc(row.published), row.feed_id)
                for part in chunks(sorted(matched), 500)
                for row in conn.execute(query.where(A.c.id.in_(part)))}
        filed_of, groups = self._filed, self._groups
        last = None
        feeds: dict[str, tuple[str, dict[str, str]]] = {}
        name = ""
        for rule, aid in cached:
            row = rows.get(aid)
            if row is None:
                continue
            if rule is not last:
                last, feeds, name = rule, rule.feed_groups, rule.name
            known = feeds.get(row[2])
            key = (known or feed_group(rule, row[2]))[0]
            filed = filed_of.get(aid)
            if filed is not None and filed.get(name, key) != key:
                self._remove(name, aid)
                filed = filed_of.get(aid)
            group = groups.get((name, key))
            if group is None or row[1] < group.since:
                continue
            entries = group.entries
            if aid in entries or filed is None or len(entries) >= WINDOW_LIMIT:
                self._put(rule, key, group, row)
                continue
            # `_put`'s common case inline (40,000 filings an evaluation with 10,000
            # rules): a new entry of a group far from its limit, of an article filed
            # for another rule already.
            self._size += 1
            entries[aid] = row
            if group.oldest is None or row[1] < group.oldest:
                group.oldest = row[1]
            filed[name] = key

    def discard(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Take (rule, article) pairs out of their groups (found deleted or changed)."""
        for rule_name, aid in pairs:
            self._remove(rule_name, aid)

    def took(self, pairs: Iterable[tuple[str, str]]) -> None:
        """(rule, article) pairs the ledger holds (found seen, or committed by this
        evaluator): their entries are `taken` from now on."""
        filed_of, groups = self._filed, self._groups
        for rule_name, aid in pairs:
            filed = filed_of.get(aid)
            key = filed.get(rule_name) if filed is not None else None
            if key is not None:
                group = groups.get((rule_name, key))
                if group is not None and aid in group.entries:
                    group.taken.add(aid)

    def stage(self, taken: Iterable[tuple[str, Sequence[ArticleRef]]],
              rules: Mapping[str, CompiledRule]) -> None:
        """What this evaluation's transaction takes, (rule, articles of one of its
        groups) each (`group.Decisions.taken`): `took` on commit. Rules whose windows
        are not kept are left out."""
        self._staged.extend(item for item in taken if item[1] and cacheable(rules[item[0]]))

    def taken(self, rule_name: str, key: str) -> Collection[str]:
        """The group's entries known taken by its rule (`Group.taken`; empty when the
        group is not held). Exact: a pair taken stays in the ledger while its article
        exists, and an article stored anew comes with a new hit (`observe` forgets it)."""
        group = self._groups.get((rule_name, key))
        return group.taken if group is not None else EMPTY

    def groups(self) -> list[tuple[str, str]]:
        """The (rule, group key) windows held."""
        return list(self._groups)

    def _put(self, rule: CompiledRule, key: str, group: Group, entry: Entry) -> None:
        aid, published = entry[0], entry[1]
        if aid not in group.entries:
            self._size += 1
        elif group.taken:
            group.taken.discard(aid)  # filed again: looked up again
        group.entries[aid] = entry
        if group.oldest is None or published < group.oldest:
            group.oldest = published
        filed = self._filed.get(aid)
        if filed is None:
            filed = self._filed[aid] = {}
        filed[rule.name] = key
        if rule.rule.count is not None and len(group.entries) > WINDOW_LIMIT * 6 // 5:
            self._trim(rule.name, key, group)
        elif rule.rule.spike is not None and len(group.entries) > MAX_SPIKE_ENTRIES:
            self._drop_group((rule.name, key))
            self._uncached.add((rule.name, key))

    def _remove(self, rule_name: str, aid: str) -> None:
        key = self._filed.get(aid, {}).pop(rule_name, None)
        if not self._filed.get(aid, True):
            del self._filed[aid]
        group = self._groups.get((rule_name, key)) if key is not None else None
        if group is not None and group.entries.pop(aid, None) is not None:
            self._size -= 1
            group.taken.discard(aid)

    def _trim(self, rule_name: str, key: str, group: Group) -> None:
        """Keep the newest `WINDOW_LIMIT` entries (the ones a count window reads)."""
        # The SQL's order: newest first, ties by id.
        ordered = sorted(group.entries.items(), key=lambda item: item[0])
        ordered.sort(key=lambda item: item[1].published, reverse=True)
        for aid, _ in ordered[WINDOW_LIMIT:]:
            del group.entries[aid]
            group.taken.discard(aid)
            self._forget(rule_name, aid)
            self._size -= 1

    def _forget(self, rule_name: str, aid: str) -> None:
        filed = self._filed.get(aid)
        if filed is not None:
            filed.pop(rule_name, None)
            if not filed:
                del self._filed[aid]

    def _drop_group(self, name: tuple[str, str]) -> None:
        group = self._groups.pop(name, None)
        if group is None:
            return
        for aid in group.entries:
            self._forget(name[0], aid)
        self._size -= len(group.entries)

    # --- reading a window --------------------------------------------------------------

    def window(self, conn: Connection, rule: CompiledRule, key: str,
               labels: Mapping[str, str], now: datetime, ordered: bool = True
               ) -> list[Entry] | None:
        """The group's matching articles published since ``now - horizon(rule)`` (no end),
        newest first (``ordered=False``: in no particular order, `newest_first` sorts
        them); None when this group is not kept in memory (read SQL instead)."""
        name = (rule.name, key)
        if not cacheable(rule) or name in self._uncached:
            return None
        self.reads += 1
        start = now - horizon(rule)
        group = self._groups.get(name)
        if group is None or start < group.since:
            group = self._load(conn, rule, key, labels, start)
            if group is None:
                return None
        self._groups.move_to_end(name)
        if group.oldest is not None and group.oldest < start:  # else nothing is too old
            old = [aid for aid, entry in group.entries.items() if entry.published < start]
            for aid in old:
                del group.entries[aid]
                group.taken.discard(aid)
                self._forget(rule.name, aid)
            self._size -= len(old)
            group.oldest = min((e.published for e in group.entries.values()), default=None)
        group.since = max(group.since, start)
        entries = list(group.entries.values())
        if ordered:
            newest_first(entries)
        self._evict()
        return entries

    def untaken(self, rule_name: str, key: str) -> dict[str, Entry]:
        """The group's entries not known taken by its rule (`taken`), by article id: a
        set difference instead of a pass over the whole window (most of a long window is
        taken; 5,000 windows an evaluation with 10,000 rules)."""
        group = self._groups.get((rule_name, key))
        if group is None:
            return {}
        entries = group.entries
        return {aid: entries[aid] for aid in entries.keys() - group.taken}

    def _load(self, conn: Connection, rule: CompiledRule, key: str,
              labels: Mapping[str, str], start: datetime) -> Group | None:
        """Read the group from SQL: what the evaluator used to read on every evaluation."""
        self._drop_group((rule.name, key))
        limit = WINDOW_LIMIT if rule.rule.count is not None else MAX_SPIKE_ENTRIES + 1
        rows = conn.execute(window_articles_query(rule, labels, start, None, limit)).all()
        self.cold_loads += 1
        if rule.rule.spike is not None and len(rows) > MAX_SPIKE_ENTRIES:
            self._uncached.add((rule.name, key))
            return None
        # A count group of more than WINDOW_LIMIT was read newest first and cut: the older
        # entries are unknown, and never needed (they leave the window before the newest).
        group = Group(since=start)
        self._groups[(rule.name, key)] = group
        for row in rows:
            self._put(rule, key, group, Entry(row.id, as_utc(row.published), row.feed_id))
        return group

    def _evict(self) -> None:
        while self._size > MAX_ENTRIES and len(self._groups) > 1:
            name = next(iter(self._groups))
            self._drop_group(name)

    @property
    def size(self) -> int:
        """Entries held in all groups."""
        return self._size


def newest_first(entries: list[Entry]) -> list[Entry]:
    """Sort ``entries`` as the SQL window reads them: newest first, ties by id."""
    entries.sort(key=BY_ID)
    entries.sort(key=BY_PUBLISHED, reverse=True)
    return entries


def verify(conn: Connection, index: RuleIndex, rules: Mapping[str, CompiledRule],
           wanted: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """Of the (rule, article) pairs, those whose article still exists and still matches
    (the compiled check of ``index``, the rule set's)."""
    pairs = set(wanted)
    facts = load_facts(conn, {aid for _, aid in pairs})
    check = index.check
    return {(name, aid) for name, aid in pairs
            if aid in facts and check(rules[name], facts[aid])}


_CACHES: PerRuleSet[WindowCache] = PerRuleSet(WindowCache)


def windows_for(engine: Engine, rules: Sequence[CompiledRule]) -> WindowCache | None:
    """The cache of this rule set on this database (None for a plain list of rules, which
    has no identity to key a cache on). A reloaded rules file starts a new one."""
    return _CACHES.get(engine, rules)
