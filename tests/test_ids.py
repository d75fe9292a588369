"""The article id contract: canonical URLs and stable ids (a table of cases)."""

from __future__ import annotations

import pytest

from schemas.ids import article_id, canonical_url


@pytest.mark.parametrize(
    ("raw", "base", "expected"),
    [
        ("https://Example.org/a?utm_source=x&id=7#top", None, "https://example.org/a?id=7"),
        ("http://example.org:80/a", None, "http://example.org/a"),
        ("https://example.org:8443/a", None, "https://example.org:8443/a"),
        ("/en/games/neverwinter/news", "https://www.arcgames.com/en/rss",
         "https://www.arcgames.com/en/games/neverwinter/news"),
        ("https://www.heise.de/news/x.html?wt_mc=rss.red.ho.ho.atom.beitrag.beitrag",
         None, "https://www.heise.de/news/x.html"),
        ("https://example.org/a?fbclid=1&b=2&a=1", None, "https://example.org/a?b=2&a=1"),
        ("  https://example.org  ", None, "https://example.org/"),
    ],
)
def test_canonical_url(raw: str, base: str | None, expected: str) -> None:
    assert canonical_url(raw, base) == expected


def test_same_story_with_different_trackers_has_one_id() -> None:
    a = article_id(canonical_url("https://news.example/story?utm_medium=rss"))
    b = article_id(canonical_url("https://NEWS.example/story#comments"))
    assert a == b
    assert len(a) == 32


def test_guid_is_used_only_without_a_link_and_is_distinct_from_urls() -> None:
    assert article_id(None, "abc") == article_id("", "abc")
    assert article_id(None, "abc") != article_id("abc")
    with pytest.raises(ValueError, match="link or a GUID"):
        article_id(None, None)
