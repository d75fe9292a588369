"""What a section of the run is: the shared run state it measures with, its figures, and
the table rows those figures make."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from bench.run_all.sizes import Sizes
from consumers.enrich.enrich import Enricher
from newswatch.kafka_local import LocalKafka
from schemas.messages import Article

Figures = dict[str, Any]  # a section's figures, as they go to results.json
Row = tuple[str, str, str, str]  # figure, result, target, conditions


@dataclass
class Run:
    """What every section of one run shares: the broker, a scratch folder, the sizes, a
    token that keeps this run's topics apart, and the enricher and corpus (loaded once,
    on first use, by the sections that need them)."""

    bootstrap: str
    scratch: Path
    sizes: Sizes
    broker: LocalKafka | None = None
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    e2e_poll_interval_s: float = 1.0

    @cached_property
    def enricher(self) -> Enricher:
        return Enricher.from_files()

    @cached_property
    def corpus(self) -> list[Article]:
        from bench.bench_enrich import load_articles

        articles = load_articles()
        limit = self.sizes.corpus_limit
        return articles if limit is None else articles[:limit]

    def folder(self, name: str) -> Path:
        """A fresh folder of the scratch space for one section."""
        path = self.scratch / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def prefix(self, name: str) -> str:
        """A topic prefix of this run's own for ``name``."""
        return f"bench.{self.token}.{name}."


@dataclass(frozen=True)
class Section:
    """One section: its name (the key in results.json and ``--only``), the label of its
    row when it failed, how it measures, and how its figures read in the table."""

    name: str
    label: str
    measure: Callable[[Run], Figures]
    rows: Callable[[Figures, dict[str, Any]], Sequence[Row]]


def number(value: float | None, digits: int = 0) -> str:
    """``value`` with thousands separators, or ``n/a``."""
    return "n/a" if value is None else f"{value:,.{digits}f}"


def met(ok: bool) -> str:
    return "met" if ok else "MISSED"
