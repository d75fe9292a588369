"""The alert ledger: which rules took which articles, one row per article and evaluation.

An evaluation that matches articles to rules writes one ``alert_ledger`` row per article
it took, ``{group key: [rule, ...]}`` (the rules that hold it or alert it now), instead of
one row per (rule, article) match: with 1,000 broad rules an evaluation of 1,000 hits
wrote ~333,000 rows, half of its time (issue 17). Nothing in a row changes afterwards:

- **dedup**: a rule never takes an article twice; the rules that took an article are
  those its rows name (`pairs_of_articles`, by the article index, one query per 500
  articles whatever the number of rules);
- **held or sent**: ledger ids only grow (AUTOINCREMENT on SQLite, a sequence on
  PostgreSQL; evaluators take turns on the cursor row), and a group records the highest
  id it sent (``alert_groups.released_through``, set when it releases). The group's
  entries after that mark are what its throttle holds; a rule with a digest also keeps
  ``digested_through`` (the mark when the digest last went out), and the entries between
  the two marks wait for the digest. `open_groups` rebuilds all of it from SQL after a
  restart, once, in one pass over the ledger from the oldest open mark on;
- **what an alert carried**: ``alerts.article_ids`` (the payload shows at most 50);
- **retention**: an article goes with its rows; `hold_floor` is the oldest open mark, and
  an article with an entry after it is kept (it may still be held or wait for a digest:
  exact for the entries a throttle holds, cautious for those released since).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, tuple_

from consumers.alert.group import DIGEST_KEY, ArticleRef, GroupState
from newswatch.chunks import chunks
from newswatch.utc import as_utc
from schemas import tables

L, G = tables.alert_ledger, tables.alert_groups
# Articles per IN list: far below SQLite's 32,766 and PostgreSQL's 65,535 parameters.
ARTICLES_PER_QUERY = 500
GROUPS_PER_QUERY = 400
# Ledger rows read per statement when rebuilding held articles.
SCAN_ROWS = 5000

Matches = dict[str, list[str]]  # group key -> rules


def record_groups(conn: Connection, taken: Iterable[tuple[str, Sequence[ArticleRef]]],
                  decided_at: datetime) -> int:
    """Write the articles each rule took in this evaluation, given as (rule, articles of one
    of its groups) (`group.Decisions.taken`: the articles of one item share their group
    key), one row per article; returns the highest ledger id after them (what a group
    releasing now has sent)."""
    matches_of: dict[str, Matches] = {}
    published: dict[str, datetime] = {}
    for rule, refs in taken:  # 83,000 pairs in 8,000 groups with 10,000 rules
        if not refs:
            continue
        key = refs[0][2]
        for aid, published_at, _, _ in refs:
            matches = matches_of.get(aid)
            if matches is None:
                matches_of[aid] = {key: [rule]}
                published[aid] = published_at
            elif (names := matches.get(key)) is None:
                matches[key] = [rule]
            else:
                names.append(rule)
    if matches_of:
        rows = [{"article_id": aid, "published": published[aid], "decided_at": decided_at,
                 "matches": matches} for aid, matches in matches_of.items()]
        conn.execute(L.insert(), rows)
    return top(conn)


def top(conn: Connection) -> int:
    """The highest ledger id (0 when empty)."""
    return int(conn.execute(select(func.max(L.c.id))).scalar() or 0)


def pairs_of_articles(conn: Connection, article_ids: Sequence[str]) -> list[tuple[str, str]]:
    """Every (rule, article id) the ledger holds for ``article_ids``."""
    found: list[tuple[str, str]] = []
    for part in chunks(article_ids, ARTICLES_PER_QUERY):
        for aid, matches in conn.execute(
                select(L.c.article_id, L.c.matches).where(L.c.article_id.in_(part))):
            found.extend((rule, aid) for rules in matches.values() for rule in rules)
    return found


def state_of(row: Any) -> GroupState:
    """A `GroupState` from its ``alert_groups`` row, holding nothing yet."""
    return GroupState(
        rule=row.rule, key=row.group_key, labels=dict(row.labels), sequence=row.sequence,
        last_alert_at=as_utc(row.last_alert_at), release_at=as_utc(row.release_at),
        last_true_at=as_utc(row.last_true_at), last_reason=row.last_reason,
        released_through=int(row.released_through),
    )


def open_groups(conn: Connection, rules: Mapping[str, Any]) -> dict[tuple[str, str], GroupState]:
    """Every group of ``rules`` that holds articles or whose digest waits, with them.

    A group holds articles exactly while its ``release_at`` is set (`group.decide`), and a
    digest waits while its ``*`` group's is; those states come back with their articles
    from one pass over the ledger after the oldest mark. Groups not returned hold nothing.
    """
    states = {(row.rule, row.group_key): state_of(row) for row in conn.execute(
        select(G).where(G.c.release_at.is_not(None))) if row.rule in rules}
    digests = sorted({rule for rule, key in states if key == DIGEST_KEY})
    waiting: dict[tuple[str, str], tuple[int, int, dict[str, str]]] = {}
    for part in chunks(digests, GROUPS_PER_QUERY):
        for mark in conn.execute(select(G.c.rule, G.c.group_key, G.c.labels,
                                        G.c.released_through, G.c.digested_through).where(
                G.c.rule.in_(part), G.c.group_key != DIGEST_KEY,
                G.c.released_through > G.c.digested_through)):
            waiting[(mark.rule, mark.group_key)] = (
                int(mark.digested_through), int(mark.released_through), dict(mark.labels))
    marks = [state.released_through for (_, key), state in states.items() if key != DIGEST_KEY]
    marks += [low for low, _, _ in waiting.values()]
    if not marks:
        return states
    after = min(marks)
    while True:
        rows = conn.execute(select(L.c.id, L.c.article_id, L.c.published, L.c.matches)
                            .where(L.c.id > after).order_by(L.c.id).limit(SCAN_ROWS)).all()
        for row in rows:
            _file(states, waiting, int(row.id), row.article_id, as_utc(row.published),
                  row.matches)
        if len(rows) < SCAN_ROWS:
            return states
        after = int(rows[-1].id)


def _file(states: dict[tuple[str, str], GroupState],
          waiting: Mapping[tuple[str, str], tuple[int, int, dict[str, str]]], entry: int,
          article_id: str, published: datetime | None, matches: Matches) -> None:
    """File one ledger row's entries: held by their group, or waiting in their digest."""
    assert published is not None
    for key, rules in matches.items():
        for rule in rules:
            state = states.get((rule, key))
            if state is not None and key != DIGEST_KEY and entry > state.released_through:
                state.held.append(ArticleRef(article_id=article_id, published=published,
                                             group_key=key, labels=state.labels))
                continue
            marks = waiting.get((rule, key))
            digest = states.get((rule, DIGEST_KEY))
            if marks is not None and digest is not None and marks[0] < entry <= marks[1]:
                digest.held.append(ArticleRef(article_id=article_id, published=published,
                                              group_key=key, labels=marks[2]))


