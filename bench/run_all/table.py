"""The one writer of a run's results: the Markdown table, the machine line above it,
the JSON file, and the README's copy of both (between its ``bench:begin``/``bench:end``
markers). Rendering reads only the results dict, so the committed bench/results.json
renders the same table again (tests/test_bench_run_all.py checks the README's copy)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.run_all.section import Row, number
from bench.run_all.sections import SECTIONS

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
HEADER = ("Figure", "Result", "Target", "Conditions")


def rows(results: dict[str, Any]) -> list[Row]:
    """Every section's rows, in run order; a section that failed says why in its row; one
    not run (``--only``) has none."""
    out: list[Row] = []
    for section in SECTIONS:
        figures = results.get(section.name)
        if not isinstance(figures, dict):
            continue
        if "error" in figures:
            out.append((section.label, "failed", "", figures["error"].splitlines()[0][:150]))
        else:
            out.extend(section.rows(figures, results))
    return out


def table(results: dict[str, Any]) -> list[str]:
    """The Markdown table of ``results``, one line a row."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in rows(results)]
    return lines


def describe_machine(results: dict[str, Any]) -> str:
    """The line above the table: the machine, the versions, the load during the run."""
    m = results["machine"]
    start, end = results["load_average_start"], results.get("load_average_end", [None])
    sections = ", ".join(f"{name} {load:.2f}" for name, load
                         in results.get("load_average_by_section", {}).items())
    return (f"Machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB RAM, "
            f"{m['os']}; Python {m['python']}, Kafka {m['kafka']} (KRaft, single local "
            f"node, 512 MB heap), kafka-python {m['kafka_python']}, spaCy {m['spacy']}. "
            f"Load average (1 min, this benchmark's own processes included) "
            f"{start[0]:.2f} at the start, "
            f"{number(end[0], 2)} at the end ({sections}); run {results['mode']} on "
            f"{results['started_at']} in {results.get('total_s', 0):.0f}s"
            + (f" ({len(results['parts'])} parts, each under the benchmark lock)"
               if results.get("parts") else "") + ".")


def report(results: dict[str, Any]) -> str:
    """The machine line, a blank line and the table: what stdout and the README get."""
    return describe_machine(results) + "\n\n" + "\n".join(table(results))


def write_json(results: dict[str, Any], path: Path) -> None:
    """``results`` with its rendered table (``table_markdown``) as indented JSON."""
    results["table_markdown"] = "\n".join(table(results))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")


def readme_block(readme: str) -> str:
    """What stands between the README's markers (without them)."""
    start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    return readme[start:end].strip("\n")


def write_readme(results: dict[str, Any], path: Path) -> None:
    """The README's benchmark block replaced by `report` of ``results``."""
    text = path.read_text(encoding="utf-8")
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    path.write_text(text[:start] + "\n" + report(results) + "\n" + text[end:],
                    encoding="utf-8")
