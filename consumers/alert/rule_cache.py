"""One in-memory cache per compiled rule set and database, for the evaluator's state.

A cache lives as long as its rule set: a reloaded rules file is a new `CompiledRules` and
starts empty, and the weak keys let the old set (and its caches) go.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from sqlalchemy import Engine

from consumers.alert.compile import CompiledRule, CompiledRules

T = TypeVar("T")


class PerRuleSet(Generic[T]):
    """Caches made by ``make``, one per (rule set, database URL)."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._caches: weakref.WeakKeyDictionary[CompiledRules, dict[str, T]] = (
            weakref.WeakKeyDictionary())

    def get(self, engine: Engine, rules: Sequence[CompiledRule]) -> T | None:
        """The cache of ``rules`` on ``engine``'s database; None for a plain list of rules,
        which has no identity to key a cache on."""
        if not isinstance(rules, CompiledRules):
            return None
        per_database = self._caches.setdefault(rules, {})
        url = engine.url.render_as_string(hide_password=True)
        cache = per_database.get(url)
        if cache is None:
            cache = per_database[url] = self._make()
        return cache
