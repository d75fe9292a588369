"""The full-text section of `bench.run_all` runs its real code in a tiny run: raw spaCy and
the four daemons on 6 full-text articles (~30 s: four daemons of its own, so here and not
in the main suite's tiny run of the other sections)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.run_all import table
from bench.run_all.fulltext import SECTION
from bench.run_all.section import Run
from bench.run_all.sizes import TINY

pytestmark = [pytest.mark.integration, pytest.mark.fault]


def test_the_fulltext_section_runs_and_renders(kafka_bootstrap: str, tmp_path: Path) -> None:
    figures = SECTION.measure(Run(kafka_bootstrap, tmp_path, TINY))
    assert figures["raw"]["documents"] == TINY.fulltext_articles
    run = figures["pipeline"]
    assert run["articles"] == TINY.fulltext_articles
    assert run["articles_per_s"] > 0
    assert run["ratio_to_raw"] > 0
    assert run["budget"]["cpu_ms_per_article"] > 0
    rows = table.table({"machine": {"cpus": 2}, "fulltext": figures})
    assert sum("Full text:" in line for line in rows) == 3
    assert not any("| failed |" in line for line in rows)
