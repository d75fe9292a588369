"""``newswatch db`` and ``newswatch articles`` through the real entry point, on both databases."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from consumers.store import store_batch
from newswatch import migrate
from newswatch.cli import main
from newswatch.cli.store import parse_duration, parse_since
from tests.factories import make_article, make_enriched, make_entity, make_hit


@pytest.fixture
def use_db(db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("NEWSWATCH_DATABASE_URL", db_url)
    monkeypatch.setenv("NEWSWATCH_LOG_FORMAT", "text")
    return db_url


@pytest.fixture
def seeded(engine: Engine, use_db: str) -> dict[str, str]:
    """Three recent articles and one from last month; returns title -> id."""
    now = datetime.now(UTC)
    items = [
        make_enriched(make_article(title="Russia invites the Taliban", feed_id="rferl",
                                   feed_name="RFE/RL", published=now - timedelta(hours=2)),
                      entities=[make_entity("Taliban", "ORG", 9), make_entity("Russia", "GPE")],
                      topics=[make_hit("recognition", 0.9), make_hit("is_threat", 0.6)]),
        make_enriched(make_article(title="[LIVE] Cartel shipment seized", feed_id="wapo",
                                   published=now - timedelta(hours=5)),
                      entities=[make_entity("Mexico", "GPE")],
                      topics=[make_hit("drug_trafficking", 0.8)]),
        make_enriched(make_article(title="Local bake sale", feed_id="wapo",
                                   published=now - timedelta(hours=1)),
                      entities=[], topics=[]),
        make_enriched(make_article(title="Old talks with the Taliban", feed_id="rferl",
                                   published=now - timedelta(days=30)),
                      entities=[make_entity("Taliban", "ORG")],
                      topics=[make_hit("recognition", 0.7)]),
    ]
    store_batch(engine, items)
    return {item.article.title: item.article.id for item in items}


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_db_upgrade_then_current(use_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "current"]) == 1
    assert "run: newswatch db upgrade" in capsys.readouterr().out

    assert main(["db", "upgrade"]) == 0
    head = migrate.head_revision()
    assert f"at revision {head}" in capsys.readouterr().out
    assert main(["db", "upgrade"]) == 0  # idempotent
    capsys.readouterr()

    assert main(["db", "current"]) == 0
    assert f"code needs {head} (up to date)" in capsys.readouterr().out
    assert main(["db", "check"]) == 0
    assert "matches the tables" in capsys.readouterr().out


def test_articles_refuses_a_database_never_migrated(
    use_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["articles", "--topic", "recognition"]) == 2
    assert "run newswatch db upgrade" in capsys.readouterr().err


def test_articles_by_topic_as_json(
    seeded: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["articles", "--topic", "recognition", "--since", "24h", "--json"]) == 0

    rows = json_lines(capsys.readouterr().out)
    assert [row["title"] for row in rows] == ["Russia invites the Taliban"]
    topics = rows[0]["topics"]
    assert isinstance(topics, list)
    assert [(t["topic"], t["score"]) for t in topics] == [("recognition", 0.9),
                                                          ("is_threat", 0.6)]
    assert topics[0]["evidence"][0]["phrase"] == "recognise the Taliban"
    assert rows[0]["feed_id"] == "rferl"


def test_articles_filters_by_entity_feed_and_time(
    seeded: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    main(["articles", "--entity", "taliban", "--since", "60d", "--json"])
    assert [r["title"] for r in json_lines(capsys.readouterr().out)] == [
        "Russia invites the Taliban", "Old talks with the Taliban"]

    main(["articles", "--feed", "wapo", "--json"])
    assert [r["title"] for r in json_lines(capsys.readouterr().out)] == [
        "Local bake sale", "[LIVE] Cartel shipment seized"]

    main(["articles", "--topic", "recognition", "--entity", "Russia", "--json"])
    assert [r["title"] for r in json_lines(capsys.readouterr().out)] == [
        "Russia invites the Taliban"]

    main(["articles", "--topic", "no_such_topic", "--json"])
    assert capsys.readouterr().out == ""


def test_articles_prints_a_readable_table(
    seeded: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "160")

    assert main(["articles", "--since", "24h"]) == 0

    out = capsys.readouterr().out
    assert "3 articles since" in out
    assert "Russia invites the Taliban" in out
    assert "recognition 0.90" in out
    assert "is_threat 0.60" in out
    # Square brackets in a title are text, not rich markup.
    assert "[LIVE] Cartel shipment seized" in out
    assert "drug_trafficking 0.80" in out
    assert "Old talks" not in out


def test_db_prune_reports_what_it_deleted(
    seeded: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    # By stored time (the default) nothing is old: all four were stored just now.
    assert main(["db", "prune", "--older-than", "7d", "--dry-run"]) == 0
    assert "Would delete 0 of 4 articles stored before" in capsys.readouterr().out
    assert main(["db", "prune", "--older-than", "7d", "--by", "published", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "dry run, nothing deleted. Would delete 1 of 4 articles published before" in out
    assert ", with 1 topic hits and 1 entity links;" in out
    assert main(["db", "prune", "--older-than", "7d", "--by", "published", "--dry-run"]) == 0
    assert "Would delete 1 of 4" in capsys.readouterr().out  # the dry run deleted nothing

    assert main(["db", "prune", "--older-than", "7d", "--by", "published",
                 "--batch-size", "1"]) == 0
    out = capsys.readouterr().out
    assert "deleted 1 articles published before" in out
    assert "with 1 topic hits and 1 entity links; 0 seen items; 0 alerts" in out
    assert "in 1 transactions" in out
    main(["articles", "--entity", "taliban", "--since", "60d", "--json"])
    assert [r["title"] for r in json_lines(capsys.readouterr().out)] == [
        "Russia invites the Taliban"]


@pytest.mark.parametrize(("text", "seconds"), [
    ("90d", 90 * 86400), ("24h", 86400), ("30m", 1800), ("45s", 45), ("2w", 14 * 86400),
    (" 7D ", 7 * 86400), ("1.5d", 36 * 3600), ("1h30m", 5400),
])
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "90", "d", "-3d", "3 days", "3y", "30m1h"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="not a duration"):
        parse_duration(text)


def test_since_takes_a_duration_or_a_date() -> None:
    assert parse_since("2021-10-21") == datetime(2021, 10, 21, tzinfo=UTC)
    assert abs(parse_since("1h") - (datetime.now(UTC) - timedelta(hours=1))) < timedelta(
        seconds=5)
    with pytest.raises(argparse.ArgumentTypeError):
        parse_since("yesterday")


def test_prune_refuses_alerts_kept_shorter_than_articles(
    use_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "prune", "--older-than", "30d", "--alerts-older-than", "7d"]) == 2
    assert "alerts are kept at least as long as articles" in capsys.readouterr().err


def test_prune_needs_an_age(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["db", "prune"])
    assert "--older-than" in capsys.readouterr().err


def test_articles_filters_by_language_and_shows_it(
    engine: Engine, use_db: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = datetime.now(UTC)
    store_batch(engine, [
        make_enriched(make_article(title=title, language=language,
                                   published=now - timedelta(hours=hours)))
        for title, language, hours in (("Anschlag in Wien", "de", 1),
                                       ("Ataque em Lisboa", "pt-BR", 2),
                                       ("Atentado em Cabul", "pt", 3),
                                       ("Attack in Kabul", "en", 4),
                                       ("No language", None, 5))])

    main(["articles", "--language", "pt", "--json"])
    rows = json_lines(capsys.readouterr().out)
    assert [(row["title"], row["language"]) for row in rows] == [
        ("Ataque em Lisboa", "pt-BR"), ("Atentado em Cabul", "pt")]

    main(["articles", "--language", "DE", "--json"])
    assert [row["title"] for row in json_lines(capsys.readouterr().out)] == ["Anschlag in Wien"]

    monkeypatch.setenv("COLUMNS", "160")
    main(["articles", "--language", "en"])
    out = capsys.readouterr().out
    assert "language en" in out
    assert "Attack in Kabul" in out
    assert "Wien" not in out
