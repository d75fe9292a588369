"""Analysts' verdicts: recorded, read back, exported as training data, on SQLite and
PostgreSQL; the ``newswatch feedback`` commands; the export trains a model."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from consumers.enrich.train import read_labelled
from consumers.store import store_batch
from consumers.store.feedback import export_feedback, latest_verdicts, record_feedback
from newswatch.cli import main
from newswatch.errors import ArticleNotFoundError, FeedbackError, NewswatchError
from schemas import tables
from tests.factories import make_article, make_enriched

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def clock(*moments: datetime):  # type: ignore[no-untyped-def]
    times = iter(moments)
    return lambda: next(times)


def stored(engine: Engine, **fields: str) -> str:
    article = make_article(**fields)
    store_batch(engine, [make_enriched(article)])
    return article.id


def test_a_verdict_is_recorded_with_the_article_text(engine: Engine) -> None:
    article_id = stored(engine, title="Honduras cuts ties with Taiwan",
                        summary="Honduras switches to Beijing.",
                        content="Honduras switches to Beijing.\n\nTaipei loses an ally.")
    row_id = record_feedback(engine, article_id=article_id, topic="recognition",
                             verdict="relevant", who="ana", note="a switch of ties")
    with engine.connect() as connection:
        row = connection.execute(select(tables.feedback).where(
            tables.feedback.c.id == row_id)).one()
    assert (row.article_id, row.topic, row.verdict, row.who, row.note) == (
        article_id, "recognition", "relevant", "ana", "a switch of ties")
    assert row.title == "Honduras cuts ties with Taiwan"
    # The summary is inside the content, so the text is the content (as enrichment reads it).
    assert row.text == "Honduras switches to Beijing.\n\nTaipei loses an ally."
    assert latest_verdicts(engine, article_id) == {"recognition": "relevant"}


def test_the_newest_verdict_per_topic_wins(engine: Engine) -> None:
    article_id = stored(engine)
    times = clock(T0, T0 + timedelta(minutes=1), T0 + timedelta(minutes=2))
    record_feedback(engine, article_id=article_id, topic="recognition", verdict="relevant",
                    who="ana", clock=times)
    record_feedback(engine, article_id=article_id, topic="is_threat", verdict="relevant",
                    who="ben", clock=times)
    record_feedback(engine, article_id=article_id, topic="recognition",
                    verdict="not_relevant", who="ben", note="an award", clock=times)
    assert latest_verdicts(engine, article_id) == {"recognition": "not_relevant",
                                                   "is_threat": "relevant"}
    (record,) = export_feedback(engine)
    assert record["labels"] == ["is_threat"]
    assert record["judged"] == ["is_threat", "recognition"]
    assert record["why"] == "recognition: an award"
    with engine.connect() as connection:  # every verdict is kept: an audit trail
        assert len(connection.execute(select(tables.feedback)).all()) == 3


def test_export_gives_one_labelled_record_per_article(engine: Engine) -> None:
    first = stored(engine, title="One")
    second = stored(engine, title="Two")
    record_feedback(engine, article_id=first, topic="drug_trafficking",
                    verdict="not_relevant", who="ana")
    record_feedback(engine, article_id=second, topic="drug_trafficking", verdict="relevant",
                    who="ana")
    records = {record["id"]: record for record in export_feedback(engine)}
    assert set(records) == {first, second}
    assert records[first]["labels"] == []
    assert records[first]["title"] == "One"
    assert records[second]["labels"] == ["drug_trafficking"]
    assert records[second]["source"] == "feedback"
    assert set(records[second]) >= {"id", "title", "text", "labels", "judged", "why"}


@pytest.mark.parametrize(("fields", "error", "message"), [
    ({"article_id": "nope"}, ArticleNotFoundError, "'nope' is not in the database"),
    ({"verdict": "maybe"}, FeedbackError, "verdict 'maybe' is not one of"),
    ({"topic": "Not A Topic"}, FeedbackError, "not a topic name"),
    ({"who": "  "}, FeedbackError, "who must be a name"),
    ({"note": "x" * 5000}, FeedbackError, "note is longer"),
])
def test_a_bad_verdict_is_a_clear_error_and_records_nothing(
        engine: Engine, fields: dict[str, str], error: type[Exception], message: str) -> None:
    values = {"article_id": stored(engine), "topic": "recognition", "verdict": "relevant",
              "who": "ana", **fields}
    with pytest.raises(error, match=message) as raised:
        record_feedback(engine, **values)
    assert isinstance(raised.value, NewswatchError)
    assert list(export_feedback(engine)) == []


def test_verdicts_outlive_a_pruned_article(engine: Engine) -> None:
    article_id = stored(engine, title="Kept for training")
    record_feedback(engine, article_id=article_id, topic="recognition", verdict="relevant",
                    who="ana")
    with engine.begin() as connection:
        connection.execute(tables.articles.delete())
    (record,) = export_feedback(engine)
    assert record["title"] == "Kept for training"


# --- the commands, and the round trip into training --------------------------------------

@pytest.fixture
def cli_db(engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Engine:
    monkeypatch.setenv("NEWSWATCH_DATABASE_URL", db_url)
    monkeypatch.setenv("NEWSWATCH_LOG_FORMAT", "text")
    return engine


def test_feedback_add_and_export_round_trip_into_the_training_format(
        cli_db: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    about = stored(cli_db, title="Nauru switches diplomatic recognition to China",
                   summary="Nauru cuts ties with Taiwan.")
    passing = stored(cli_db, title="Pacific leaders meet",
                     summary="Leaders discussed fishing; Nauru's ties came up once.")
    assert main(["feedback", "add", about, "recognition", "--relevant", "--who", "ana"]) == 0
    assert "recorded feedback" in capsys.readouterr().out
    assert main(["feedback", "add", passing, "recognition", "--not-relevant",
                 "--note", "a passing mention"]) == 0
    out = tmp_path / "feedback.jsonl"
    assert main(["feedback", "export", "--out", str(out)]) == 0
    assert "exported 2 judged articles" in capsys.readouterr().err

    items = {item.id: item for item in read_labelled(out)}
    assert items[about].labels == frozenset({"recognition"})
    assert items[passing].labels == frozenset()
    assert items[passing].judged == frozenset({"recognition"})
    assert items[about].title == "Nauru switches diplomatic recognition to China"
    assert items[about].text == "Nauru cuts ties with Taiwan."

    assert main(["feedback", "export"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert {json.loads(line)["id"] for line in lines} == {about, passing}


def test_feedback_add_on_an_unknown_article_exits_2_with_the_reason(
        cli_db: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["feedback", "add", "missing-id", "recognition", "--relevant"]) == 2
    assert "article 'missing-id' is not in the database" in capsys.readouterr().err


def test_feedback_add_needs_a_verdict(cli_db: Engine) -> None:
    with pytest.raises(SystemExit):
        main(["feedback", "add", "some-id", "recognition"])
