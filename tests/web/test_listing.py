"""The listing window the console's search and alert pages share: range and page."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from consumers.web.listing import Window
from schemas import tables


def test_pages_below_one_read_as_one_and_offsets_follow() -> None:
    assert Window(page=0, page_size=10).offset == 0
    assert Window(page=-3).page_number == 1
    assert Window(page=3, page_size=10).offset == 20


def test_split_page_keeps_the_page_and_says_whether_more_follow() -> None:
    window = Window(page_size=2)
    assert window.split_page([1, 2, 3]) == ([1, 2], True)
    assert window.split_page([1, 2]) == ([1, 2], False)
    assert window.split_page([]) == ([], False)


def test_the_range_includes_since_and_excludes_until() -> None:
    column = tables.articles.c.published
    since, until = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
    bounded = Window(since=since, until=until).within(select(column), column)
    sql = str(bounded.compile(compile_kwargs={"literal_binds": False}))
    assert "articles.published >= :published_1" in sql
    assert "articles.published < :published_2" in sql
    assert Window().within(select(column), column).whereclause is None
    page = Window(page=2, page_size=5).one_page(select(column))
    assert (page._limit, page._offset) == (6, 5)