def drop_removed(conn: Connection, rules: Mapping[str, Any]) -> list[str]:
    """Groups of rules no longer in ``rules`` give up what they hold; returns those rules.

    A group keeps its ``release_at`` while it holds articles, and `group.decide` skips
    groups of unknown rules: a rule removed from the rules file while its groups held
    articles would hold them for ever, and its mark would keep every article alerted
    after it from `db prune` (`hold_floor`). So when the evaluator rebuilds its groups
    for a rule set (start, reload), the removed rules' groups release nothing, and their
    marks move past the whole ledger, digest marks too: what they held is never sent,
    even if a rule of the same name comes back (the ledger says the rule took it).
    """
    pending = conn.execute(select(G.c.rule).where(G.c.release_at.is_not(None))
                           .distinct()).scalars()
    removed = sorted(rule for rule in pending if rule not in rules)
    if not removed:
        return []
    mark = top(conn)
    for part in chunks(removed, GROUPS_PER_QUERY):
        conn.execute(G.update().where(G.c.rule.in_(part)).values(
            release_at=None, released_through=mark, digested_through=mark))
    return removed


def digest_sent(conn: Connection, rule: str) -> None:
    """The digest of ``rule`` went out: what its groups released so far is sent."""
    conn.execute(G.update().where(G.c.rule == rule, G.c.group_key != DIGEST_KEY)
                 .values(digested_through=G.c.released_through))


def hold_floor(conn: Connection) -> int:
    """The oldest open mark: ledger entries after it may be held or wait for a digest
    (the highest id when nothing is open: no entry of the snapshot is held)."""
    held = conn.execute(select(func.min(G.c.released_through)).where(
        G.c.release_at.is_not(None), G.c.group_key != DIGEST_KEY)).scalar()
    pending = select(G.c.rule).where(G.c.group_key == DIGEST_KEY, G.c.release_at.is_not(None))
    waiting = conn.execute(select(func.min(G.c.digested_through)).where(
        G.c.rule.in_(pending), G.c.group_key != DIGEST_KEY,
        G.c.released_through > G.c.digested_through)).scalar()
    marks = [int(mark) for mark in (held, waiting) if mark is not None]
    return min(marks) if marks else top(conn)


def group_rows(conn: Connection, keys: Sequence[tuple[str, str]]) -> list[Any]:
    """The ``alert_groups`` rows of ``keys`` (missing ones left out)."""
    rows: list[Any] = []
    for part in chunks(keys, GROUPS_PER_QUERY):
        rows.extend(conn.execute(select(G).where(tuple_(G.c.rule, G.c.group_key).in_(part))))
    return rows
