"""Cutting a long list into statements of a bounded size.

SQLite allows at most 32,766 bound parameters per statement and PostgreSQL 65,535; an
``IN (...)`` or a multi-row INSERT over thousands of values is sent in chunks instead.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of ``items``, each at most ``size`` long (none when empty)."""
    if size < 1:
        raise ValueError(f"chunk size must be at least 1, not {size}")
    for start in range(0, len(items), size):
        yield items[start:start + size]
