"""Unit tests of the console's pure parts: query translation, highlighting, the login
limiter, safe redirects and links; and the search ranking window on a real database."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from consumers.store.write import store_batch
from consumers.web import search
from consumers.web.app import safe_next
from consumers.web.auth import LoginLimiter
from consumers.web.highlight import MARK_END, MARK_START, Segment, marked, segments
from consumers.web.queries import web_link
from consumers.web.search import SearchQuery, fts5_query, search_articles
from tests.factories import BASE_TIME, make_article, make_enriched


@pytest.mark.parametrize(("typed", "expected"), [
    ("Taliban recognition", '"Taliban" AND "recognition"'),
    ('"Islamic State" threat', '"Islamic State" AND "threat"'),
    ("cocaine OR heroin seized", '("cocaine" OR "heroin") AND "seized"'),
    ("talks -Moscow", '"talks" NOT "Moscow"'),
    ('a"b', '"a""b"'),
    ("NEAR( * ) ^ :", '"NEAR("'),
    ("* ^ :", None),
    ("", None),
    ('say "x" OR', '"say" AND "x"'),
])
def test_queries_become_quoted_fts5_terms(typed: str, expected: str | None) -> None:
    assert fts5_query(typed) == expected


def test_evidence_sentences_and_phrases_are_cut_out() -> None:
    text = "Intro. This is about drug trafficking from Afghanistan. Outro is here."
    out = segments(text, {"drug_trafficking": [
        {"phrase": "drug trafficking",
         "sentence": "This is about drug   trafficking from Afghanistan."}]})
    assert "".join(s.text for s in out) == text
    assert [s.text for s in out if s.phrase] == ["drug trafficking"]
    assert "".join(s.text for s in out if s.topics) == (
        "This is about drug trafficking from Afghanistan.")


def test_an_acronym_phrase_is_not_marked_inside_words() -> None:
    text = "IS fighters: this is what it is."
    out = segments(text, {"is_threat": [{"phrase": "IS", "sentence": text}]})
    assert [s.text for s in out if s.phrase] == ["IS"]


def test_database_snippet_markers_become_segments() -> None:
    assert marked(f"a {MARK_START}b{MARK_END} c") == [
        Segment("a "), Segment("b", phrase=True), Segment(" c")]


def test_login_limiter_counts_per_address_and_per_account() -> None:
    limiter = LoginLimiter(attempts=2, window_s=60)
    limiter.failed("1.1.1.1", "ana", now=0)
    assert limiter.retry_after("1.1.1.1", "ana", now=1) == 0
    limiter.failed("2.2.2.2", "ANA", now=2)
    # Two failures for the account from two addresses: the account is locked everywhere.
    assert limiter.retry_after("3.3.3.3", "ana", now=3) == pytest.approx(57)
    assert limiter.retry_after("3.3.3.3", "bob", now=3) == 0
    assert limiter.retry_after("3.3.3.3", "ana", now=61) == 0


@pytest.mark.parametrize(("target", "safe"), [
    ("/alerts?rule=x", "/alerts?rule=x"), ("//evil.example", "/alerts"),
    ("https://evil.example", "/alerts"), ("/\\evil", "/alerts"), (None, "/alerts")])
def test_redirects_stay_on_the_site(target: str | None, safe: str) -> None:
    assert safe_next(target) == safe


def test_only_http_links_are_shown() -> None:
    assert web_link("https://a.example/x") == "https://a.example/x"
    assert web_link("javascript:alert(1)") is None
    assert web_link("data:text/html,x") is None


def test_ranking_covers_the_newest_matches(engine: Engine, monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    articles = [make_enriched(make_article(title=f"Cartel story {n}", feed_id=f"f{n % 2}",
                                           published=BASE_TIME + timedelta(hours=n)))
                for n in range(5)]
    for article in articles:  # one at a time: storage order is arrival order
        store_batch(engine, [article])
    found = search_articles(engine, SearchQuery(text="cartel"))
    assert len(found.hits) == 5
    monkeypatch.setattr(search, "RANK_WINDOW", 2)
    newest = search_articles(engine, SearchQuery(text="cartel"))
    assert sorted(h.title for h in newest.hits) == ["Cartel story 3", "Cartel story 4"]
    # Filters apply before the window, so older matches are reachable through them.
    filtered = search_articles(engine, SearchQuery(text="cartel", feed="f0"))
    assert sorted(h.title for h in filtered.hits) == ["Cartel story 2", "Cartel story 4"]
    paged = search_articles(engine, SearchQuery(text="cartel", page_size=1))
    assert paged.has_more
    assert len(paged.hits) == 1
