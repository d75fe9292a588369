"""Group memory (``alert_groups`` rows with their held articles) kept between evaluations.

With throttled groups every matching article is held until the group's next alert, so
a group's held list grows all through its throttle; reading every touched group's held
articles back from SQL on each evaluation made the cost grow with the hits of the last
throttle period (1,000 broad rules: a third of the articles of ten minutes, read again
every tick). The live store (`outbox.SqlStore`) keeps the states it read or wrote here
and reads SQL only for groups it has not seen:

    cache = groups_for(engine, rules)        # one per database and rule set
    cache.sync(conn)                         # cleared if another evaluator ran
    state = cache.get(key)                   # a copy, to be mutated by `group.decide`
    cache.stage(states, complete)            # what this transaction leaves in SQL
    cache.committed(watermark, updated_at)   # the transaction committed: keep them

Only `outbox.run_tick` writes ``alert_groups`` and the ``alert_ledger``, inside the
transaction that moves the cursor, so the states are exact while the cursor is as this
cache last left it (`windows.cursor_token`, the check the windows use). Held articles
are not stored by group (`ledger`): once an evaluation has rebuilt every group that
holds any (``complete``), the cache has them all, and a group it lacks holds nothing.
The kept states themselves are handed out, not copies: copying each touched group's held
list cost O(held articles) per evaluation (with 10,000 rules, 1 s of a 9 s evaluation of
1,000 hits). So an evaluation that borrowed states and then neither committed nor left
them unchanged (rolled back, or died) leaves the cache dirty, and the next `sync` starts
afresh.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import Connection, Engine

from consumers.alert.compile import CompiledRule
from consumers.alert.group import GroupState
from consumers.alert.rule_cache import PerRuleSet
from consumers.alert.windows import cursor_token
from newswatch.utc import as_utc

# Groups kept at most; beyond it the cache starts afresh (SQL is read again).
MAX_GROUPS = 200_000


class GroupCache:
    """The group states of one rule set on one database (see the module docstring)."""

    def __init__(self) -> None:
        self._states: dict[tuple[str, str], GroupState] = {}
        self._staged: dict[tuple[str, str], GroupState] = {}
        self._token: tuple[int, datetime | None] | None = None
        self._lent = False  # states handed out to an evaluation that has not ended well
        self._staged_complete = False
        self._read: tuple[int, datetime | None] | None = None  # the cursor at `sync`
        self.complete = False  # every group holding articles is kept (module docstring)
        self.reads = 0  # states answered from memory

    def sync(self, conn: Connection) -> None:
        """Start afresh unless the cursor is as this cache last left it and no evaluation
        that borrowed states failed since."""
        self.sync_to(cursor_token(conn))

    def sync_to(self, token: tuple[int, datetime | None] | None) -> None:
        """`sync` with the cursor's token already read in this transaction."""
        self._staged = {}
        self._staged_complete = False
        self._read = token
        if token is None or token != self._token or self._lent:
            self._states.clear()
            self._token = None
            self._lent = False
            self.complete = False

    def get(self, key: tuple[str, str]) -> GroupState | None:
        """The kept state of ``key`` (itself: `group.decide` mutates it, and the
        evaluation must end in `committed` or `unchanged`); None when it must be read
        from SQL."""
        state = self._states.get(key)
        if state is None:
            return None
        self.reads += 1
        self._lent = True
        return state

    def stage(self, states: Mapping[tuple[str, str], GroupState], complete: bool = False
              ) -> None:
        """The states this evaluation's transaction leaves in SQL (kept on commit);
        ``complete``: they include every group that holds articles."""
        self._staged.update(states)
        self._staged_complete = self._staged_complete or complete

    def committed(self, watermark: int, updated_at: datetime) -> None:
        """The evaluation committed with this cursor: keep what it staged."""
        self._states.update(self._staged)
        self._staged = {}
        self.complete = self.complete or self._staged_complete
        self._staged_complete = False
        if len(self._states) > MAX_GROUPS:
            self._states.clear()
            self.complete = False
        self._token = (watermark, as_utc(updated_at))
        self._lent = False

    def unchanged(self) -> None:
        """The evaluation committed without writing anything: `group.decide` changed no
        state it was given (it returns every state it changes), so what is kept holds.
        States it read are kept too (SQL is as read while the cursor is as at `sync`), so
        an idle evaluator rebuilds the open groups once, not on every tick."""
        if self._read is not None and (self._token is None or self._token == self._read):
            self._states.update(self._staged)
            self.complete = self.complete or self._staged_complete
            self._token = self._read
        self._staged = {}
        self._staged_complete = False
        self._lent = False

    def __len__(self) -> int:
        return len(self._states)


_CACHES: PerRuleSet[GroupCache] = PerRuleSet(GroupCache)


def groups_for(engine: Engine, rules: Sequence[CompiledRule]) -> GroupCache | None:
    """The cache of this rule set on this database (None for a plain list of rules). A
    reloaded rules file starts a new one."""
    return _CACHES.get(engine, rules)
