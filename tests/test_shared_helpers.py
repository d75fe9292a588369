"""The small shared helpers: UTC for stored times, and chunks for long statements."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from newswatch.chunks import chunks
from newswatch.utc import as_utc


@pytest.mark.parametrize(("moment", "expected"), [
    (datetime(2026, 1, 2, 3, 4), datetime(2026, 1, 2, 3, 4, tzinfo=UTC)),  # SQLite: naive
    (datetime(2026, 1, 2, 5, 4, tzinfo=timezone(timedelta(hours=2))),  # PostgreSQL session
     datetime(2026, 1, 2, 3, 4, tzinfo=UTC)),
    (None, None),
])
def test_as_utc(moment: datetime | None, expected: datetime | None) -> None:
    got = as_utc(moment)
    assert got == expected
    assert got is None or got.tzinfo is UTC


@pytest.mark.parametrize(("size", "expected"), [
    (2, [[0, 1], [2, 3], [4]]), (5, [[0, 1, 2, 3, 4]]), (9, [[0, 1, 2, 3, 4]])])
def test_chunks(size: int, expected: list[list[int]]) -> None:
    assert [list(chunk) for chunk in chunks(range(5), size)] == expected
    assert list(chunks([], size)) == []


def test_chunk_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        list(chunks([1], 0))
