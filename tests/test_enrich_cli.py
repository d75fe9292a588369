"""``newswatch classify`` and ``newswatch eval``: output shape, numbers, errors."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from consumers.enrich.enrich import Enricher
from newswatch.cli import main
from newswatch.cli.enrich import Item, classify, evaluate, read_items, report
from tests.enrich_fixtures import SEED_ARTICLE

INPUT: list[dict[str, object]] = [
    {"id": "a1", "title": "ISIS claims suicide bombing in Baghdad", "text": "", "extra": 1},
    {"id": 7, "title": "Police seize cocaine haul at port", "text": "Two men were held."},
    {"id": "a3", "title": "Sunny weekend ahead", "text": "No news today."},
]


def lines_of(records: list[dict[str, object]]) -> str:
    return "".join(json.dumps(record) + "\n" for record in records)


def test_classify_writes_one_exact_line_per_input(enricher: Enricher) -> None:
    out = io.StringIO()
    classify(enricher, read_items(io.StringIO(lines_of(INPUT)), "test"), out)
    results = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [result["id"] for result in results] == ["a1", 7, "a3"]
    for result in results:
        assert set(result) == {"id", "topics", "entities"}
        for topic in result["topics"]:
            assert set(topic) == {"topic", "score", "probability", "evidence"}
            assert 0.0 < topic["score"] <= 1.0  # the rules' score
            # The relevance model decides; its threshold applies to the probability.
            assert 0.4 <= topic["probability"] <= 1.0
            assert all(isinstance(sentence, str) and sentence for sentence in topic["evidence"])
        for entity in result["entities"]:
            assert set(entity) == {"text", "label", "count"}
            assert entity["count"] >= 1
    assert [t["topic"] for t in results[0]["topics"]] == ["is_threat"]
    assert results[0]["topics"][0]["evidence"] == ["ISIS claims suicide bombing in Baghdad"]
    assert {"text": "Islamic State", "label": "ORG", "count": 1} in results[0]["entities"]
    assert [t["topic"] for t in results[1]["topics"]] == ["drug_trafficking"]
    assert results[2]["topics"] == []


def test_classify_command_reads_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                       ) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(lines_of(INPUT[:1]) + "\n", encoding="utf-8")
    assert main(["classify", "--input", str(source)]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line)["topics"][0]["topic"] == "is_threat"


def test_classify_command_reads_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classify", "--text-file", str(SEED_ARTICLE)]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    result = json.loads(line)
    assert result["id"] == "seed-article.txt"
    assert {t["topic"] for t in result["topics"]} == {
        "is_threat", "drug_trafficking", "recognition"}
    assert all(t["evidence"] for t in result["topics"])


def test_bad_input_line_is_an_error_naming_it(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(lines_of(INPUT[:1]) + "{not json\n", encoding="utf-8")
    assert main(["classify", "--input", str(source)]) == 2
    assert "in.jsonl, line 2: not JSON" in capsys.readouterr().err


LABELLED = [
    Item("t1", "ISIS claims suicide bombing in Baghdad", "", frozenset({"is_threat"})),
    Item("t2", "Islamic State fighters attack army base", "", frozenset({"is_threat"})),
    Item("t3", "Residents mark anniversary of the liberation of Mosul", "",
         frozenset({"is_threat"})),
    Item("t4", "Cartels should be dealt with like ISIS, says senator", "",
         frozenset({"drug_trafficking"})),
    Item("t5", "Sunny weekend ahead", "", frozenset()),
]


def test_eval_counts_and_misses(enricher: Enricher) -> None:
    results = evaluate(enricher, LABELLED)
    threat = results["is_threat"]
    assert (threat.tp, threat.fp, threat.fn) == (2, 0, 1)
    assert threat.precision == 1.0
    assert threat.recall == pytest.approx(2 / 3)
    assert threat.f1 == pytest.approx(0.8)
    drugs = results["drug_trafficking"]
    assert (drugs.tp, drugs.fp, drugs.fn) == (1, 0, 0)
    text = report(results, len(LABELLED))
    assert "is_threat" in text
    assert "0.800" in text
    assert "missed   is_threat" in text
    assert "t3" in text
    assert "Residents mark anniversary of the liberation of Mosul" in text
    # Issue 18: no document is labelled recognition: nothing to measure, not 1.00.
    assert not results["recognition"].has_examples
    (row,) = [line for line in text.splitlines() if line.startswith("recognition")]
    assert "no examples" in row
    assert "1.000" not in row


def test_eval_command_fails_below_min_f1(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "labelled.jsonl"
    source.write_text(lines_of([
        {"id": item.id, "title": item.title, "text": item.text, "labels": sorted(item.labels)}
        for item in LABELLED]), encoding="utf-8")
    assert main(["eval", str(source), "--min-f1", "0.9"]) == 1
    out = capsys.readouterr().out
    assert "F1 below 0.9: is_threat" in out
    assert main(["eval", str(source), "--min-f1", "0.5"]) == 0
