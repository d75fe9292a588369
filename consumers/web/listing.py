"""What every console listing (search results, alerts) shares: a date range and a page.

`Window` is the part of a listing's filters that is the same everywhere: ``since``
(inclusive) and ``until`` (exclusive), either end open when None, and a 1-based page of
``page_size`` rows. `within` applies the range to a query's time column, `one_page`
asks for one row more than a page, and `split_page` tells from it whether a next page
exists, so no listing counts all its rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select

Row = TypeVar("Row")
Query = TypeVar("Query", bound="Select[*tuple[Any, ...]]")  # a select of any columns


@dataclass(frozen=True, kw_only=True)
class Window:
    """A date range ``[since, until)`` and a page (pages below 1 read as 1)."""

    since: datetime | None = None
    until: datetime | None = None
    page: int = 1
    page_size: int = 25

    @property
    def page_number(self) -> int:
        """The page asked for, 1 at the least."""
        return max(1, self.page)

    @property
    def offset(self) -> int:
        """Rows before this page."""
        return (self.page_number - 1) * self.page_size

    def within(self, query: Query, column: ColumnElement[datetime]) -> Query:
        """``query`` limited to rows whose ``column`` lies in the range."""
        if self.since is not None:
            query = query.where(column >= self.since)
        if self.until is not None:
            query = query.where(column < self.until)
        return query

    def one_page(self, query: Query) -> Query:
        """``query`` (already ordered) cut to this page plus one row, the next page's sign."""
        return query.limit(self.page_size + 1).offset(self.offset)

    def split_page(self, rows: Sequence[Row]) -> tuple[list[Row], bool]:
        """The page's rows of what `one_page` returned, and whether more follow."""
        return list(rows[:self.page_size]), len(rows) > self.page_size
