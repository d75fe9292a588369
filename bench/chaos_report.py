"""The README's chaos table, from a run of the fault suite (issue 16).

Runs the fault tests (``pytest -m "fault or integration" tests/fault`` by default, with the
PostgreSQL of ``scripts/postgres.sh`` when its variables are set), collects the figures
each one records (`tests.fault.chaos.report`: faults injected, volume, lost, duplicated,
repeated deliveries, recovery), and prints them as a Markdown table with the date and
``uptime``. ``--write-readme`` puts the table in README.md between the
``<!-- chaos:begin -->`` and ``<!-- chaos:end -->`` markers, so the figures there are
the script's, never typed by hand. Exits non-zero when a fault test failed (its row is
then missing and the README is left alone).

    eval "$(scripts/postgres.sh start)"
    .venv/bin/python -m bench.chaos_report --write-readme
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from bench.harness import uptime

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- chaos:begin -->", "<!-- chaos:end -->"
ENV = "NEWSWATCH_CHAOS_REPORT"  # as tests/fault/chaos.py reads it
COLUMNS = ("run", "faults", "volume", "lost", "duplicated", "repeated", "recovery")
HEADER = ("| Fault run | Faults injected | Volume | Lost | Duplicated | Repeated deliveries "
          "| Recovery |")


def run_suite(pytest_args: list[str]) -> tuple[int, list[dict[str, object]]]:
    """Run pytest with the report file set; its exit code and the recorded rows."""
    with tempfile.NamedTemporaryFile("r", suffix=".jsonl", delete=False) as handle:
        path = Path(handle.name)
    try:
        code = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               *pytest_args], cwd=ROOT, env={**os.environ, ENV: str(path)},
                              check=False).returncode
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip()]
    finally:
        path.unlink(missing_ok=True)
    return code, rows


def table(rows: list[dict[str, object]]) -> str:
    lines = [f"Produced by `bench/chaos_report.py` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC "
             f"(`uptime`: {uptime()}).", "", HEADER, "|---|---|---|---|---|---|---|"]
    for row in rows:
        cells = [str(row.get(column, "-")).replace("|", "/") for column in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_readme(text: str, readme: Path = ROOT / "README.md") -> None:
    content = readme.read_text(encoding="utf-8")
    start, end = content.index(BEGIN) + len(BEGIN), content.index(END)
    readme.write_text(content[:start] + "\n" + text + "\n" + content[end:], encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write-readme", action="store_true",
                        help="put the table in README.md between the chaos markers")
    parser.add_argument("pytest_args", nargs="*",
                        default=["-m", "fault or integration", "tests/fault"],
                        help="what to run (default: every test under tests/fault)")
    args = parser.parse_args()
    code, rows = run_suite(args.pytest_args)
    text = table(rows)
    print(text)
    if code != 0:
        print(f"\nthe fault suite failed (pytest exit {code}); README left alone",
              file=sys.stderr)
        return code
    if args.write_readme:
        write_readme(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
