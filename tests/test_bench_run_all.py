"""The benchmark command (`bench.run_all`) cannot rot: its table writer renders the
committed results (the README's table is exactly that rendering), a failed or skipped
section says why in its row, and every section runs its real code in a tiny run against
a real broker (and PostgreSQL when the test server is set)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from bench.run_all import table
from bench.run_all.runner import README, measure_sections, merged
from bench.run_all.section import Run
from bench.run_all.sections import NAMES, SECTIONS
from bench.run_all.sizes import TINY
from consumers.enrich.enrich import Enricher

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results.json"


def committed() -> dict[str, Any]:
    results: dict[str, Any] = json.loads(RESULTS.read_text())
    return results


def test_every_section_module_is_in_the_run_once() -> None:
    assert len(set(NAMES)) == len(NAMES)
    assert NAMES == ("producer", "enrich", "store", "enrich_scaling", "end_to_end",
                     "fulltext")
    assert all(callable(s.measure) and callable(s.rows) for s in SECTIONS)


def test_the_committed_results_render_a_row_per_figure() -> None:
    results = committed()
    assert set(NAMES) <= results.keys()
    rendered = table.table(results)
    assert rendered[0] == "| Figure | Result | Target | Conditions |"
    labels = [line.split(" | ")[0].removeprefix("| ") for line in rendered[2:]]
    assert labels[:4] == ["Producer: new items", "Enrich: raw spaCy `nlp.pipe`",
                          "Enrich: consumer path (Kafka in -> enrich -> Kafka out)",
                          "Enrich: consumer path / raw"]
    assert "End to end: feed -> webhook p50 / p99" in labels
    assert f"| Producer: new items | {results['producer']['items_per_s']:,.0f} items/s |" \
        in "\n".join(rendered)
    # results.json carries the same table it renders to.
    assert results["table_markdown"] == "\n".join(rendered)


def test_the_readme_table_is_the_rendering_of_results_json() -> None:
    assert table.readme_block(README.read_text(encoding="utf-8")) == table.report(committed())


def test_write_readme_replaces_only_the_block(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nbefore\n{table.BEGIN}\nold table\n{table.END}\nafter\n")
    table.write_readme(committed(), readme)
    text = readme.read_text()
    assert text.startswith("# Title\n\nbefore\n")
    assert text.endswith(f"{table.END}\nafter\n")
    assert "old table" not in text
    assert table.readme_block(text) == table.report(committed())


def test_a_failed_section_says_why_and_the_others_still_render() -> None:
    results = committed()
    results["store"] = {"error": "RuntimeError: the broker went away\nTraceback ..."}
    rendered = "\n".join(table.table(results))
    assert "| Store | failed |  | RuntimeError: the broker went away |" in rendered
    assert "Traceback" not in rendered
    assert "| Producer: new items |" in rendered
    assert "| End to end:" in rendered


def test_a_section_not_run_has_no_rows_and_a_skipped_database_says_why() -> None:
    results = committed()
    del results["end_to_end"]
    results["store"]["postgresql"] = {"skipped": "NEWSWATCH_TEST_POSTGRES_URL is not set"}
    rendered = "\n".join(table.table(results))
    assert "End to end" not in rendered
    assert "| Store: PostgreSQL | skipped |  | NEWSWATCH_TEST_POSTGRES_URL is not set |" \
        in rendered


def test_a_missed_target_is_marked() -> None:
    results = copy.deepcopy(committed())
    results["enrich"]["ratio"] = 0.5
    results["enrich_scaling"]["speedup"] = 1.2
    results["end_to_end"]["peak_rss_mb"]["enrich"] = 900.0
    rendered = "\n".join(table.table(results))
    assert "| Enrich: consumer path / raw | 0.50 | >= 0.85 (MISSED) |" in rendered
    assert ">= 1.7x (MISSED)" in rendered
    assert "| Peak memory: enrich | 900 MB | <= 600 MB (MISSED) |" in rendered


def test_every_section_runs_in_a_tiny_run(kafka_bootstrap: str, enricher: Enricher,
                                          tmp_path: Path) -> None:
    run = Run(kafka_bootstrap, tmp_path, TINY)
    run.__dict__["enricher"] = enricher  # the session's, not a second copy of the models
    results: dict[str, Any] = {"machine": {"cpus": 2}}
    # The full-text section starts four daemons of its own (~30 s): it runs in tests/fault.
    measure_sections(run, results, set(NAMES) - {"fulltext"})
    failed = {name: figures for name, figures in results.items()
              if name in NAMES and "error" in figures}
    assert not failed, failed
    assert results["producer"]["items"] == TINY.producer_feeds * TINY.producer_items
    assert results["enrich"]["documents"] == TINY.corpus_limit
    assert results["store"]["sqlite"]["end_to_end_per_s"] > 0  # one batch: no steady rate
    assert results["enrich_scaling"]["two"]["duplicates"] == 0
    e2e = results["end_to_end"]
    assert e2e["alerted"] + e2e["missing"] == e2e["items"]
    assert e2e["alerted"] > 0
    rendered = table.table(results)
    assert len(rendered) > 1 + len(NAMES)
    assert not any("| failed |" in line for line in rendered)


@pytest.mark.parametrize("module", [s.measure.__module__ for s in SECTIONS])
def test_each_section_module_documents_what_it_measures(module: str) -> None:
    import importlib

    doc = importlib.import_module(module).__doc__ or ""
    assert doc.startswith("Section "), module


def test_a_run_in_parts_keeps_every_part_and_says_so() -> None:
    results = committed()
    first = {k: v for k, v in results.items()
             if k not in ("store", "end_to_end", "fulltext", "parts")}
    second = {k: v for k, v in results.items() if k in ("machine", "mode", "store")}
    second.update(started_at="2026-12-02 10:00 UTC", total_s=40.0, uptime_start="up",
                  uptime_end="up", load_average_start=[3.0], load_average_end=[3.5],
                  load_average_by_section={"store": 3.1})
    whole = merged(first, second)
    assert whole["store"] == results["store"]
    assert whole["producer"] == results["producer"]
    assert "end_to_end" not in whole
    assert whole["load_average_by_section"]["store"] == 3.1
    assert whole["load_average_by_section"]["producer"] == \
        results["load_average_by_section"]["producer"]
    assert [part["sections"] for part in whole["parts"]] == [
        ["producer", "enrich", "enrich_scaling"], ["store"]]
    assert "(2 parts, each under the benchmark lock)" in table.describe_machine(whole)
