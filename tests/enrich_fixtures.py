"""Helpers of the enrichment tests (the session's ``enricher`` fixture is in
``tests/conftest.py``): labelled data, articles, topic hits."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from consumers.enrich.enrich import Enricher
from schemas.messages import Article

LABELLED = Path(__file__).parent / "data" / "labelled"
SEED_ARTICLE = Path(__file__).resolve().parent.parent / "newswatch" / "demo" / "seed-article.txt"


def hits(enricher: Enricher, title: str, text: str = "") -> dict[str, float]:
    """Topic -> score of the hits (at or above threshold) for one title and text."""
    from consumers.enrich.enrich import document_text

    analysis = enricher.analyse(document_text(title, content=text))
    return {hit.topic: hit.score for hit in analysis.hits}


def article(title: str, summary: str = "", content: str = "", **fields: Any) -> Article:
    """A valid `Article` with the given text; other fields are fixed test values."""
    now = datetime(2024, 5, 22, 12, 0, tzinfo=UTC)
    values: dict[str, Any] = {
        "id": "a" * 16, "url": "https://example.org/story", "title": title,
        "summary": summary, "content": content, "published": now, "fetched_at": now,
        "feed_id": "test-feed",
    }
    values.update(fields)
    return Article(**values)


def labelled(name: str) -> list[dict[str, Any]]:
    """The records of a labelled JSON-lines file under tests/data/labelled."""
    with (LABELLED / name).open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]
