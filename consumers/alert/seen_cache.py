"""Which (rule, article) pairs are already held or alerted, kept between evaluations.

A count or spike window's articles ride along in its alert unless already held or
alerted (`evaluate._drop_seen`); with windows kept in memory, every evaluation asked
``alert_articles`` about every article of every touched window again, by (rule, article)
pair: with 10,000 selective rules and 1,000 hits per evaluation, 200,000 pairs and 42 of
its 50 seconds (issue 17, fourth session). The live store (`outbox.SqlStore.seen`) now
reads the ledger (``alert_ledger``, `ledger.pairs_of_articles`) by article, once, and
keeps what it found here:

    cache = seen_for(engine, rules)          # one per database and rule set
    cache.sync(conn)                         # cleared if another evaluator ran
    cache.known(article_ids)                 # those answered from memory
    cache.load(article_ids, rows)            # all rows of those articles, read from SQL
    cache.stage(taken)                       # held by this evaluation's transaction
    cache.committed(watermark, updated_at)   # the transaction committed: keep them

Exactness. Only `outbox.run_tick` adds ledger rows, inside the transaction that moves
the cursor, so an article's rows as read, plus the pairs this evaluator staged and
committed, are its rows while the cursor is as this cache last left it (the check the
windows and the group cache use). Rows leave the ledger only with their article
(retention, which keeps held and digest articles); such an article can come back only
by being stored anew, with a new hit, and the batch's own articles are always read from SQL
(``fresh``), never from memory; a window article deleted since it was filed leaves the
alert anyway (`evaluate._gone`). Only rules with a count or spike window are kept (only
their windows bring back articles of earlier batches).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import Connection, Engine

from consumers.alert.compile import CompiledRule
from consumers.alert.group import ArticleRef
from consumers.alert.rule_cache import PerRuleSet
from consumers.alert.windows import cursor_token
from newswatch.utc import as_utc

# Articles kept at most; the least recently looked-up go first (read from SQL again).
MAX_ARTICLES = 200_000
NOTHING: frozenset[str] = frozenset()


class SeenCache:
    """Seen pairs of one rule set's windowed rules on one database (module docstring)."""

    def __init__(self) -> None:
        # Rule names whose pairs are kept (count and spike rules; `watch`), as the rule
        # set spells them, so kept names share the rule set's strings.
        self._names: dict[str, str] | None = None
        self._articles: OrderedDict[str, frozenset[str]] = OrderedDict()
        self._staged: dict[str, set[str]] = {}
        self._token: tuple[int, datetime | None] | None = None
        self.reads = 0  # articles answered from memory

    def sync(self, conn: Connection) -> None:
        """Start afresh unless the cursor is as this cache last left it."""
        self.sync_to(cursor_token(conn))

    def sync_to(self, token: tuple[int, datetime | None] | None) -> None:
        """`sync` with the cursor's token already read in this transaction."""
        self._staged = {}
        if token is None or token != self._token:
            self._articles.clear()
            self._token = None

    def watch(self, rules: Sequence[CompiledRule]) -> None:
        """Keep the pairs of ``rules`` that have a count or spike window (once)."""
        if self._names is None:
            self._names = {rule.name: rule.name for rule in rules
                           if rule.rule.count is not None or rule.rule.spike is not None}

    def kept(self, rule: str) -> bool:
        """Whether pairs of ``rule`` are kept here."""
        return self._names is not None and rule in self._names

    def answer(self, pairs: Iterable[tuple[str, str]]
               ) -> tuple[set[tuple[str, str]], list[tuple[str, str]]]:
        """Of ``pairs``: those answered here as seen, and those not answered (a rule not
        kept or an article not known: read SQL). One pass (a window's ~40,000 pairs per
        evaluation with 10,000 rules)."""
        names = self._names or {}
        articles = self._articles
        found: set[tuple[str, str]] = set()
        rest: list[tuple[str, str]] = []
        touched: set[str] = set()
        for pair in pairs:
            rule, aid = pair
            if rule in names:
                rules = articles.get(aid)
                if rules is not None:
                    touched.add(aid)
                    if rule in rules:
                        found.add(pair)
                    continue
            rest.append(pair)
        for aid in touched:
            articles.move_to_end(aid)
        self.reads += len(touched)
        return found, rest

    def known(self, article_ids: Iterable[str]) -> dict[str, frozenset[str]]:
        """The kept rules seen for each article known here (those not known are left out)."""
        found: dict[str, frozenset[str]] = {}
        articles = self._articles
        for aid in article_ids:
            rules = articles.get(aid)
            if rules is not None:
                articles.move_to_end(aid)
                found[aid] = rules
        self.reads += len(found)
        return found

    def load(self, article_ids: Iterable[str], pairs: Iterable[tuple[str, str]]) -> None:
        """``pairs`` are all the (rule, article) rows SQL holds for ``article_ids``, read in
        this evaluation's transaction (kept now: rows are only added by evaluations, and
        a rolled-back one leaves them as read)."""
        names = self._names or {}
        rules_of: dict[str, set[str]] = {aid: set() for aid in article_ids}
        for rule, aid in pairs:
            name = names.get(rule)
            if name is not None and aid in rules_of:
                rules_of[aid].add(name)
        for aid, rules in rules_of.items():
            self._articles[aid] = frozenset(rules) if rules else NOTHING
            self._articles.move_to_end(aid)

    def stage(self, taken: Iterable[tuple[str, Sequence[ArticleRef]]]) -> None:
        """What this evaluation's transaction takes (kept on commit): (rule, articles of
        one of its groups) each (`group.Decisions.taken`)."""
        names = self._names
        if not names:  # no count or spike rule: nothing is kept
            return
        staged = self._staged
        for rule, refs in taken:
            name = names.get(rule)
            if name is None:
                continue
            for ref in refs:
                rules = staged.get(ref[0])
                if rules is None:
                    staged[ref[0]] = {name}
                else:
                    rules.add(name)

    def committed(self, watermark: int, updated_at: datetime) -> None:
        """The evaluation committed with this cursor: keep what it staged."""
        articles = self._articles
        for aid, rules in self._staged.items():
            if aid in articles:  # an article not known stays unknown (read when needed)
                articles[aid] = articles[aid] | rules
        self._staged = {}
        while len(articles) > MAX_ARTICLES:
            articles.popitem(last=False)
        self._token = (watermark, as_utc(updated_at))

    def __len__(self) -> int:
        return len(self._articles)


_CACHES: PerRuleSet[SeenCache] = PerRuleSet(SeenCache)


def seen_for(engine: Engine, rules: Sequence[CompiledRule]) -> SeenCache | None:
    """The cache of this rule set on this database (None for a plain list of rules). A
    reloaded rules file starts a new one."""
    cache = _CACHES.get(engine, rules)
    if cache is not None:
        cache.watch(rules)
    return cache
